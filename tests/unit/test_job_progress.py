"""The inline progress of a job (``dashboard.job_progress``), checked against its definition, and
the one shared read of the job table (``jobs_view.snapshot``) against the real SQLite queue."""

from __future__ import annotations

import random
import threading

import pytest

from nngeo_core import jobs
from nngeo_core.dashboard import job_progress, jobs_view
from nngeo_core.specs import DataSpec, ModelSpec, RunSpec


def row(state: str, **values) -> dict:
    base = {
        "id": values.pop("id", "j0"),
        "kind": "analyse",
        "label": "",
        "state": state,
        "fraction": 0.0,
        "phase": "",
        "metrics": {},
        "error": None,
        "result": None,
        "created": 100.0,
        "spec_hash": "h",
    }
    base.update(values)
    return base


def run_spec(width: int) -> RunSpec:
    return RunSpec(data=DataSpec("xor"), model=ModelSpec("mlp", {"widths": (width,)}))


# -- fraction and text ---------------------------------------------------------------------------
def test_fraction_is_zero_queued_one_done_and_the_reported_value_in_between():
    assert job_progress.fraction(row("queued", fraction=0.7)) == 0.0  # a queued job has done nothing
    assert job_progress.fraction(row("done", fraction=0.2)) == 1.0
    assert job_progress.fraction(row("running", fraction=0.42)) == 0.42
    assert job_progress.fraction(row("failed", fraction=0.3)) == 0.3  # where it stopped
    assert job_progress.fraction(row("running", fraction=1.7)) == 1.0
    assert job_progress.fraction(row("running", fraction=-1)) == 0.0
    assert job_progress.fraction(row("running", fraction=None)) == 0.0


def test_queue_ahead_counts_the_queued_jobs_submitted_earlier():
    rng = random.Random(0)
    for _ in range(50):
        rows = [
            row(rng.choice(["queued", "queued", "running", "done"]), id=f"j{i}", created=float(rng.randint(0, 20)))
            for i in range(rng.randint(1, 12))
        ]
        for r in rows:
            got = job_progress.queue_ahead(r, rows)
            if r["state"] != "queued":
                assert got is None
                continue
            # brute force from the definition: the queued others strictly older than this one
            want = 0
            for other in rows:
                if other is not r and other["state"] == "queued" and other["created"] < r["created"]:
                    want += 1
            assert got == want
    assert job_progress.queue_ahead(row("queued", created=None), [row("queued", id="x", created=1.0)]) is None


def test_status_text_for_each_state():
    q1, q2, q3 = (row("queued", id=f"q{i}", created=float(i)) for i in range(3))
    busy = row("running", id="r", created=0.0)
    assert job_progress.status_text(q3, [busy, q1, q2, q3]) == "queued (2 ahead)"
    assert job_progress.status_text(q1, [busy, q1, q2, q3]) == "queued (next)"
    assert job_progress.status_text(q1) == "queued"  # without the queue, no position
    running = row("running", fraction=0.42, phase="layer fc2", metrics={"loss": 0.41234, "problems": 7})
    assert job_progress.status_text(running) == "running · layer fc2 · loss 0.412 · 42%"
    assert job_progress.status_text(row("running", fraction=0.05)) == "running · 5%"
    failed = row("failed", error="NNGeoError: bad input\nTraceback (most recent call last): ...")
    assert job_progress.status_text(failed) == "failed: NNGeoError: bad input"
    assert job_progress.failure(row("failed", error=None)) == "unknown error"
    assert job_progress.status_text(row("cancelled")) == "cancelled"
    assert job_progress.status_text(row("done")) == "done"


def test_detail_keeps_the_phase_and_the_headline_metrics_only():
    r = row(
        "running",
        phase="epoch 3/9",
        metrics={"loss": 0.4123, "accuracy": 0.875, "test_accuracy": "0.5", "sparsity": True, "other": 1.0},
    )
    # booleans are not numbers here; a numeric string is; unknown metrics are left out
    assert job_progress.detail(r) == "epoch 3/9 · loss 0.412 · acc 0.875 · test acc 0.5"
    assert jobs_view.progress_text(r) == job_progress.detail(r)
    assert jobs_view.progress_text(row("queued")) == "queued"


