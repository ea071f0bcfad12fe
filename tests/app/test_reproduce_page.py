"""The Reproduce page (real app.py in Streamlit's AppTest, a real store and job queue): it renders
with no report; a report stored beforehand through the core (the CLI's path) shows at once, with
its claim table row for row, figures and the standalone-HTML download; a size whose data are
missing is one error and a disabled button; *Reproduce* queues a ``reproduce`` job whose worker
stores the report under the CLI's key, which the page then shows."""

from __future__ import annotations

import json
import math
import uuid
from pathlib import Path

from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[2] / "app.py")
CLAIM = "tan2026_curvature_pruning"  # seeded, needs digits (built in) at size test, mnist at paper


def open_reproduce(claim: str = CLAIM, size: str = "test") -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert not at.exception, [e.value for e in at.exception]
    at.switch_page("pages/reproduce.py").run()
    at.selectbox(key="repro-claim").set_value(claim).run()
    at.radio(key="repro-size").set_value(size).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def downloads(at: AppTest) -> list:
    return [e for e in at.get("download_button") if e.proto.id]


def test_the_page_renders_with_no_report_and_offers_reproduce():
    from nngeo_core.reproduce import CLAIMS

    at = open_reproduce()
    assert at.title[0].value == "Reproduce a paper's claim"
    assert at.selectbox(key="repro-claim").options == [f"{c.paper} · {n}" for n, c in CLAIMS.items()]
    statement = CLAIMS.get(CLAIM).statement
    assert any(statement in m.value for m in at.markdown)
    assert not at.error and not at.get("plotly_chart")
    button = at.button(key="repro-go")
    assert not button.disabled and button.label == "Reproduce (test)"


def test_a_size_whose_data_are_missing_is_one_error_and_a_disabled_button():
    from nngeo_core import jobs

    at = open_reproduce(size="paper")  # the test home has no MNIST
    assert len(at.error) == 1
    message = at.error[0].value
    assert "\n" not in message and "needs dataset mnist" in message
    assert at.button(key="repro-go").disabled
    assert jobs.list_jobs() == []


def test_a_report_stored_through_the_core_shows_at_once(monkeypatch):
    from nngeo_core import jobs
    from nngeo_core.dashboard.reproductions import measured_text
    from nngeo_core.reproduce.report import reproduce
    from nngeo_core.store import default_store

    report, key, cached = reproduce(CLAIM, "test", 2, store=default_store())  # as `nngeo reproduce`
    assert not cached
    at = open_reproduce()
    at.number_input(key=f"repro-seeds-{CLAIM}").set_value(2).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert all(b.key != "repro-go" for b in at.button)  # nothing to compute
    assert jobs.list_jobs() == []  # shown without a job
    assert any(key in s.value for s in at.success)
    table = at.dataframe[0].value
    assert list(table.columns) == ["claim", "paper", "measured", "n_seeds", "verdict", "rule"]
    assert table["claim"].tolist() == report.rows["claim"].tolist()
    assert table["verdict"].tolist() == report.rows["verdict"].tolist()
    for shown, row in zip(table["measured"], report.rows.to_dict("records"), strict=True):
        # the shown mean ± std is the per-seed values' own (recomputed here from the stored seeds)
        values = [v for v in json.loads(row["per_seed"]) if v is not None]
        mean = sum(values) / len(values)
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
        assert shown == measured_text(mean, std, len(values))
        assert len(values) == 2 and "±" in shown
    assert len(at.get("plotly_chart")) == len(report.figure_refs) >= 1
    names = [d.proto.label for d in downloads(at)]
    assert "Download report (HTML)" in names
    # another seed count is another report: not stored, so the button is back
    at.number_input(key=f"repro-seeds-{CLAIM}").set_value(1).run()
    assert not at.get("plotly_chart") and not at.button(key="repro-go").disabled


def test_reproduce_queues_a_job_and_the_report_appears(monkeypatch):
    from nngeo_core import jobs
    from nngeo_core.reproduce.report import load_report, spec_for
    from nngeo_core.store import default_store

    monkeypatch.setenv("NNGEO_QUEUE", f"memory://reproduce-page-{uuid.uuid4().hex}")  # a worker thread here
    at = open_reproduce()
    at.button(key="repro-go").click().run()
    assert not at.exception, [e.value for e in at.exception]
    (job,) = jobs.list_jobs()
    assert job.kind == "reproduce" and job.label == f"reproduce {CLAIM} (test)"
    done = jobs.wait(job.id, timeout=120)
    assert done.state == "done", done.error
    key = spec_for(CLAIM, "test", None).hash  # the key `nngeo reproduce CLAIM --size test` uses
    assert done.result == key and default_store().exists(key)
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    report = load_report(default_store(), key)
    assert at.dataframe[0].value["claim"].tolist() == report.rows["claim"].tolist()
    assert len(at.get("plotly_chart")) == len(report.figure_refs)
    # submitting again is served from the store: no second computation
    again = jobs.submit(job_spec_of(CLAIM, "test"))
    assert again.cached and again.result == key


def job_spec_of(claim: str, size: str):
    from nngeo_core.reproduce.jobs import job_spec

    return job_spec(claim, size)
