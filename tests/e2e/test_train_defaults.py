"""The Train page and `nngeo train` make one run of one choice, in a real headless Chromium against
a real `streamlit run app.py` with its embedded worker (server, browser, page and helpers from
conftest.py).

fcn_mnist on digits was the case that differed: the page trained on 8×8 inputs while the CLI
resized them to 28×28. Here the page trains it (one epoch, set in the form), says "Trained" (not
"already in the store") once its job is done, and the stored run's key is the hash of the spec the
CLI's parser makes of `--model fcn_mnist --data digits --epochs 1`; the stored net takes 784
inputs. Then the page is left and opened again: the form is as it was left.
"""

from __future__ import annotations

import re

import pytest

from nngeo_core.cli import build_parser
from nngeo_core.cli_args import run_spec_from_args
from nngeo_core.runs import read_header
from nngeo_core.store import Store


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return tmp_path_factory.mktemp("nngeo-e2e-train-defaults")


@pytest.fixture(scope="module")
def app_url(home, serve_app) -> str:
    return serve_app(home)


def test_the_train_pages_fcn_mnist_on_digits_is_the_clis_run(page, ui, home):
    ui.go("Train")
    ui.choose("Model", "fcn_mnist")
    ui.choose("Data", "digits")
    assert page.get_by_text("input (1, 28, 28)").count() == 1  # what the page says the net gets
    page.get_by_label("epochs", exact=True).fill("1")
    page.get_by_label("epochs", exact=True).press("Enter")
    ui.settle()
    page.get_by_role("button", name="Train", exact=True).click()
    done = page.get_by_text(re.compile(r"^Trained: the run is stored as"))
    done.wait_for(timeout=150_000)
    ui.settle(1.0)
    found = re.search(r"[0-9a-f]{16}", done.inner_text())
    assert found is not None, done.inner_text()
    key = found.group(0)
    assert page.get_by_text("already in the store").count() == 0
    assert page.locator("[data-testid='stException']").count() == 0

    cli = run_spec_from_args(
        build_parser().parse_args(["train", "--model", "fcn_mnist", "--data", "digits", "--epochs", "1"])
    )
    store = Store(str(home / "store"))
    assert key == cli.hash and store.keys() == [cli.hash]
    weights = {name: shape for name, shape in read_header(key, store=store).shapes if name.endswith(".weight")}
    first = min(weights, key=lambda name: int(name.split(".")[0]))  # the first layer of the Sequential
    assert tuple(weights[first]) == (100, 28 * 28)

    # away and back: the form is as it was left (model, data and the one epoch)
    ui.go("Runs")
    ui.go("Train")
    assert page.get_by_role("combobox", name="Model", exact=True).input_value() == "fcn_mnist"
    assert page.get_by_role("combobox", name="Data", exact=True).input_value() == "digits"
    assert page.get_by_label("epochs", exact=True).input_value() == "1"
    assert page.get_by_text(re.compile(f"^Trained: the run is stored as {key}")).count() == 1