def test_poll_interval_is_fast_only_while_something_is_active_or_watched():
    kw = dict(poll_s=2.0, idle_poll_s=30.0)
    assert job_progress.poll_interval([row("done"), row("failed")], [], **kw) == 30.0
    assert job_progress.poll_interval([], [], **kw) == 30.0
    assert job_progress.poll_interval([row("done"), row("running")], [], **kw) == 2.0
    assert job_progress.poll_interval([row("queued")], set(), **kw) == 2.0
    assert job_progress.poll_interval([row("done")], {"j9"}, **kw) == 2.0  # submitted, not seen yet


# -- the shared snapshot -------------------------------------------------------------------------
@pytest.fixture
def counted_reads(monkeypatch):
    """Counts the job-table listings the snapshot makes (jobs.list_jobs, as jobs_view calls it)."""
    calls = []
    real = jobs.list_jobs

    def counting(*args, **kwargs):
        calls.append(kwargs.get("state"))
        return real(*args, **kwargs)

    monkeypatch.setattr(jobs, "list_jobs", counting)
    jobs_view.invalidate()  # nothing cached from an earlier test
    return calls


def test_snapshot_holds_every_active_job_first_then_recent_ones(counted_reads):
    infos = [jobs.submit(run_spec(w)) for w in (3, 4, 5)]
    jobs.cancel(infos[0].id)
    jobs_view.invalidate()
    snap = jobs_view.snapshot()
    # from scratch: active ones (newest first) before finished ones, as list_jobs promises
    want = [r["id"] for r in jobs_view.list_jobs(limit=jobs_view.SNAPSHOT_RECENT)]
    assert [r["id"] for r in snap.rows] == want
    assert [r["id"] for r in snap.rows] == [infos[2].id, infos[1].id, infos[0].id]
    assert [r["id"] for r in snap.recent(1)] == [infos[2].id, infos[1].id]  # every active one, at least
    assert snap.active_by_hash()[infos[1].spec_hash]["id"] == infos[1].id
    assert infos[0].spec_hash not in snap.active_by_hash()
    assert snap.latest_for(infos[0].spec_hash)["state"] == "cancelled"
    assert snap.latest_for("no-such-hash") is None
    assert snap.worker["text"].startswith("no worker running") and "2 queued" in snap.worker["text"]


def test_one_read_serves_every_caller_until_it_is_too_old(counted_reads):
    jobs.submit(run_spec(3))
    first = jobs_view.snapshot(max_age=60)
    n = len(counted_reads)
    assert n == 2  # the active jobs, then the recent ones
    got = []
    threads = [threading.Thread(target=lambda: got.append(jobs_view.snapshot(max_age=60))) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(counted_reads) == n and all(s is first for s in got)  # ten tabs, no new query
    again = jobs_view.snapshot(max_age=0)  # too old for this caller: read again
    assert again is not first and len(counted_reads) == n + 2


def test_a_write_from_this_process_is_seen_at_once(counted_reads):
    jobs_view.snapshot(max_age=60)
    other = jobs.submit(run_spec(6))  # behind the snapshot's back (as the CLI would)
    assert other.id not in jobs_view.snapshot(max_age=60).by_id  # cached: not seen yet
    row = jobs_view.submit(run_spec(7))  # the dashboard's own submission invalidates
    snap = jobs_view.snapshot(max_age=60)
    assert {row["id"], other.id} <= set(snap.by_id)
    jobs_view.cancel(row["id"])
    assert jobs_view.snapshot(max_age=60).by_id[row["id"]]["state"] == "cancelled"


def test_finished_count_grows_when_an_active_job_ends(counted_reads):
    info = jobs.submit(run_spec(8))
    jobs_view.snapshot(max_age=0)
    before = jobs_view.finished_count()
    jobs_view.snapshot(max_age=0)
    assert jobs_view.finished_count() == before  # nothing ended
    jobs.cancel(info.id)
    jobs_view.snapshot(max_age=0)
    assert jobs_view.finished_count() == before + 1
