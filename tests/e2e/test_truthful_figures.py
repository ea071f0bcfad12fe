"""What the browser draws is what the data says: the Persistence page's η_τ figure of a trained run,
read back from plotly's own layout in a real headless Chromium (issue #13: a reference line on the
log axis once stretched it from 10^-1.5 to 10^48). Server and browser from conftest.py."""

from __future__ import annotations

import math

from nngeo_core.defaults import default_train
from nngeo_core.jobs.kinds import analyse_job
from nngeo_core.progress import Progress
from nngeo_core.runs import train_run
from nngeo_core.specs import AnalysisSpec, DataSpec, ModelSpec, RunSpec
from nngeo_core.store import Store


def test_eta_axis_in_the_browser_spans_the_data(nngeo_home, serve_app, browser):
    # a trained run and its critical compression, stored before the app starts (no worker needed)
    store = Store(str(nngeo_home / "store"))
    spec = RunSpec(
        data=DataSpec("xor", params={"n_train": 64, "n_test": 64}),
        model=ModelSpec("mlp", {"widths": (16, 12)}),
        train=default_train("mlp", "xor").replace(epochs=2),
    )
    run = train_run(spec, store=store)
    key = analyse_job(AnalysisSpec(run=run, method="critical_compression"), store=store, progress=Progress())
    eta = store.get(key)
    values = eta["eta_tau"].to_numpy(dtype=float)  # every layer's bar and the whole model's line

    url = serve_app(nngeo_home, NNGEO_EMBEDDED_WORKER="0")
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.set_default_timeout(90_000)
        page.goto(f"{url}/persistence")
        page.wait_for_selector("h1:has-text('Neural persistence')")
        page.get_by_role("tab", name="η_τ (critical compression)").click()
        plot = page.locator("[data-testid='stTabs'] .js-plotly-plot").filter(visible=True)
        plot.wait_for()
        axis = plot.evaluate("el => ({type: el._fullLayout.yaxis.type, range: el._fullLayout.yaxis.range})")
    finally:
        page.close()
    lo, hi = axis["range"]
    logs = [math.log10(v) for v in values]
    assert axis["type"] == "log"
    assert lo <= min(logs) and max(logs) <= hi  # every bar and the reference line are on the axis
    assert lo >= min(logs) - 1 and hi <= max(logs) + 0.5  # and the axis is the data's, not 10^48
