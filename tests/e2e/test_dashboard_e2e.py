"""The dashboard in a real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright).

One app server on a free loopback port with its own NNGEO_HOME and the embedded worker, one
browser page for the whole module (conftest.py), and one scenario in stages that run in order,
each its own test: train an mlp on xor through the Train page and open it on the Runs page;
compute and view persistence, the volume element and the weight curvature; run two pruning sweeps
on the run; compare them; compute a sparsification path; upload a checkpoint; compute its volume
element on an image plane; compare it side by side with the xor run; train a second run on moons
and walk the forgetting path from the xor run to it. A stage builds on the ones before it, so once
one fails the later stages are reported as xfailed ("previous stage ... failed"; see conftest.py),
not as failures of their own.

Every page is screenshot into a temporary folder, or into $E2E_SCREENSHOTS when set;
``python bench/refresh_screenshots.py`` runs this scenario and copies them into assets/screenshots/
for the README.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "assets" / "examples" / "fcn_mnist_digits.safetensors"

pytestmark = pytest.mark.incremental


@pytest.fixture(scope="module")
def app_url(tmp_path_factory, serve_app):
    return serve_app(tmp_path_factory.mktemp("nngeo-e2e-home"))


@pytest.fixture(scope="module")
def scenario() -> dict:
    """What one stage hands the next: ``run_key``, the first 8 characters of the xor run's key."""
    return {}


# -- the scenario, stage by stage (in this order; see the module docstring) -----------------------
def test_train_a_run_through_the_form(page, ui):
    # Train: a small mlp on xor with snapshots, through the form
    ui.go("Train")
    page.get_by_label("epochs", exact=True).fill("20")
    page.get_by_label("epochs", exact=True).press("Enter")
    ui.settle()
    page.get_by_label("or snapshot epochs").fill("0, 20")
    page.get_by_label("or snapshot epochs").press("Enter")
    ui.settle()
    page.get_by_role("button", name="Train", exact=True).click()
    ui.log("training submitted")
    # the page polls the job and shows the stored run when it is done
    page.get_by_text("test accuracy").wait_for(timeout=150_000)
    ui.settle(1.0)
    assert ui.plots() >= 1
    ui.shot("train")


def test_runs_page_lists_and_opens_the_run(page, ui):
    ui.go("Runs")
    assert page.get_by_text("1 of 1 results").count() == 1
    page.locator("[data-testid='stSelectbox']").filter(has_text="Result").click()
    page.get_by_role("option").first.click()
    page.wait_for_selector(".js-plotly-plot")  # the run's training history
    ui.settle(1.0)
    assert page.get_by_role("button", name="Delete…").count() == 1
    ui.shot("runs")


def test_analyses_persistence_volume_and_curvature(page, ui):
    # Persistence: compute NP of the final model, then see its figure
    ui.go("Persistence")
    page.get_by_role("button", name="Compute neural persistence (the final model)").click()
    page.wait_for_selector(".js-plotly-plot", timeout=120_000)
    ui.settle(1.0)
    assert ui.plots() >= 1
    ui.shot("persistence")

    # Volume element: the heatmaps of the final model and the epoch-0 snapshot (the epoch-20
    # snapshot is the final model itself and is not computed twice)
    ui.go("Volume element")
    compute = page.get_by_role("button", name="Compute for 2 model(s) (final + snapshots)")
    if compute.count() == 0:
        ui.shot("volume")
        pytest.fail("the Volume element page offers no computation: is the `volume` analysis registered?")
    compute.click()
    page.wait_for_selector(".js-plotly-plot", timeout=150_000)
    # the page reruns as each job finishes; wait until both are stored
    page.get_by_text("computing").wait_for(state="detached", timeout=150_000)
    ui.settle(1.0)
    assert page.get_by_role("button", name="Compute for").count() == 0
    assert ui.plots() >= 1
    ui.shot("volume")

    # Curvature of the weight graph: the layer graph, the histogram and the readouts
    ui.go("Curvature")
    page.get_by_role("button", name="Compute curvature (the final model)").click()
    page.wait_for_selector(".js-plotly-plot", timeout=120_000)
    ui.settle(1.0)
    # the layer graph, the histogram, the curvature matrix and curvature vs |w| (no data: no dead-edge chart)
    page.locator(".js-plotly-plot").nth(3).wait_for(timeout=60_000)
    assert ui.plots() == 4
    ui.shot("curvature")


def test_pruning_sweeps(page, ui, scenario):
    # Pruning: magnitude and T-IMP at 3 levels (0.5, 0.75, 0.875: below T-IMP's spanning-tree
    # floor), one seed, no fine-tuning (the page's default)
    ui.go("Pruning")
    run_key = page.get_by_role("combobox", name="Model to prune (a trained run or an upload)").input_value()[
        :8
    ]  # trained above
    scenario["run_key"] = run_key
    page.get_by_role("button", name="Remove random").click()
    ui.settle()
    page.get_by_role("combobox", name="Strategies").fill("timp")
    page.get_by_role("option", name="timp", exact=True).click()
    page.keyboard.press("Escape")
    ui.settle()
    page.get_by_label("levels", exact=True).fill("3")
    page.get_by_label("levels", exact=True).press("Enter")
    ui.settle()
    assert page.get_by_text("sparsities: 0.5 (2×), 0.75 (4×), 0.875 (8×)").count() == 1
    page.get_by_role("button", name="Run 2 sweep(s)").click()
    ui.log("sweeps submitted")
    for strategy in ("magnitude", "timp"):
        ui.job_done(f"prune {strategy} mlp/xor")
    ui.log("sweeps done")
    ui.settle(1.0)  # the page reruns when its jobs finish: the stored sweeps are listed
    assert page.get_by_text("none yet").count() == 0
    ui.no_errors()
    ui.shot("pruning")


