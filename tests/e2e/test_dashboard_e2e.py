"""The dashboard in a real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright).

One app server on a free loopback port with its own NNGEO_HOME and the embedded worker, one
browser page for the whole module, and one scenario in stages that run in order, each its own
test: train an mlp on xor through the Train page and open it on the Runs page; compute and view
persistence, the volume element and the weight curvature; run two pruning sweeps on the run;
compare them; compute a sparsification path; upload a checkpoint; compute its volume element on an
image plane; compare it side by side with the xor run; train a second run on moons and walk the
forgetting path from the xor run to it. A stage builds on the ones before it, so once one fails
the later stages are reported as xfailed ("previous stage ... failed"; see conftest.py), not as
failures of their own.

Every page is screenshot into a temporary folder, or into $E2E_SCREENSHOTS when set;
``python bench/refresh_screenshots.py`` runs this scenario and copies them into assets/screenshots/
for the README.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from nngeo_core.dashboard.server import serve
from nngeo_core.settings import home_env

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS_ENV = "E2E_SCREENSHOTS"  # where the screenshots go (default: a temporary folder)
EXAMPLE = ROOT / "assets" / "examples" / "fcn_mnist_digits.safetensors"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

T0 = time.monotonic()


def log(message: str) -> None:
    """Progress with elapsed time (shown with `pytest -s`, or on failure)."""
    print(f"[e2e {time.monotonic() - T0:6.1f}s] {message}")


pytestmark = [
    pytest.mark.e2e,
    pytest.mark.incremental,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)"),
]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    home = tmp_path_factory.mktemp("nngeo-e2e-home")
    env = {**home_env(home), "NNGEO_DOWNLOAD": "0", "NNGEO_EMBEDDED_WORKER": "1"}
    with serve(env, log_path=home / "streamlit.log") as url:  # stopping the app stops its worker
        log("server up")
        yield url


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def page(app_url, browser):
    """One page (one Streamlit session) for every stage: the state a stage leaves (the selected
    run, stored results) is what the next one starts from."""
    pg = browser.new_page(viewport={"width": 1400, "height": 1000})
    pg.set_default_timeout(60_000)
    pg.goto(app_url)
    pg.wait_for_selector("h1", timeout=120_000)  # first load starts the worker
    log("first page")
    yield pg
    pg.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    """The folder the screenshots go to: $E2E_SCREENSHOTS, or a temporary one."""
    folder = os.environ.get(SCREENSHOTS_ENV)
    path = Path(folder) if folder else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def scenario() -> dict:
    """What one stage hands the next: ``run_key``, the first 8 characters of the xor run's key."""
    return {}


@pytest.fixture
def shot(page, shots):
    def take(name: str) -> None:
        screenshot(page, shots / f"{name}.png")

    return take


def go(page, title: str) -> None:
    """Open a page through the sidebar (client-side, so the session and its state are kept)."""
    page.get_by_role("link", name=title, exact=True).click()
    page.wait_for_selector(f"h1:has-text('{heading(title)}')")
    settle(page)


def heading(title: str) -> str:
    return {
        "Persistence": "Neural persistence",
        "Upload": "Upload a checkpoint",
        "Pruning": "Pruning sweeps",
        "Geodesics": "Geodesics",
    }.get(title, title)


def settle(page, seconds: float = 0.5) -> None:
    """Wait until the script run ends (Streamlit's running indicator goes away)."""
    page.wait_for_timeout(300)
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=120_000)
    page.wait_for_timeout(int(seconds * 1000))


def screenshot(page, path: Path) -> None:
    """A screenshot of the whole page: Streamlit scrolls inside its main block, not the document,
    so the viewport is stretched to the content's height first."""
    height = page.evaluate(
        "() => { const m = document.querySelector('[data-testid=\"stMain\"]');"
        " return m ? m.scrollHeight : document.body.scrollHeight; }"
    )
    page.set_viewport_size({"width": 1400, "height": int(min(max(height, 800), 3200))})
    page.wait_for_timeout(400)
    page.screenshot(path=str(path))
    page.set_viewport_size({"width": 1400, "height": 1000})
    log(f"screenshot {path.stem}")


def plots(page) -> int:
    return page.locator(".js-plotly-plot").count()


def sidebar_job_done(page, label: str, timeout: float = 150_000) -> None:
    """Wait until the sidebar's job list shows the job labelled ``label`` done (fail if it failed)."""
    ended = (
        page.locator(
            "[data-testid='stSidebar'] [data-testid='stAlertContentSuccess'], "
            "[data-testid='stSidebar'] [data-testid='stAlertContentError']"
        )
        .filter(has_text=label)
        .first
    )
    ended.wait_for(timeout=timeout)
    if ended.get_attribute("data-testid") == "stAlertContentError":
        pytest.fail(f"job failed: {ended.inner_text()}")


