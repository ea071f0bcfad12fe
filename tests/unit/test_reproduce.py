"""Reproductions: every claim's report at the test size, the verdict rules on fixed numbers, the
standalone HTML, the store round trip and the one-line errors. Nothing here asserts that a paper
is right: only that the report says what was measured and what the declared rule makes of it."""

from __future__ import annotations

import dataclasses
import json
import math

import pandas as pd
import plotly.graph_objects as go
import pytest

import nngeo_core
from nngeo_core.cli import main
from nngeo_core.errors import NNGeoError
from nngeo_core.reproduce import CLAIMS
from nngeo_core.reproduce.base import Claim, FigureRef, Measurement, ReproduceSpec, Row, Size
from nngeo_core.reproduce.report import ROW_COLUMNS, build_report, load_report, reproduce, spec_for
from nngeo_core.reproduce.verdicts import AtLeast, Reference, SignAgrees, Within
from nngeo_core.reproduce.zavatone2023 import magnification
from nngeo_core.specs import spec_hash
from nngeo_core.store import Store

NAMES = CLAIMS.names()
REPORTS: dict[str, object] = {}


def test_report(name):
    if name not in REPORTS:
        REPORTS[name] = build_report(CLAIMS.get(name), "test", 1)
    return REPORTS[name]


test_report.__test__ = False  # a helper, not a test


# -- every claim's report has every section ------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_every_claim_reports_every_section(name):
    report = test_report(name)
    rows = report.rows
    assert list(rows.columns) == ROW_COLUMNS and len(rows) > 0
    assert rows["claim"].is_unique
    for rec in rows.to_dict("records"):
        per_seed = [v for v in json.loads(rec["per_seed"]) if v is not None]
        # both values per claim: the paper's (NaN only on reference rows) and the measured one
        assert math.isfinite(rec["paper"]) or rec["verdict"] == "reference"
        assert rec["n_seeds"] == len(per_seed) >= 1
        assert rec["measured_mean"] == pytest.approx(sum(per_seed) / len(per_seed))
        assert rec["rule"]
    figures = report.figures()
    assert figures and all(isinstance(f, go.Figure) and len(f.data) > 0 for f in figures)
    assert report.settings["size"] == "test" and report.settings["seeds"]
    assert report.version == nngeo_core.__version__
    assert report.seconds > 0


def test_eta_tau_rows_are_nngeos_own_numbers():
    """The η_τ rows are the closed forms of the layer shapes (dense m·n/(m+n−1); per filter
    n·f1·f2/(m+n−1) with m the padded input and n the output positions), written here anew."""
    rows = test_report("balwani2022_eta_tau").rows.set_index("claim")["measured_mean"]
    dense = [(784, 100), (100, 100), (100, 100), (100, 100), (100, 100), (100, 10)]
    fcn = sum(m * n for m, n in dense) / sum(m + n - 1 for m, n in dense)
    assert rows["fcn_mnist η_τ, whole model"] == pytest.approx(fcn, rel=1e-12)
    per_filter = 28 * 28 * 3 * 3 / (30 * 30 + 28 * 28 - 1)
    assert rows["cnn_mnist η_τ, conv layer 0, per-filter (paper's)"] == pytest.approx(per_filter, rel=1e-12)
    assert rows["cnn_mnist η_τ, dense layer 5"] == pytest.approx(25088 * 10 / (25088 + 10 - 1), rel=1e-12)


def test_magnification_statistics_on_a_made_up_grid():
    # log volume falls with the distance to the boundary: both statistics are positive
    margin = pd.Series([i / 100 - 0.5 for i in range(101)]).to_numpy()
    lv = -abs(margin)  # the same ranks as −|margin|: Spearman 1
    stats = magnification(lv, margin)
    assert stats["spearman"] == pytest.approx(1.0)
    near = sorted(range(101), key=lambda i: abs(margin[i]))[:10]
    rest = [i for i in range(101) if i not in near]
    expect = sum(lv[i] for i in near) / 10 - sum(lv[i] for i in rest) / 91
    assert stats["near_minus_rest"] == pytest.approx(expect)
    flipped = magnification(-lv, margin)
    assert flipped["spearman"] == pytest.approx(-1.0) and flipped["near_minus_rest"] == pytest.approx(-expect)


