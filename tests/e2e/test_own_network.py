"""Your own network, end to end, in a real headless Chromium (Debian's /usr/bin/chromium, driven by
Playwright) against ``streamlit run app.py`` with its own NNGEO_HOME and the embedded worker.

A torchvision resnet18 (3 classes, random weights) saved as a plain ``state_dict``, and an image
folder of three classes of coloured squares zipped, both made here: the dataset and then the
network are uploaded on the Upload page; neural persistence of the upload is computed on the
Persistence page; magnitude and random sweeps (0.5 and 0.9, no fine-tuning) run on the Pruning
page; on Compare the 0.9 level of the magnitude sweep is downloaded as safetensors and as ONNX.
The downloads are then checked outside nngeo: the safetensors file loads into a freshly built
torchvision resnet18 with a strict ``load_state_dict``, onnxruntime runs the ONNX file, and both
give the logits and predictions of nngeo's own model of that level on the dataset's images; 90 %
of the conv/linear weights are zeros.

Not exercised: weight curvature (it does not finish in reasonable time on resnet18's 11M weights
on a 2-core machine) and T-IMP (its many short prune steps on resnet18 take minutes here).

Stages run in order (``pytest.mark.incremental``, see conftest.py); screenshots go to a temporary
folder, or $E2E_SCREENSHOTS when set, as own_upload, own_persistence, own_pruning, own_compare.
"""

from __future__ import annotations

import io
import os
import time
import zipfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torchvision
from PIL import Image
from safetensors.torch import load_file

from nngeo_core.dashboard.server import serve
from nngeo_core.export import exportable
from nngeo_core.pruning.masks import apply_masks, plain_copy
from nngeo_core.settings import home_env
from nngeo_core.store import Store

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS_ENV = "E2E_SCREENSHOTS"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# three classes that differ in colour; each image a square of its class colour, placed and sized
# differently on a dark background
COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (40, 60, 230)}
PER_CLASS = 12
SIDE = 32
LEVEL = 0.9

T0 = time.monotonic()

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.incremental,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)"),
]


def log(message: str) -> None:
    print(f"[own {time.monotonic() - T0:6.1f}s] {message}")


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


# -- the app and the browser -------------------------------------------------------------------
@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("nngeo-own-home")


@pytest.fixture(scope="module")
def app_url(home):
    env = {**home_env(home), "NNGEO_DOWNLOAD": "0", "NNGEO_EMBEDDED_WORKER": "1"}
    with serve(env, log_path=home / "streamlit.log") as url:
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
    pg = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    pg.set_default_timeout(60_000)
    pg.goto(app_url)
    pg.wait_for_selector("h1", timeout=120_000)  # first load starts the worker
    yield pg
    pg.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = os.environ.get(SCREENSHOTS_ENV)
    path = Path(folder) if folder else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def scenario() -> dict:
    """What one stage hands the next (the downloaded files)."""
    return {}


@pytest.fixture
def shot(page, shots):
    def take(name: str) -> None:
        # Streamlit scrolls inside its main block: stretch the viewport to the content first
        height = page.evaluate(
            "() => { const m = document.querySelector('[data-testid=\"stMain\"]');"
            " return m ? m.scrollHeight : document.body.scrollHeight; }"
        )
        page.set_viewport_size({"width": 1400, "height": int(min(max(height, 800), 3200))})
        page.wait_for_timeout(400)
        page.screenshot(path=str(shots / f"{name}.png"))
        page.set_viewport_size({"width": 1400, "height": 1000})
        log(f"screenshot {name}")

    return take


def settle(page, seconds: float = 0.5) -> None:
    """Wait until the script run ends (Streamlit's running indicator goes away)."""
    page.wait_for_timeout(300)
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=120_000)
    page.wait_for_timeout(int(seconds * 1000))


def go(page, title: str, heading: str) -> None:
    """Open a page through the sidebar (client-side, so the session and its state are kept)."""
    page.get_by_role("link", name=title, exact=True).click()
    page.wait_for_selector(f"h1:has-text('{heading}')")
    settle(page)


def choose(page, label: str, option_text: str) -> None:
    """Pick the first option of a select box that contains ``option_text`` (typed to filter)."""
    box = page.get_by_role("combobox", name=label, exact=True)
    box.scroll_into_view_if_needed()
    box.click()
    page.keyboard.type(option_text)
    page.get_by_role("option").filter(has_text=option_text).first.click()
    settle(page)


def no_errors(page) -> None:
    assert page.locator("[data-testid='stException']").count() == 0
    errors = page.locator("[data-testid='stMain'] [data-testid='stAlertContentError']")
    assert errors.count() == 0, errors.all_inner_texts()


def sidebar_job_done(page, label: str, timeout: float = 180_000) -> None:
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


def download(page, folder: Path, fmt: str, suffix: str) -> Path:
    """Prepare the chosen level in ``fmt`` and save what the download button gives."""
    choose(page, "Model format", fmt)
    page.get_by_role("button", name="Prepare model file").click()
    button = page.locator("[data-testid='stDownloadButton'] button").filter(has_text=suffix)
    button.wait_for(timeout=120_000)
    settle(page)
    with page.expect_download(timeout=60_000) as info:
        button.click()
    dl = info.value
    assert dl.suggested_filename.endswith(suffix)
    assert f"-magnitude-s{LEVEL:g}-" in dl.suggested_filename
    path = folder / dl.suggested_filename
    dl.save_as(path)
    log(f"downloaded {path.name} ({path.stat().st_size:,} bytes)")
    return path


