"""Conformance suite for the reproduction claims: every entry of ``CLAIMS`` must pass every test.

The tests iterate the registry, so a newly registered claim is covered without edits. Each runs
the claim at its ``test`` size with one seed (seconds)."""

from __future__ import annotations

import math

import pytest

from nngeo_core.figures.reproduce import BUILDERS
from nngeo_core.progress import Cancelled, Progress
from nngeo_core.reproduce import CLAIMS
from nngeo_core.reproduce.base import SIZES, Measurement
from nngeo_core.reproduce.verdicts import VERDICTS

NAMES = CLAIMS.names()
RUNS: dict[str, Measurement] = {}
# datasets a default size may use: made in code or bundled with scikit-learn (no data directory)
BUILT_IN = {"xor", "sinusoid", "moons", "circles", "spirals", "digits"}


def measured(name: str) -> Measurement:
    if name not in RUNS:
        RUNS[name] = CLAIMS.get(name).run("test", 1)
    return RUNS[name]


def test_there_are_claims():
    assert len(NAMES) >= 2


@pytest.mark.parametrize("name", NAMES)
def test_declares_its_sizes_and_its_paper(name):
    claim = CLAIMS.get(name)
    assert claim.name == name and claim.paper and claim.statement
    assert set(SIZES) <= set(claim.sizes)
    assert set(claim.sizes["default"].needs) <= BUILT_IN and set(claim.sizes["test"].needs) <= BUILT_IN


@pytest.mark.parametrize("name", NAMES)
def test_rows_have_rules_and_verdicts(name):
    m = measured(name)
    assert m.rows and len({r.name for r in m.rows}) == len(m.rows)
    for row in m.rows:
        assert row.rule.text and row.rule.verdict(row.paper, row.values) in VERDICTS
        assert len(row.values) == 1 and all(isinstance(v, float) for v in row.values)
        assert math.isfinite(row.paper) or row.rule.verdict(row.paper, row.values) == "reference"


@pytest.mark.parametrize("name", NAMES)
def test_figures_read_its_tables_through_known_builders(name):
    m = measured(name)
    assert m.figures
    for ref in m.figures:
        assert ref.builder in BUILDERS and (ref.table == "rows" or ref.table in m.tables)


@pytest.mark.parametrize("name", NAMES)
def test_is_deterministic(name):
    again = CLAIMS.get(name).run("test", 1)
    assert [(r.name, r.values) for r in again.rows] == [(r.name, r.values) for r in measured(name).rows]


@pytest.mark.parametrize("name", NAMES)
def test_honours_cancel_and_reports_progress(name):
    seen = []
    CLAIMS.get(name).run("test", 1, Progress(lambda f, phase, m: seen.append(f), min_interval=0.0))
    assert seen and seen[-1] == 1.0 and seen == sorted(seen)
    with pytest.raises(Cancelled):
        CLAIMS.get(name).run("test", 1, Progress(is_cancelled=lambda: True))
