"""Your own network, end to end, in a real headless Chromium (Debian's /usr/bin/chromium, driven by
Playwright) against ``streamlit run app.py`` with its own NNGEO_HOME and the embedded worker
(server, browser, page and helpers from conftest.py).

A torchvision resnet18 (3 classes, random weights) saved as a plain ``state_dict``, and an image
folder of three classes of coloured squares zipped, both made here: the dataset and then the
network are uploaded on the Upload page; neural persistence of the upload is computed on the
Persistence page; magnitude, T-IMP and random sweeps (0.5 and 0.9, no fine-tuning, so T-IMP's
rounds only prune: an upload's rounds retrain for the fine-tune epochs) run on the Pruning page;
Compare shows all three, and the 0.9 level of the magnitude sweep is downloaded there as
safetensors and as ONNX. The downloads are then checked outside nngeo: the safetensors file loads
into a freshly built torchvision resnet18 with a strict ``load_state_dict``, onnxruntime runs the
ONNX file, and both give the logits and predictions of nngeo's own model of that level on the
dataset's images; 90 % of the conv/linear weights are zeros.

The weight curvature of the upload is computed on the Curvature page for the first and last
layers, which the page picks for a network this size, on the whole neuron graph.

Stages run in order (``pytest.mark.incremental``, see conftest.py); screenshots go to a temporary
folder, or $E2E_SCREENSHOTS when set, as own_upload, own_persistence, own_curvature, own_pruning, own_compare.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torchvision
from PIL import Image
from safetensors.torch import load_file

from nngeo_core.export import exportable
from nngeo_core.pruning.masks import apply_masks, plain_copy
from nngeo_core.store import Store

# three classes that differ in colour; each image a square of its class colour, placed and sized
# differently on a dark background
COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (40, 60, 230)}
PER_CLASS = 12
SIDE = 32
LEVEL = 0.9
# the sweeps: strategy -> its name in the job list and on Compare's legend (an upload kept no
# training snapshots, so T-IMP runs without rewinding)
STRATEGIES = {"magnitude": "magnitude", "timp": "T-IMP without rewinding", "random": "random"}

pytestmark = pytest.mark.incremental


# -- the user's files ------------------------------------------------------------------------------
def square_images() -> dict[str, list[np.ndarray]]:
    rng = np.random.default_rng(0)
    images: dict[str, list[np.ndarray]] = {}
    for name, colour in COLOURS.items():
        images[name] = []
        for _ in range(PER_CLASS):
            img = np.full((SIDE, SIDE, 3), 20, dtype=np.uint8)
            size = int(rng.integers(10, 24))
            y, x = rng.integers(0, SIDE - size, size=2)
            img[y : y + size, x : x + size] = colour
            images[name].append(img)
    return images


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("own-files")
    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=len(COLOURS))
    weights = folder / "resnet18_3class.pt"
    torch.save(dict(net.state_dict()), weights)  # a plain dict of tensors, as a user would save it
    images = square_images()
    archive = folder / "squares.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name, imgs in images.items():
            for i, img in enumerate(imgs):
                buf = io.BytesIO()
                Image.fromarray(img, "RGB").save(buf, format="PNG")
                zf.writestr(f"squares/{name}/{i:02d}.png", buf.getvalue())
    x = np.stack([img for imgs in images.values() for img in imgs]).astype(np.float32) / 255.0
    return {"weights": weights, "zip": archive, "x": torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()}


# -- the app ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("nngeo-own-home")


@pytest.fixture(scope="module")
def app_url(home, serve_app):
    return serve_app(home)


@pytest.fixture(scope="module")
def scenario() -> dict:
    """What one stage hands the next (the downloaded files)."""
    return {}


def download(ui, folder: Path, fmt: str, suffix: str) -> Path:
    """Prepare the chosen level in ``fmt`` and save what the download button gives."""
    page = ui.page
    ui.choose("Model format", fmt, typed=True)
    page.get_by_role("button", name="Prepare model file").click()
    button = page.locator("[data-testid='stDownloadButton'] button").filter(has_text=suffix)
    button.wait_for(timeout=120_000)
    ui.settle()
    with page.expect_download(timeout=60_000) as info:
        button.click()
    dl = info.value
    assert dl.suggested_filename.endswith(suffix)
    assert f"-magnitude-s{LEVEL:g}-" in dl.suggested_filename
    path = folder / dl.suggested_filename
    dl.save_as(path)
    ui.log(f"downloaded {path.name} ({path.stat().st_size:,} bytes)")
    return path


# -- the scenario ---------------------------------------------------------------------------------
def test_upload_the_dataset_and_the_network(page, ui, files, scenario):
    ui.go("Upload")
    page.get_by_text("Upload a dataset of my own").click()
    ui.settle()
    page.locator("[data-testid='stFileUploader']").filter(has_text="Dataset file").locator(
        "input[type='file']"
    ).set_input_files(str(files["zip"]))
    ui.settle()
    page.get_by_role("button", name="Add dataset").click()
    added = page.get_by_text("Added: ")
    added.wait_for(timeout=60_000)
    name = added.inner_text().split("`")[1] if "`" in added.inner_text() else added.inner_text().split(": ")[1]
    name = name.strip(" .`")
    assert name.startswith("user:"), name
    scenario["dataset"] = name
    ui.settle()
    summary = page.get_by_text(f"inputs 3×{SIDE}×{SIDE}, {len(COLOURS)} classes")
    summary.wait_for()  # a page on 2 busy cores may rerun late: wait for what should appear
    assert summary.count() == 1
    text = summary.inner_text()
    assert all(colour in text for colour in COLOURS), text

    # the dataset list above was drawn before the dataset was added (the page does not rerun after
    # adding one): any rerun lists it, here switching the toggle off and on (the summary stays)
    for _ in range(2):
        page.get_by_text("Upload a dataset of my own").click()
        ui.settle()
    page.get_by_text(f"inputs 3×{SIDE}×{SIDE}").wait_for()
    assert page.get_by_text(f"inputs 3×{SIDE}×{SIDE}").count() == 1
    ui.choose("Dataset to analyse it with", name, typed=True)
    shape = page.get_by_role(
        "textbox", name="Input shape C,H,W (torchvision nets; ONNX files whose sizes are open)", exact=True
    )
    shape.fill(f"3,{SIDE},{SIDE}")
    shape.press("Enter")
    ui.settle()
    page.locator("[data-testid='stFileUploader']").filter(has_text="Network file").locator(
        "input[type='file']"
    ).set_input_files(str(files["weights"]))
    ui.settle()
    page.get_by_role("button", name="Validate and store").click()
    stored = page.get_by_text("Stored as")
    stored.wait_for(timeout=120_000)
    ui.settle(1.0)
    text = stored.inner_text()
    assert "resnet18" in text, text
    scenario["upload"] = text.split("Stored as ")[1].split(":")[0].strip(" `")[:8]
    assert f"{sum(p.numel() for p in torchvision.models.resnet18(num_classes=3).parameters()):,} parameters" in text
    page.get_by_text("It fits the network stored last").wait_for()
    ui.no_errors()
    ui.shot("own_upload")


def test_persistence_of_the_upload(page, ui, scenario):
    ui.go("Persistence")
    assert page.get_by_role("combobox", name="Run", exact=True).input_value().startswith(scenario["upload"])
    page.get_by_role("button", name="Compute neural persistence (the final model)").click()
    page.wait_for_selector(".js-plotly-plot", timeout=180_000)
    ui.settle(1.0)
    page.get_by_text("Network NP:").wait_for()
    assert page.get_by_text("Network NP:").count() == 1
    ui.no_errors()
    ui.shot("own_persistence")


def test_weight_curvature_of_the_upload(page, ui, scenario):
    """The resnet18's neuron graph (skips and pooling as edges); all 21 layers would be millions of
    edges, so the page picks the first and last layers and says so."""
    ui.go("Curvature")
    assert page.get_by_role("combobox", name="Run", exact=True).input_value().startswith(scenario["upload"])
    page.get_by_text("the first and last layers are chosen").wait_for()
    page.get_by_role("button", name="Compute curvature (the final model)").click()
    page.wait_for_selector(".js-plotly-plot", timeout=240_000)
    ui.settle(1.0)
    assert page.locator(".js-plotly-plot").count() >= 2  # the layer graph and the histograms
    ui.no_errors()
    ui.shot("own_curvature")


def test_prune_the_upload(page, ui, scenario):
    ui.go("Pruning")
    run = page.get_by_role("combobox", name="Model to prune (a trained run or an upload)")
    assert run.input_value().startswith(scenario["upload"])
    picker = page.get_by_role("combobox", name="Data to evaluate, calibrate and fine-tune it on")
    assert picker.input_value() == scenario["dataset"]  # the upload's own data
    page.get_by_text("explicit list", exact=True).click()
    ui.settle()
    levels = page.get_by_label("sparsities (0..1)", exact=True)
    levels.fill(f"0.5, {LEVEL}")
    levels.press("Enter")
    ui.settle()
    page.get_by_text("sparsities: 0.5 (2×), 0.9 (10×)").wait_for()  # the rerun may start late on 2 busy cores
    assert page.get_by_label("fine-tune epochs", exact=True).input_value() == "0"
    strategies = page.get_by_role("combobox", name="Strategies")
    strategies.fill("timp")
    page.get_by_role("option", name="timp", exact=True).click()
    page.keyboard.press("Escape")
    ui.settle()
    # T-IMP's panel says its rounds get the fine-tune epochs, none here: they only prune
    page.get_by_text("timp — ").click()
    rounds = page.get_by_text("round_epochs empty: each round retrains for the fine-tune epochs (0; the rounds only")
    rounds.wait_for()
    page.get_by_role("button", name=f"Run {len(STRATEGIES)} sweep(s)").click()
    ui.log("sweeps submitted")
    for label in STRATEGIES.values():
        ui.job_done(f"prune {label} ")
        ui.log(f"sweep {label} done")
    ui.settle(1.0)
    assert page.get_by_text("none yet").count() == 0
    ui.no_errors()
    ui.shot("own_pruning")


def test_download_the_pruned_level(page, ui, scenario, tmp_path_factory):
    ui.go("Compare")
    page.wait_for_selector(".js-plotly-plot", timeout=60_000)
    ui.settle(1.0)
    legend = {t.strip() for t in page.locator(".js-plotly-plot").first.locator(".legendtext").all_text_contents()}
    assert set(STRATEGIES.values()) <= legend, legend
    ui.choose("Sweep", "magnitude", typed=True)
    scenario["sweep"] = page.get_by_role("combobox", name="Sweep", exact=True).input_value().split(" · ")[1]
    ui.choose("Sparsity level", f"{LEVEL:g}", typed=True)
    folder = tmp_path_factory.mktemp("downloads")
    scenario["safetensors"] = download(ui, folder, "safetensors", ".safetensors")
    scenario["onnx"] = download(ui, folder, "onnx", ".onnx")
    ui.no_errors()
    ui.shot("own_compare")


def test_the_downloads_are_nngeos_pruned_model(home, files, scenario):
    store = Store(home / "store")
    ex = exportable(store, store.resolve(scenario["sweep"]), level=LEVEL)
    ours = apply_masks(plain_copy(ex.model), ex.masks).eval()
    x = files["x"]
    with torch.no_grad():
        expected = ours(x)

    net = torchvision.models.resnet18(num_classes=len(COLOURS))
    net.load_state_dict(load_file(str(scenario["safetensors"])))  # strict: every key, no extra ones
    net.eval()
    with torch.no_grad():
        got = net(x)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert torch.equal(got.argmax(1), expected.argmax(1))

    session = ort.InferenceSession(str(scenario["onnx"]), providers=["CPUExecutionProvider"])
    onnx_logits = torch.from_numpy(session.run(["logits"], {"input": x.numpy()})[0])
    torch.testing.assert_close(onnx_logits, expected, rtol=1e-4, atol=1e-4)
    assert torch.equal(onnx_logits.argmax(1), expected.argmax(1))

    # every conv and linear weight is prunable (global scope, output layer not kept dense)
    weights = [m.weight for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    zeros = sum(int((w == 0).sum()) for w in weights)
    total = sum(w.numel() for w in weights)
    assert abs(zeros / total - LEVEL) < 1e-3, zeros / total