def no_errors(page) -> None:
    assert page.locator("[data-testid='stException']").count() == 0
    assert page.locator("[data-testid='stMain'] [data-testid='stAlertContentError']").count() == 0


# -- the scenario, stage by stage (in this order; see the module docstring) -----------------------
def test_train_a_run_through_the_form(page, shot):
    # Train: a small mlp on xor with snapshots, through the form
    go(page, "Train")
    page.get_by_label("epochs", exact=True).fill("20")
    page.get_by_label("epochs", exact=True).press("Enter")
    settle(page)
    page.get_by_label("or snapshot epochs").fill("0, 20")
    page.get_by_label("or snapshot epochs").press("Enter")
    settle(page)
    page.get_by_role("button", name="Train", exact=True).click()
    log("training submitted")
    # the page polls the job and shows the stored run when it is done
    page.get_by_text("test accuracy").wait_for(timeout=150_000)
    settle(page, 1.0)
    assert plots(page) >= 1
    shot("train")


def test_runs_page_lists_and_opens_the_run(page, shot):
    go(page, "Runs")
    assert page.get_by_text("1 of 1 results").count() == 1
    page.locator("[data-testid='stSelectbox']").filter(has_text="Result").click()
    page.get_by_role("option").first.click()
    page.wait_for_selector(".js-plotly-plot")  # the run's training history
    settle(page, 1.0)
    assert page.get_by_role("button", name="Delete…").count() == 1
    shot("runs")


def test_analyses_persistence_volume_and_curvature(page, shot):
    # Persistence: compute NP of the final model, then see its figure
    go(page, "Persistence")
    page.get_by_role("button", name="Compute neural persistence (the final model)").click()
    page.wait_for_selector(".js-plotly-plot", timeout=120_000)
    settle(page, 1.0)
    assert plots(page) >= 1
    shot("persistence")

    # Volume element: the heatmaps of the final model and the epoch-0 snapshot (the epoch-20
    # snapshot is the final model itself and is not computed twice)
    go(page, "Volume element")
    compute = page.get_by_role("button", name="Compute for 2 model(s) (final + snapshots)")
    if compute.count() == 0:
        shot("volume")
        pytest.fail("the Volume element page offers no computation: is the `volume` analysis registered?")
    compute.click()
    page.wait_for_selector(".js-plotly-plot", timeout=150_000)
    # the page reruns as each job finishes; wait until both are stored
    page.get_by_text("computing").wait_for(state="detached", timeout=150_000)
    settle(page, 1.0)
    assert page.get_by_role("button", name="Compute for").count() == 0
    assert plots(page) >= 1
    shot("volume")

    # Curvature of the weight graph: the layer graph and the histogram
    go(page, "Curvature")
    page.get_by_role("button", name="Compute curvature (the final model)").click()
    page.wait_for_selector(".js-plotly-plot", timeout=120_000)
    settle(page, 1.0)
    assert plots(page) == 2
    shot("curvature")


def test_pruning_sweeps(page, shot, scenario):
    # Pruning: magnitude and T-IMP at 3 levels (0.5, 0.75, 0.875: below T-IMP's spanning-tree
    # floor), one seed, no fine-tuning (the page's default)
    go(page, "Pruning")
    run_key = page.get_by_role("combobox", name="Model to prune (a trained run or an upload)").input_value()[
        :8
    ]  # trained above
    scenario["run_key"] = run_key
    page.get_by_role("button", name="Remove random").click()
    settle(page)
    page.get_by_role("combobox", name="Strategies").fill("timp")
    page.get_by_role("option", name="timp", exact=True).click()
    page.keyboard.press("Escape")
    settle(page)
    page.get_by_label("levels", exact=True).fill("3")
    page.get_by_label("levels", exact=True).press("Enter")
    settle(page)
    assert page.get_by_text("sparsities: 0.5 (2×), 0.75 (4×), 0.875 (8×)").count() == 1
    page.get_by_role("button", name="Run 2 sweep(s)").click()
    log("sweeps submitted")
    for strategy in ("magnitude", "timp"):
        sidebar_job_done(page, f"prune {strategy} mlp/xor")
    log("sweeps done")
    settle(page, 1.0)  # the page reruns when its jobs finish: the stored sweeps are listed
    assert page.get_by_text("none yet").count() == 0
    no_errors(page)
    shot("pruning")


def test_compare_the_sweeps(page):
    # Compare: accuracy against compression for both sweeps
    go(page, "Compare")
    page.wait_for_selector(".js-plotly-plot", timeout=60_000)
    settle(page, 1.0)
    legend = page.locator(".js-plotly-plot").first.locator(".legendtext")
    assert {t.strip() for t in legend.all_text_contents()} >= {"magnitude", "timp"}
    no_errors(page)


