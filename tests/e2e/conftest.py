"""What every browser test here shares: the app server, Chromium, one page per module, and the
helpers that drive Streamlit (``UI``), in one copy.

* Every test in this folder is marked ``e2e`` and skipped when Debian's Chromium is not at
  ``CHROMIUM`` (``apt-get install chromium``); on CI a skip is a failure (tests/conftest.py).
* ``serve_app(home, **env)``: ``streamlit run app.py`` on a free loopback port with its own
  NNGEO_HOME (``home``), downloads off and the embedded worker on unless ``env`` says otherwise
  (``app_env``, also a fixture, for a test that prepares that home itself); it returns the URL
  and is stopped (with its worker) when the module ends.
* ``browser``: one headless Chromium (driven by Playwright) per module.
* ``page``: one browser page (one Streamlit session) for the whole module, opened at the module's
  ``app_url`` fixture (which each module defines) once the first load is drawn (it starts the
  worker); ``ui``: the helpers bound to it. ``shots``: where screenshots go, a temporary folder or
  $E2E_SCREENSHOTS when set.
* Stages of one browser scenario (``pytest.mark.incremental`` on a module): its tests run in order
  and each builds on the ones before it, so once a stage fails (or its fixtures do) every later
  stage of that module is reported as xfailed, "previous stage <name> failed", instead of failing
  again for a reason that is not its own.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from nngeo_core.dashboard.server import serve
from nngeo_core.settings import home_env

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS_ENV = "E2E_SCREENSHOTS"  # where the screenshots go (default: a temporary folder)
VIEWPORT = {"width": 1400, "height": 1000}
# page titles in the sidebar whose heading (h1) says something else
HEADINGS = {
    "Persistence": "Neural persistence",
    "Upload": "Upload a checkpoint",
    "Pruning": "Pruning sweeps",
}
HERE = Path(__file__).resolve().parent

_FAILED = pytest.StashKey[str]()  # on the module: the name of its first stage that failed


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "incremental: the module's tests are stages in order; after a failure the rest xfail"
    )


@pytest.hookimpl(tryfirst=True)  # before `-m` selects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    no_chromium = pytest.mark.skipif(
        not os.path.exists(CHROMIUM), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    )
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.e2e)
            item.add_marker(no_chromium)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    report = yield
    if item.get_closest_marker("incremental") is not None and report.failed and item.parent is not None:
        item.parent.stash.setdefault(_FAILED, item.name)  # the first failure, not the xfails after it
    return report


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("incremental") is None or item.parent is None:
        return
    failed = item.parent.stash.get(_FAILED, None)
    if failed is not None:
        pytest.xfail(f"previous stage {failed} failed")


# -- the app and the browser -----------------------------------------------------------------------
def environment(home: Path, **env: str) -> dict[str, str]:
    """The app's environment: its own home, no downloads, the embedded worker, then ``env``."""
    return {**home_env(home), "NNGEO_DOWNLOAD": "0", "NNGEO_EMBEDDED_WORKER": "1", **env}


@pytest.fixture(scope="session")
def app_env() -> Callable[..., dict[str, str]]:
    """``app_env(home, **env)``: the environment ``serve_app`` serves ``home`` with."""
    return environment


@pytest.fixture(scope="module")
def serve_app() -> Iterator[Callable[..., str]]:
    """``serve_app(home, **env) -> url``: the app served until the module ends (see the docstring)."""
    with contextlib.ExitStack() as stack:

        def start(home: Path, **env: str) -> str:
            Path(home).mkdir(parents=True, exist_ok=True)
            return stack.enter_context(serve(environment(home, **env), log_path=Path(home) / "streamlit.log"))

        yield start


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def page(app_url, browser):
    """One page (one Streamlit session) for every test of the module: the state one leaves (the
    selected run, stored results) is what the next starts from."""
    pg = browser.new_page(viewport=VIEWPORT, accept_downloads=True)
    pg.set_default_timeout(60_000)
    pg.goto(app_url)
    pg.wait_for_selector("h1", timeout=120_000)  # the first load starts the worker
    yield pg
    pg.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = os.environ.get(SCREENSHOTS_ENV)
    path = Path(folder) if folder else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def ui(page, shots, request) -> UI:
    return UI(page, shots, name=request.module.__name__.removeprefix("test_"))