# -- the scenario ---------------------------------------------------------------------------------
def test_upload_the_dataset_and_the_network(page, shot, files, scenario):
    go(page, "Upload", "Upload a checkpoint")
    page.get_by_text("Upload a dataset of my own").click()
    settle(page)
    page.locator("[data-testid='stFileUploader']").filter(has_text="Dataset file").locator(
        "input[type='file']"
    ).set_input_files(str(files["zip"]))
    settle(page)
    page.get_by_role("button", name="Add dataset").click()
    added = page.get_by_text("Added: ")
    added.wait_for(timeout=60_000)
    name = added.inner_text().split("`")[1] if "`" in added.inner_text() else added.inner_text().split(": ")[1]
    name = name.strip(" .`")
    assert name.startswith("user:"), name
    scenario["dataset"] = name
    settle(page)
    summary = page.get_by_text(f"inputs 3×{SIDE}×{SIDE}, {len(COLOURS)} classes")
    assert summary.count() == 1
    text = summary.inner_text()
    assert all(colour in text for colour in COLOURS), text

    # the dataset list above was drawn before the dataset was added (the page does not rerun after
    # adding one): any rerun lists it, here switching the toggle off and on (the summary stays)
    for _ in range(2):
        page.get_by_text("Upload a dataset of my own").click()
        settle(page)
    assert page.get_by_text(f"inputs 3×{SIDE}×{SIDE}").count() == 1
    choose(page, "Dataset to analyse it with", name)
    shape = page.get_by_role(
        "textbox", name="Input shape C,H,W (torchvision nets; ONNX files whose sizes are open)", exact=True
    )
    shape.fill(f"3,{SIDE},{SIDE}")
    shape.press("Enter")
    settle(page)
    page.locator("[data-testid='stFileUploader']").filter(has_text="Network file").locator(
        "input[type='file']"
    ).set_input_files(str(files["weights"]))
    settle(page)
    page.get_by_role("button", name="Validate and store").click()
    stored = page.get_by_text("Stored as")
    stored.wait_for(timeout=120_000)
    settle(page, 1.0)
    text = stored.inner_text()
    assert "resnet18" in text, text
    scenario["upload"] = text.split("Stored as ")[1].split(":")[0].strip(" `")[:8]
    assert f"{sum(p.numel() for p in torchvision.models.resnet18(num_classes=3).parameters()):,} parameters" in text
    assert page.get_by_text("It fits the network stored last").count() == 1
    no_errors(page)
    shot("own_upload")


def test_persistence_of_the_upload(page, shot, scenario):
    # weight curvature is left out: on resnet18's 11M weights it does not finish in reasonable time here
    go(page, "Persistence", "Neural persistence")
    assert page.get_by_role("combobox", name="Run", exact=True).input_value().startswith(scenario["upload"])
    page.get_by_role("button", name="Compute neural persistence (the final model)").click()
    page.wait_for_selector(".js-plotly-plot", timeout=180_000)
    settle(page, 1.0)
    assert page.get_by_text("Network NP:").count() == 1
    no_errors(page)
    shot("own_persistence")


def test_prune_the_upload(page, shot, scenario):
    go(page, "Pruning", "Pruning sweeps")
    run = page.get_by_role("combobox", name="Model to prune (a trained run or an upload)")
    assert run.input_value().startswith(scenario["upload"])
    picker = page.get_by_role("combobox", name="Data to evaluate, calibrate and fine-tune it on")
    assert picker.input_value() == scenario["dataset"]  # the upload's own data
    page.get_by_text("explicit list", exact=True).click()
    settle(page)
    levels = page.get_by_label("sparsities (0..1)", exact=True)
    levels.fill(f"0.5, {LEVEL}")
    levels.press("Enter")
    settle(page)
    assert page.get_by_text("sparsities: 0.5 (2×), 0.9 (10×)").count() == 1
    assert page.get_by_label("fine-tune epochs", exact=True).input_value() == "0"
    page.get_by_role("button", name="Run 2 sweep(s)").click()
    log("sweeps submitted")
    for strategy in ("magnitude", "random"):
        sidebar_job_done(page, f"prune {strategy} ")
    log("sweeps done")
    settle(page, 1.0)
    assert page.get_by_text("none yet").count() == 0
    no_errors(page)
    shot("own_pruning")


def test_download_the_pruned_level(page, shot, scenario, tmp_path_factory):
    go(page, "Compare", "Compare")
    page.wait_for_selector(".js-plotly-plot", timeout=60_000)
    settle(page, 1.0)
    legend = {t.strip() for t in page.locator(".js-plotly-plot").first.locator(".legendtext").all_text_contents()}
    assert {"magnitude", "random"} <= legend, legend
    choose(page, "Sweep", "magnitude")
    scenario["sweep"] = page.get_by_role("combobox", name="Sweep", exact=True).input_value().split(" · ")[1]
    choose(page, "Sparsity level", f"{LEVEL:g}")
    folder = tmp_path_factory.mktemp("downloads")
    scenario["safetensors"] = download(page, folder, "safetensors", ".safetensors")
    scenario["onnx"] = download(page, folder, "onnx", ".onnx")
    no_errors(page)
    shot("own_compare")


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