def test_compare_the_sweeps(page, ui):
    # Compare: accuracy against compression for both sweeps
    ui.go("Compare")
    page.wait_for_selector(".js-plotly-plot", timeout=60_000)
    ui.settle(1.0)
    legend = page.locator(".js-plotly-plot").first.locator(".legendtext")
    assert {t.strip() for t in legend.all_text_contents()} >= {"magnitude", "timp"}
    ui.no_errors()


def test_sparsification_path(page, ui, scenario):
    # Geodesics: a sparsification path with cheap settings (gradient steps, 20 of them)
    run_key = scenario["run_key"]
    ui.go("Geodesics")
    picker = page.get_by_role("combobox", name="Run", exact=True)
    if not picker.input_value().startswith(run_key):  # the sweeps stored dense runs of their own
        picker.click()
        page.get_by_role("option").filter(has_text=run_key).click()
        ui.settle()
    assert picker.input_value().startswith(run_key)
    tab = page.get_by_role("tabpanel", name="Sparsification path")
    tab.get_by_role("combobox", name="step", exact=True).click()
    page.get_by_role("option", name="gradient", exact=True).click()
    ui.settle()
    tab.get_by_label("steps", exact=True).fill("20")
    tab.get_by_label("steps", exact=True).press("Enter")
    ui.settle()
    tab.get_by_role("button", name="Compute sparsification path (the final model)").click()
    tab.locator(".js-plotly-plot").wait_for(timeout=120_000)
    ui.settle(1.0)
    assert tab.locator(".js-plotly-plot").count() == 1
    ui.no_errors()
    ui.shot("geodesics")


def test_upload_a_checkpoint(page, ui):
    # Upload: a checkpoint file through the browser's file input
    ui.go("Upload")
    page.locator("input[type='file']").set_input_files(str(EXAMPLE))
    ui.settle()
    page.get_by_role("button", name="Validate and store").click()
    page.get_by_text("Stored as").wait_for(timeout=60_000)
    ui.settle()
    assert page.locator("[data-testid='stException']").count() == 0
    ui.shot("upload")


def test_volume_element_of_the_uploaded_image_model(page, ui):
    # Volume element of the uploaded image model: the plane through three test digits and the
    # line between the first two (the upload is opened on every page by default)
    ui.go("Volume element")
    assert "fcn_mnist" in page.get_by_role("combobox", name="Run", exact=True).input_value()
    page.locator("img").first.wait_for()  # the three inputs as thumbnails
    page.get_by_role("button", name="Compute plane through the three inputs (the final model)").click()
    page.get_by_text("Along the segment").wait_for(timeout=120_000)
    ui.settle(1.0)
    assert ui.plots() == 2  # the plane's heatmap and the profile along the line
    ui.no_errors()
    ui.shot("volume_image")


def test_compare_the_upload_side_by_side_with_the_xor_run(page, ui, scenario):
    # Compare, runs side by side: the xor run and the uploaded image model, neural persistence of
    # each (the upload's computed from its column); the screenshot shows both sections filled
    run_key = scenario["run_key"]
    ui.go("Compare")
    runs = page.get_by_role("combobox", name="Runs (up to four)")
    runs.click()
    runs.fill(run_key)
    option = page.get_by_role("option").filter(has_text=run_key)
    if option.count() == 0:
        ui.shot("compare")
        pytest.fail(f"no run {run_key} among the Compare page's runs")
    option.first.click()
    page.keyboard.press("Escape")
    ui.settle()
    compute = page.get_by_role("button", name="Compute neural persistence (the final model)")
    assert compute.count() == 1  # the xor run's is stored already; the upload's is not
    compute.click()
    page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length >= 3", timeout=120_000)
    ui.settle(1.0)
    assert ui.plots() == 3  # accuracy vs compression, and one persistence figure per run
    ui.no_errors()
    ui.shot("compare")


def test_forgetting_path_to_a_run_on_another_task(page, ui, scenario):
    # Geodesics, forgetting path: train the same mlp on moons (task B), then walk from the xor run
    # towards it; accuracy on both tasks and the distance to run B along the path
    run_key = scenario["run_key"]
    ui.go("Train")
    page.get_by_role("combobox", name="Data", exact=True).click()
    page.get_by_role("option", name="moons", exact=True).click()
    ui.settle()
    page.get_by_role("button", name="Train", exact=True).click()
    ui.job_done("train mlp on moons")
    ui.log("moons run trained")
    ui.go("Geodesics")
    picker = page.get_by_role("combobox", name="Run", exact=True)
    picker.click()
    page.get_by_role("option").filter(has_text=run_key).first.click()
    ui.settle()
    page.get_by_role("tab", name="Forgetting path").click()
    tab = page.get_by_role("tabpanel", name="Forgetting path")
    run_b = tab.get_by_role("combobox", name="Run trained on task B")
    run_b.click()
    page.get_by_role("option").filter(has_text="moons").first.click()
    ui.settle()
    tab.get_by_role("button", name="Compute forgetting path (the final model)").click()
    tab.locator(".js-plotly-plot").wait_for(timeout=120_000)
    ui.settle(1.0)
    legend = {t.strip() for t in tab.locator(".js-plotly-plot .legendtext").all_text_contents()}
    assert {"task A (xor)", "task B (moons)", "distance to run B"} <= legend, legend
    ui.no_errors()
    ui.shot("geodesics_forgetting")