def test_sparsification_path(page, shot, scenario):
    # Geodesics: a sparsification path with cheap settings (gradient steps, 20 of them)
    run_key = scenario["run_key"]
    go(page, "Geodesics")
    picker = page.get_by_role("combobox", name="Run", exact=True)
    if not picker.input_value().startswith(run_key):  # the sweeps stored dense runs of their own
        picker.click()
        page.get_by_role("option").filter(has_text=run_key).click()
        settle(page)
    assert picker.input_value().startswith(run_key)
    tab = page.get_by_role("tabpanel", name="Sparsification path")
    tab.get_by_role("combobox", name="step", exact=True).click()
    page.get_by_role("option", name="gradient", exact=True).click()
    settle(page)
    tab.get_by_label("steps", exact=True).fill("20")
    tab.get_by_label("steps", exact=True).press("Enter")
    settle(page)
    tab.get_by_role("button", name="Compute sparsification path (the final model)").click()
    tab.locator(".js-plotly-plot").wait_for(timeout=120_000)
    settle(page, 1.0)
    assert tab.locator(".js-plotly-plot").count() == 1
    no_errors(page)
    shot("geodesics")


def test_upload_a_checkpoint(page, shot):
    # Upload: a checkpoint file through the browser's file input
    go(page, "Upload")
    page.locator("input[type='file']").set_input_files(str(EXAMPLE))
    settle(page)
    page.get_by_role("button", name="Validate and store").click()
    page.get_by_text("Stored as").wait_for(timeout=60_000)
    settle(page)
    assert page.locator("[data-testid='stException']").count() == 0
    shot("upload")


def test_volume_element_of_the_uploaded_image_model(page, shot):
    # Volume element of the uploaded image model: the plane through three test digits and the
    # line between the first two (the upload is opened on every page by default)
    go(page, "Volume element")
    assert "fcn_mnist" in page.get_by_role("combobox", name="Run", exact=True).input_value()
    page.locator("img").first.wait_for()  # the three inputs as thumbnails
    page.get_by_role("button", name="Compute plane through the three inputs (the final model)").click()
    page.get_by_text("Along the segment").wait_for(timeout=120_000)
    settle(page, 1.0)
    assert plots(page) == 2  # the plane's heatmap and the profile along the line
    no_errors(page)
    shot("volume_image")


def test_compare_the_upload_side_by_side_with_the_xor_run(page, shot, scenario):
    # Compare, runs side by side: the xor run and the uploaded image model, neural persistence of
    # each (the upload's computed from its column); the screenshot shows both sections filled
    run_key = scenario["run_key"]
    go(page, "Compare")
    runs = page.get_by_role("combobox", name="Runs (up to four)")
    runs.click()
    runs.fill(run_key)
    option = page.get_by_role("option").filter(has_text=run_key)
    if option.count() == 0:
        shot("compare")
        pytest.fail(f"no run {run_key} among the Compare page's runs")
    option.first.click()
    page.keyboard.press("Escape")
    settle(page)
    compute = page.get_by_role("button", name="Compute neural persistence (the final model)")
    assert compute.count() == 1  # the xor run's is stored already; the upload's is not
    compute.click()
    page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length >= 3", timeout=120_000)
    settle(page, 1.0)
    assert plots(page) == 3  # accuracy vs compression, and one persistence figure per run
    no_errors(page)
    shot("compare")


def test_forgetting_path_to_a_run_on_another_task(page, shot, scenario):
    # Geodesics, forgetting path: train the same mlp on moons (task B), then walk from the xor run
    # towards it; accuracy on both tasks and the distance to run B along the path
    run_key = scenario["run_key"]
    go(page, "Train")
    page.get_by_role("combobox", name="Data", exact=True).click()
    page.get_by_role("option", name="moons", exact=True).click()
    settle(page)
    page.get_by_role("button", name="Train", exact=True).click()
    sidebar_job_done(page, "train mlp on moons")
    log("moons run trained")
    go(page, "Geodesics")
    picker = page.get_by_role("combobox", name="Run", exact=True)
    picker.click()
    page.get_by_role("option").filter(has_text=run_key).first.click()
    settle(page)
    page.get_by_role("tab", name="Forgetting path").click()
    tab = page.get_by_role("tabpanel", name="Forgetting path")
    run_b = tab.get_by_role("combobox", name="Run trained on task B")
    run_b.click()
    page.get_by_role("option").filter(has_text="moons").first.click()
    settle(page)
    tab.get_by_role("button", name="Compute forgetting path (the final model)").click()
    tab.locator(".js-plotly-plot").wait_for(timeout=120_000)
    settle(page, 1.0)
    legend = {t.strip() for t in tab.locator(".js-plotly-plot .legendtext").all_text_contents()}
    assert {"task A (xor)", "task B (moons)", "distance to run B"} <= legend, legend
    no_errors(page)
    shot("geodesics_forgetting")
