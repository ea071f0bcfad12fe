"""An analysis page shows its job's progress inline, in a real headless Chromium against a real
`streamlit run app.py` with its embedded worker (see test_dashboard_e2e.py for the set-up).

The store starts with one trained mlp on xor; the Geodesics page computes a 1000-step exact
sparsification path of it (several seconds of steady progress). While the job runs, the page
shows a progress bar whose fraction grows from one poll to the next and a disabled Compute
button; when it ends, the page reruns and draws the path, and the sidebar lists the job as done.
"""

from __future__ import annotations

import os
import time
from unittest import mock

import pytest
from playwright.sync_api import sync_playwright

from nngeo_core.dashboard.server import serve
from nngeo_core.runs import train_run
from nngeo_core.settings import home_env
from nngeo_core.specs import DataSpec, ModelSpec, RunSpec, TrainSpec
from nngeo_core.store import default_store

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)"),
]

POLL_S = 0.5  # the page polls its job this often; the worker writes progress every 0.5 s
BAR = "[data-testid='stMain'] [data-testid='stProgress']"
COMPUTE = "Compute sparsification path (the final model)"


def train_xor_run(env: dict[str, str]) -> str:
    """A small trained run in the store the app will serve (trained here: no browser needed)."""
    spec = RunSpec(
        data=DataSpec("xor", params={"n_train": 200, "n_test": 200}),
        model=ModelSpec("mlp", {"widths": (32, 32)}),
        train=TrainSpec(epochs=3, batch_size=64, lr=0.01, device="cpu"),
    )
    with mock.patch.dict(os.environ, env):
        return train_run(spec, store=default_store())


def settle(page, seconds: float = 0.5) -> None:
    """Wait until the script run ends (Streamlit's running indicator goes away)."""
    page.wait_for_timeout(300)
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=120_000)
    page.wait_for_timeout(int(seconds * 1000))


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    home = tmp_path_factory.mktemp("nngeo-e2e-progress")
    env = {**home_env(home), "NNGEO_DOWNLOAD": "0", "NNGEO_EMBEDDED_WORKER": "1", "NNGEO_POLL_S": str(POLL_S)}
    run = train_xor_run(env)
    with serve(env, log_path=home / "streamlit.log") as url:
        yield url, run


@pytest.fixture(scope="module")
def page(app_url):
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        pg = browser.new_page(viewport={"width": 1400, "height": 1000})
        pg.set_default_timeout(60_000)
        pg.goto(app_url[0])
        pg.wait_for_selector("h1", timeout=120_000)  # the first load starts the worker
        yield pg
        browser.close()


def bar_and_button(page) -> tuple[float | None, str, bool | None]:
    """In one look (the page may rerun between two): the inline bar's fraction (0..1, from its
    ARIA value; None when no bar is shown) and text, and whether the Compute button is disabled
    (None when there is none)."""
    found = page.evaluate(
        f"""() => {{
            const bar = document.querySelector("{BAR} [role='progressbar']");
            const box = document.querySelector("{BAR}");
            const button = [...document.querySelectorAll("[data-testid='stMain'] button")]
                .find(b => b.innerText.includes("{COMPUTE}"));
            return [bar ? bar.getAttribute('aria-valuenow') : null, box ? box.innerText : '',
                    button ? button.disabled : null];
        }}"""
    )
    value, text, disabled = found
    return (None if value is None else float(value) / 100), text, disabled


def test_a_long_analysis_shows_growing_inline_progress_then_its_result(page, app_url):
    page.get_by_role("link", name="Geodesics", exact=True).click()
    page.wait_for_selector("h1:has-text('Geodesics')")
    settle(page)
    tab = page.get_by_role("tabpanel", name="Sparsification path")
    tab.get_by_label("steps", exact=True).fill("1000")
    tab.get_by_label("steps", exact=True).press("Enter")
    settle(page)
    compute = tab.get_by_role("button", name=COMPUTE)
    assert compute.is_enabled()
    compute.click()

    page.locator(BAR).wait_for(timeout=60_000)  # the page reran after the submission
    seen: list[float] = []  # the bar's fraction, sampled faster than the page polls
    texts: set[str] = set()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and tab.locator(".js-plotly-plot").count() == 0:
        value, text, disabled = bar_and_button(page)
        if value is not None:
            assert disabled is True, "the Compute button is active while its job runs"
            if not seen or value != seen[-1]:
                seen.append(value)
            texts.add(text)
        page.wait_for_timeout(150)
    assert tab.locator(".js-plotly-plot").count() == 1, f"no path drawn; the bar went {seen}"
    # the job's progress reached the page while it ran: several values in (0, 1), never going back
    running = [v for v in seen if 0 < v < 1]
    assert len(running) >= 2, f"the bar showed {seen}"
    assert seen == sorted(seen), f"the bar went back: {seen}"
    assert any(t.startswith("computing sparsification path of the final model · running · ") for t in texts), texts
    assert all(t.startswith("computing sparsification path of the final model · ") for t in texts), texts

    settle(page, 1.0)
    assert page.locator(BAR).count() == 0 and compute.count() == 0  # the result replaced both
    done = page.locator("[data-testid='stSidebar'] [data-testid='stAlertContentSuccess']").filter(
        has_text=f"analyse geodesic of {app_url[1][:8]}"
    )
    assert done.count() == 1  # the sidebar shows the finished job's state, from the same rerun
    assert page.locator("[data-testid='stException']").count() == 0
