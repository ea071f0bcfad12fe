"""The ``reproduce`` job kind: checked and made canonical at submission (bad input is one line and
nothing is queued), run by the in-process worker into the key `nngeo reproduce` uses, and the
Reproduce page's claim-table formatting."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from nngeo_core import jobs
from nngeo_core.dashboard.reproductions import claim_table, measured_text, report_filename
from nngeo_core.errors import NNGeoError
from nngeo_core.jobs.inprocess import InProcessBackend
from nngeo_core.reproduce import CLAIMS
from nngeo_core.reproduce.jobs import ReproduceJobSpec, job_spec, report_key
from nngeo_core.reproduce.report import build_report, reproduce, spec_for
from nngeo_core.store import default_store

CLAIM = "tan2026_curvature_pruning"


def test_the_kind_is_registered_and_describes_its_job():
    assert "reproduce" in jobs.job_kinds()
    kind = jobs.get_job_kind("reproduce")
    assert kind.label_for(job_spec(CLAIM, "test", 2)) == f"reproduce {CLAIM} (test, 2 seeds)"


@pytest.mark.parametrize(
    ("claim", "size", "seeds", "words"),
    [
        ("no_such_claim", "test", None, "unknown claim 'no_such_claim'"),
        (CLAIM, "huge", None, "has no size 'huge'"),
        (CLAIM, "test", -1, "seeds must be a positive integer"),
        (CLAIM, "paper", None, "needs dataset mnist"),  # no MNIST in the test home
    ],
)
def test_bad_input_is_one_line_and_queues_nothing(claim, size, seeds, words):
    backend = InProcessBackend()
    with pytest.raises(NNGeoError) as err:
        backend.submit(ReproduceJobSpec(claim=claim, size=size, seeds=seeds or 0), store=default_store())
    assert words in str(err.value) and "\n" not in str(err.value)
    assert backend.list() == [] and backend.pending_ids() == []
    assert default_store().keys() == []


def test_seeds_are_canonical_and_keyed_as_the_cli_keys_them():
    claim = CLAIMS.get(CLAIM)
    default = job_spec(CLAIM, "test", claim.default_seeds)
    assert default == job_spec(CLAIM, "test") and default.seeds == 0  # the default is left out
    assert job_spec(CLAIM, "test", 2).seeds == 2
    for n in (None, 1, 2, claim.default_seeds):
        assert report_key(job_spec(CLAIM, "test", n)) == spec_for(CLAIM, "test", n).hash
    # a claim that takes no seed: any count is the one computation
    unseeded = next(name for name, c in CLAIMS.items() if not c.seeded)
    assert job_spec(unseeded, "test", 5) == job_spec(unseeded, "test")


def test_the_worker_stores_the_report_the_cli_then_reopens():
    store = default_store()
    backend = InProcessBackend()
    info = backend.submit(job_spec(CLAIM, "test", 1), store=store)
    assert info.state == "queued"
    (done,) = backend.run_pending()
    assert done.state == "done", done.error
    assert done.result == spec_for(CLAIM, "test", 1).hash
    report, key, cached = reproduce(CLAIM, "test", 1, store=store)  # what `nngeo reproduce` does
    assert cached and key == done.result
    assert report.rows["n_seeds"].max() == 1
    again = backend.submit(job_spec(CLAIM, "test", 1), store=store)
    assert again.cached and again.result == key and backend.pending_ids() == []


def test_measured_text_and_the_claim_table():
    assert measured_text(1.5, 0.25, 3) == "1.5 ± 0.25"
    assert measured_text(66.77852, 0.0, 1) == "66.7785"
    assert measured_text(math.nan, math.nan, 0) == "—"
    rows = pd.DataFrame(
        {
            "claim": ["a", "b"],
            "paper": [4.192514, 1.0],
            "measured_mean": [1.25, math.nan],
            "measured_std": [0.5, math.nan],
            "n_seeds": [2, 0],
            "verdict": ["agrees", "inconclusive"],
            "rule": ["within 1", "sign agrees with the paper's in >= 2 of 3 seeds"],
            "per_seed": ["[1.0, 1.5]", "[null]"],
        }
    )
    table = claim_table(rows)
    assert list(table.columns) == ["claim", "paper", "measured", "n_seeds", "verdict", "rule"]
    assert table["measured"].tolist() == ["1.25 ± 0.5", "—"]
    assert table["paper"].tolist() == ["4.19251", "> 0"]  # the paper's digits as the measured ones; a sign as a sign
    assert report_filename("tan/2026 x", "test", "0123456789abcdef") == "tan_2026_x-test-01234567.html"


def test_a_store_holding_a_report_migrates_in_a_fresh_process(tmp_path):
    """`nngeo store migrate` reads every stored spec; a report's spec type lives in the reproduce
    package, which a fresh `nngeo` process has not imported: its spec must still rebuild."""
    import json
    import os
    import subprocess
    import sys

    from nngeo_core.store import Store

    home = tmp_path / "home"
    env = {**os.environ, "NNGEO_HOME": str(home), "NNGEO_STORE": str(home / "store")}
    store = Store(str(home / "store"))
    report_spec = spec_for("balwani2022_eta_tau", "test")
    from nngeo_core.reproduce.report import build_report, save_report

    key = save_report(store, report_spec, build_report(CLAIMS.get("balwani2022_eta_tau"), "test"))
    proc = subprocess.run(
        [sys.executable, "-m", "nngeo_core", "store", "migrate", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    done = json.loads(proc.stdout)
    assert done["renamed"] == {} and store.exists(key)


def test_the_html_report_reads_a_sign_rule_as_a_sign():
    report = build_report(CLAIMS.get("zavatone_veth2023_boundary"), "test")
    html = report.to_html()
    signs = report.rows["rule"].str.startswith("sign agrees").sum()
    assert signs > 0
    assert html.count("<td>&gt; 0</td>") == signs  # every sign row's paper value, none printed as 1.0