# -- verdict rules fed fixed numbers -------------------------------------------------------------
@pytest.mark.parametrize(
    ("rule", "paper", "values", "verdict"),
    [
        (Within(2), 50.0, [51.0, 52.5], "agrees"),  # mean 51.75, 1.75 from the paper
        (Within(2), 50.0, [52.0], "agrees"),  # exactly 2 away: within
        (Within(2), 50.0, [53.0, 53.0], "differs"),
        (Within(2), 50.0, [48.5, 44.0], "differs"),  # mean 46.25
        (Within(0.01, relative=True), -100.0, [-100.9], "agrees"),  # 0.9 ≤ 1% of |−100|
        (Within(0.01, relative=True), -100.0, [-101.5], "differs"),
        (Within(2), 50.0, [float("nan")], "inconclusive"),
        (SignAgrees(2, of=3), 1.0, [0.3, -0.1, 0.2], "agrees"),
        (SignAgrees(2, of=3), 1.0, [0.3, -0.1, -0.2], "differs"),
        (SignAgrees(2, of=3), 1.0, [0.3, 0.0, -0.1], "differs"),  # zero has no sign
        (SignAgrees(2, of=3), -1.0, [-0.1, -0.2, 0.3], "agrees"),
        (SignAgrees(2, of=3), 1.0, [0.3, 0.2], "inconclusive"),  # fewer than 3 seeds
        (SignAgrees(2, of=3), 1.0, [0.3, float("nan"), 0.2], "inconclusive"),
        (AtLeast(0.5), 10.0, [9.6], "agrees"),
        (AtLeast(0.5), 10.0, [9.4], "differs"),
        (AtLeast(), 10.0, [10.0, 10.2], "agrees"),
        (Reference(), float("nan"), [1.0], "reference"),
    ],
)
def test_verdict_rules_follow_their_definitions(rule, paper, values, verdict):
    assert rule.verdict(paper, values) == verdict


def test_rules_say_what_they_check():
    assert Within(2).text == "mean within 2 of the paper's value"
    assert Within(0.01, relative=True).text == "mean within 1% of the paper's value"
    assert SignAgrees(2, of=3).text == "sign agrees with the paper's in >= 2 of 3 seeds"
    assert "minus 0.5" in AtLeast(0.5).text


def test_the_claim_table_applies_each_rows_rule():
    m = Measurement(
        rows=[
            Row("a", 50.0, (51.0, 53.0), Within(2)),  # mean 52 → agrees, std √2
            Row("b", 1.0, (0.5, -0.5, -0.2), SignAgrees(2, of=3)),
        ],
        tables={},
        figures=[],
    )
    claim = Claim("t", "p", "s", {s: Size({}) for s in ("test", "default", "paper")}, lambda *a: m)
    rows = build_report(claim, "test", 3).rows.set_index("claim")
    assert rows.loc["a", "verdict"] == "agrees" and rows.loc["b", "verdict"] == "differs"
    assert rows.loc["a", "measured_std"] == pytest.approx(math.sqrt(2.0))
    assert rows.loc["a", "rule"] == Within(2).text


# -- HTML ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_the_html_report_is_standalone(name):
    report = test_report(name)
    page = report.to_html()
    assert '<script src="http' not in page and "<script src='http" not in page
    assert '<link href="http' not in page and 'src="//' not in page
    assert page.count("Plotly.newPlot") == len(report.figure_refs)  # every figure is drawn
    assert "plotly.js" in page.lower()  # the library itself is inline
    for claim in report.rows["claim"]:
        assert claim.replace("&", "&amp;") in page
    assert nngeo_core.__version__ in page and "Settings" in page


# -- store round trip ----------------------------------------------------------------------------
@pytest.fixture
def counted():
    """The η_τ claim with its computation counted (put back afterwards)."""
    name = "balwani2022_eta_tau"
    original = CLAIMS.get(name)
    calls = []

    def compute(*args):
        calls.append(args)
        return original.compute(*args)

    CLAIMS.add(name, dataclasses.replace(original, compute=compute))
    yield name, calls
    CLAIMS.add(name, original)