class UI:
    """The Streamlit helpers, bound to one page; ``log`` prints with the seconds since the module
    started (shown with `pytest -s`, or on failure)."""

    def __init__(self, page, shots: Path | None = None, *, name: str = "e2e") -> None:
        self.page, self.shots, self.name, self.t0 = page, shots, name, time.monotonic()

    def log(self, message: str) -> None:
        print(f"[{self.name} {time.monotonic() - self.t0:6.1f}s] {message}")

    def settle(self, seconds: float = 0.5, *, quiet: float = 0.4) -> None:
        """Wait until the script run ends: Streamlit's running indicator gone and staying gone for
        ``quiet`` seconds (a rerun an input asked for may start late on busy cores), then
        ``seconds`` more."""
        deadline = time.monotonic() + 120
        since = time.monotonic()
        while time.monotonic() - since < quiet:
            if time.monotonic() > deadline:
                raise AssertionError("the app kept running for 120 s")
            self.page.wait_for_timeout(100)
            if self.page.locator("[data-testid='stStatusWidget']").count():
                since = time.monotonic()
        self.page.wait_for_timeout(int(seconds * 1000))

    def go(self, title: str) -> None:
        """Open a page through the sidebar (client-side, so the session and its state are kept)."""
        self.page.get_by_role("link", name=title, exact=True).click()
        self.page.wait_for_selector(f"h1:has-text('{HEADINGS.get(title, title)}')")
        self.settle()

    def choose(self, label: str, option: str, *, typed: bool = False) -> None:
        """Pick ``option`` of the select box ``label``: the one named exactly so, or with
        ``typed`` the first that contains it, after typing it to filter the list."""
        box = self.page.get_by_role("combobox", name=label, exact=True)
        box.scroll_into_view_if_needed()
        box.click()
        if typed:
            self.page.keyboard.type(option)
            self.page.get_by_role("option").filter(has_text=option).first.click()
        else:
            self.page.get_by_role("option", name=option, exact=True).click()
        self.settle()

    def plots(self) -> int:
        return self.page.locator(".js-plotly-plot").count()

    def no_errors(self) -> None:
        assert self.page.locator("[data-testid='stException']").count() == 0
        errors = self.page.locator("[data-testid='stMain'] [data-testid='stAlertContentError']")
        assert errors.count() == 0, errors.all_inner_texts()

    def job_done(self, label: str, timeout: float = 180_000) -> None:
        """Wait until the sidebar's job list shows the job labelled ``label`` ended; fail if it failed."""
        ended = (
            self.page.locator(
                "[data-testid='stSidebar'] [data-testid='stAlertContentSuccess'], "
                "[data-testid='stSidebar'] [data-testid='stAlertContentError']"
            )
            .filter(has_text=label)
            .first
        )
        ended.wait_for(timeout=timeout)
        if ended.get_attribute("data-testid") == "stAlertContentError":
            pytest.fail(f"job failed: {ended.inner_text()}")

    def shot(self, name: str) -> None:
        """A screenshot of the whole page into ``shots``: Streamlit scrolls inside its main block,
        not the document, so the viewport is stretched to the content's height first."""
        assert self.shots is not None, "this UI has no screenshot folder"
        height = self.page.evaluate(
            "() => { const m = document.querySelector('[data-testid=\"stMain\"]');"
            " return m ? m.scrollHeight : document.body.scrollHeight; }"
        )
        self.page.set_viewport_size({"width": VIEWPORT["width"], "height": int(min(max(height, 800), 3200))})
        self.page.wait_for_timeout(400)
        self.page.screenshot(path=str(self.shots / f"{name}.png"))
        self.page.set_viewport_size(VIEWPORT)
        self.log(f"screenshot {name}")
