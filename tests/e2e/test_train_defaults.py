"""The Train page and `nngeo train` make one run of one choice, in a real headless Chromium against
a real `streamlit run app.py` with its embedded worker (see test_dashboard_e2e.py for the set-up).

fcn_mnist on digits was the case that differed: the page trained on 8×8 inputs while the CLI
resized them to 28×28. Here the page trains it (one epoch, set in the form), says "Trained" (not
"already in the store") once its job is done, and the stored run's key is the hash of the spec the
CLI's parser makes of `--model fcn_mnist --data digits --epochs 1`; the stored net takes 784
inputs. Then the page is left and opened again: the form is as it was left.
"""

from __future__ import annotations

import os
import re

import pytest
from playwright.sync_api import sync_playwright

from nngeo_core.cli import build_parser
from nngeo_core.cli_args import run_spec_from_args
from nngeo_core.dashboard.server import serve
from nngeo_core.runs import read_header
from nngeo_core.settings import home_env
from nngeo_core.store import Store

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)"),
]


def settle(page, seconds: float = 0.5) -> None:
    """Wait until the script run ends (Streamlit's running indicator goes away)."""
    page.wait_for_timeout(300)
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=120_000)
    page.wait_for_timeout(int(seconds * 1000))


def go(page, title: str) -> None:
    """Open a page through the sidebar (client-side, so the session and its state are kept)."""
    page.get_by_role("link", name=title, exact=True).click()
    page.wait_for_selector(f"h1:has-text('{title}')")
    settle(page)


def choose(page, label: str, option: str) -> None:
    page.get_by_role("combobox", name=label, exact=True).click()
    page.get_by_role("option", name=option, exact=True).click()
    settle(page)


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    home = tmp_path_factory.mktemp("nngeo-e2e-train-defaults")
    env = {**home_env(home), "NNGEO_DOWNLOAD": "0", "NNGEO_EMBEDDED_WORKER": "1"}
    with serve(env, log_path=home / "streamlit.log") as url:
        yield url, home


@pytest.fixture(scope="module")
def page(app):
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        pg = browser.new_page(viewport={"width": 1400, "height": 1000})
        pg.set_default_timeout(60_000)
        pg.goto(app[0])
        pg.wait_for_selector("h1", timeout=120_000)  # the first load starts the worker
        yield pg
        browser.close()


def test_the_train_pages_fcn_mnist_on_digits_is_the_clis_run(page, app):
    go(page, "Train")
    choose(page, "Model", "fcn_mnist")
    choose(page, "Data", "digits")
    assert page.get_by_text("input (1, 28, 28)").count() == 1  # what the page says the net gets
    page.get_by_label("epochs", exact=True).fill("1")
    page.get_by_label("epochs", exact=True).press("Enter")
    settle(page)
    page.get_by_role("button", name="Train", exact=True).click()
    done = page.get_by_text(re.compile(r"^Trained: the run is stored as"))
    done.wait_for(timeout=150_000)
    settle(page, 1.0)
    found = re.search(r"[0-9a-f]{16}", done.inner_text())
    assert found is not None, done.inner_text()
    key = found.group(0)
    assert page.get_by_text("already in the store").count() == 0
    assert page.locator("[data-testid='stException']").count() == 0

    cli = run_spec_from_args(
        build_parser().parse_args(["train", "--model", "fcn_mnist", "--data", "digits", "--epochs", "1"])
    )
    store = Store(str(app[1] / "store"))
    assert key == cli.hash and store.keys() == [cli.hash]
    weights = {name: shape for name, shape in read_header(key, store=store).shapes if name.endswith(".weight")}
    first = min(weights, key=lambda name: int(name.split(".")[0]))  # the first layer of the Sequential
    assert tuple(weights[first]) == (100, 28 * 28)

    # away and back: the form is as it was left (model, data and the one epoch)
    go(page, "Runs")
    go(page, "Train")
    assert page.get_by_role("combobox", name="Model", exact=True).input_value() == "fcn_mnist"
    assert page.get_by_role("combobox", name="Data", exact=True).input_value() == "digits"
    assert page.get_by_label("epochs", exact=True).input_value() == "1"
    assert page.get_by_text(re.compile(f"^Trained: the run is stored as {key}")).count() == 1