def test_a_stored_report_reopens_without_recomputing(counted, tmp_path):
    name, calls = counted
    store = Store(tmp_path / "store")
    first, key, cached = reproduce(name, "test", store=store)
    assert (cached, len(calls)) == (False, 1)
    again, key2, cached2 = reproduce(name, "test", store=Store(tmp_path / "store"))
    assert (key2, cached2, len(calls)) == (key, True, 1)
    assert again.equals(first)
    pd.testing.assert_frame_equal(again.rows, first.rows, check_dtype=False)
    assert [f.to_json() for f in again.figures()] == [f.to_json() for f in first.figures()]
    assert again.settings == first.settings and again.version == first.version
    assert store.entry(key)["kind"] == "reproduction"
    fresh, _, forced = reproduce(name, "test", store=store, force=True)
    assert (forced, len(calls)) == (False, 2)
    assert load_report(store, key).equals(fresh)  # the forced run replaced the stored one


def test_keys_hash_the_claim_and_its_non_default_settings():
    name = "zavatone_veth2023_boundary"
    default = spec_for(name)
    assert default == spec_for(name, "default", CLAIMS.get(name).default_seeds)
    assert default.hash == spec_hash(ReproduceSpec(claim=name))
    assert len({default.hash, spec_for(name, "test").hash, spec_for(name, seeds=5).hash}) == 3


# -- one-line errors, nothing stored -------------------------------------------------------------
def test_an_unknown_claim_is_the_registrys_one_line_error(tmp_path, capsys):
    store = tmp_path / "store"
    assert main(["--store", str(store), "reproduce", "no_such_claim"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("nngeo: error: unknown claim 'no_such_claim'; known: ") and "\n" not in err
    assert all(n in err for n in NAMES)
    assert Store(store).keys() == []


def test_missing_paper_data_is_one_line_and_stores_nothing(tmp_path, monkeypatch, capsys):
    data_dir = tmp_path / "empty-data"
    monkeypatch.setenv("NNGEO_DATA_DIR", str(data_dir))
    calls = []

    def compute(*args):
        calls.append(args)
        return Measurement([], {}, [])

    sizes = {"test": Size({}), "default": Size({}), "paper": Size({}, needs=("mnist",))}
    CLAIMS.add("needs_mnist", Claim("needs_mnist", "p", "s", sizes, compute))
    try:
        store = tmp_path / "store"
        assert main(["--store", str(store), "reproduce", "needs_mnist", "--size", "paper"]) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and "mnist" in err and str(data_dir) in err and "NNGEO_DATA_DIR" in err
        with pytest.raises(NNGeoError):
            reproduce("needs_mnist", "paper", store=Store(store))
        assert calls == [] and Store(store).keys() == []
    finally:
        CLAIMS.remove("needs_mnist")


def test_a_registered_paper_size_without_its_data_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NNGEO_DATA_DIR", str(tmp_path / "empty-data"))
    needing = [n for n in NAMES if CLAIMS.get(n).sizes["paper"].needs]
    assert needing  # at least one claim reads a data set at paper size
    for name in needing:
        store = tmp_path / f"store-{name}"
        assert main(["--store", str(store), "reproduce", name, "--size", "paper"]) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and f"claim {name} at size 'paper' needs dataset" in err
        assert str(tmp_path / "empty-data") in err and Store(store).keys() == []


def test_the_cli_lists_and_reproduces(tmp_path, capsys):
    assert main(["reproduce", "--list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in listed] == NAMES
    assert main(["reproductions"]) == 0
    assert capsys.readouterr().out.split("\n")[0].startswith(NAMES[0])
    page = tmp_path / "r.html"
    argv = ["--store", str(tmp_path / "s"), "reproduce", "balwani2022_eta_tau", "--size", "test", "--json"]
    assert main([*argv, "--html", str(page)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["cached"] is False and page.read_text().startswith("<!DOCTYPE html>")
    assert {r["claim"] for r in out["rows"]} == set(test_report("balwani2022_eta_tau").rows["claim"])
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["cached"] is True


def test_figure_refs_name_known_builders_and_tables():
    from nngeo_core.figures.reproduce import BUILDERS

    for name in NAMES:
        report = test_report(name)
        for ref in report.figure_refs:
            assert isinstance(ref, FigureRef) and ref.builder in BUILDERS
            assert ref.table == "rows" or ref.table in report.tables
