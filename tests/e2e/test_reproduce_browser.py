"""The Reproduce page in a real headless Chromium against a real `streamlit run app.py` with its
embedded worker: pick the η_τ claim at the test size, press Reproduce, wait for the worker's job,
and read the report — the claim table with the paper's value beside the measured one and the
verdict, its figures — then download the standalone HTML report and check it outside the app: the
measured value is in it and no script is fetched from the network. The server, browser, page and
helpers come from conftest.py."""

from __future__ import annotations

import re

import pytest

from nngeo_core.models import build
from nngeo_core.reproduce import CLAIMS
from nngeo_core.reproduce.report import build_report
from nngeo_core.topology import critical_compression

pytestmark = pytest.mark.incremental

CLAIM = "balwani2022_eta_tau"


@pytest.fixture(scope="module")
def app_url(tmp_path_factory, serve_app) -> str:
    return serve_app(tmp_path_factory.mktemp("nngeo-e2e-reproduce"))


def test_the_claim_runs_in_the_worker_and_its_report_appears(page, ui):
    ui.go("Reproduce")
    box = page.get_by_role("combobox", name="Claim", exact=True)
    box.click()
    page.get_by_role("option").filter(has_text=CLAIM).first.click()
    ui.settle()
    page.get_by_text("test (seconds)", exact=True).click()
    ui.settle()
    page.get_by_role("button", name="Reproduce (test)").click()
    page.get_by_text("judged rows agree with the paper").wait_for(timeout=240_000)
    ui.settle(1.0)
    ui.no_errors()
    main = page.locator("[data-testid='stMain']").inner_text()
    # the same claim computed here, in this process, by the core: the page shows its verdict counts
    rows = build_report(CLAIMS.get(CLAIM), "test").rows
    agree, judged = int((rows["verdict"] == "agrees").sum()), int(rows["verdict"].isin(["agrees", "differs"]).sum())
    assert judged > 0
    assert f"{agree} of {judged} judged rows agree with the paper" in main
    assert ui.plots() >= 1
    ui.shot("reproduce")


def test_the_html_report_downloads_and_stands_alone(page, ui, tmp_path):
    with page.expect_download() as info:
        page.get_by_role("button", name="Download report (HTML)").click()
    path = tmp_path / "report.html"
    info.value.save_as(path)
    html = path.read_text()
    assert CLAIM in html
    # fcn_mnist's whole-model η_τ, computed here from scratch by the core function, and the paper's
    whole = critical_compression(build("fcn_mnist"))
    value = float(whole.loc[whole["layer"] == "total", "eta_tau"].iloc[0])
    assert f"<td>{value:.6g}</td>" in html  # the report table prints 6 significant digits
    assert not re.search(r"<script[^>]+src=[\"']https?:", html)  # plotly is inline: it opens offline
    assert "Plotly.newPlot" in html or "plotly" in html.lower()
