"""An analysis page shows its job's progress inline, in a real headless Chromium against a real
`streamlit run app.py` with its embedded worker.

The store starts with one trained mlp on xor; the Geodesics page computes a 1000-step exact
sparsification path of it (several seconds of steady progress). While the job runs, the page
shows a progress bar whose fraction grows from one poll to the next and a disabled Compute
button; when it ends, the page reruns and draws the path, and the sidebar lists the job as done.
The server, browser, page and helpers come from conftest.py.
"""

from __future__ import annotations

import os
import time
from unittest import mock

import pytest

from nngeo_core.runs import train_run
from nngeo_core.specs import DataSpec, ModelSpec, RunSpec, TrainSpec
from nngeo_core.store import default_store

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


@pytest.fixture(scope="module")
def app(tmp_path_factory, app_env, serve_app):
    """The app's URL and the key of the run trained into its store before it starts."""
    home = tmp_path_factory.mktemp("nngeo-e2e-progress")
    run = train_xor_run(app_env(home, NNGEO_POLL_S=str(POLL_S)))
    return serve_app(home, NNGEO_POLL_S=str(POLL_S)), run


@pytest.fixture(scope="module")
def app_url(app) -> str:
    return app[0]


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


def test_a_long_analysis_shows_growing_inline_progress_then_its_result(page, ui, app):
    ui.go("Geodesics")
    tab = page.get_by_role("tabpanel", name="Sparsification path")
    tab.get_by_label("steps", exact=True).fill("1000")
    tab.get_by_label("steps", exact=True).press("Enter")
    ui.settle()
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

    ui.settle(1.0)
    assert page.locator(BAR).count() == 0 and compute.count() == 0  # the result replaced both
    done = page.locator("[data-testid='stSidebar'] [data-testid='stAlertContentSuccess']").filter(
        has_text=f"analyse geodesic of {app[1][:8]}"
    )
    assert done.count() == 1  # the sidebar shows the finished job's state, from the same rerun
    assert page.locator("[data-testid='stException']").count() == 0
