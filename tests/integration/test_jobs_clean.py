"""`nngeo jobs clean --older-than DAYS` and the supervisor's trimming (``NNGEO_JOBS_KEEP_DAYS``)
against the SQLite job table and a real redis-server: jobs of every state with old timestamps,
and exactly those the definition names are deleted (finished, and ended - or, never started,
submitted - more than DAYS ago), with their logs; queued and running jobs are never touched."""

from __future__ import annotations

import json
import os
import random
import time

import pytest

from nngeo_core import jobs
from nngeo_core.cli import main
from nngeo_core.jobs.embedded import Supervisor
from nngeo_core.jobs.runner import HOST
from nngeo_core.jobs.table import ACTIVE_STATES, FINAL_STATES, STATES, blank_row

DAY = 86400.0
STORE = "test://clean"  # only a name in the rows: nothing is stored


@pytest.fixture(params=["sqlite", "redis"])
def backend(request, monkeypatch):
    if request.param == "redis":
        monkeypatch.setenv("NNGEO_QUEUE", request.getfixturevalue("redis_url"))
    b = jobs.get_backend()
    assert b.name == request.param
    return b


def make_jobs(table, n: int = 120, seed: int = 0) -> dict[str, dict]:
    """Jobs of every state, submitted 0..20 days ago; finished ones ended up to 3 days after they
    were submitted (or have no end time); running ones belong to a live worker (this process, a
    fresh heartbeat), so recovery leaves them be. No time lies within an hour of a whole day, so the few
    seconds between making them and cleaning cannot move one across a cut at whole days."""
    rng = random.Random(seed)
    now = time.time()
    made = {}
    for i in range(n):
        state = STATES[i % len(STATES)]
        submitted = now - rng.randrange(0, 20) * DAY - rng.uniform(0.1, 0.4) * DAY
        ended = None
        if state in FINAL_STATES and i % 7:
            ended = min(submitted + rng.choice([0.0, 0.5, 1.0, 2.0, 3.0]) * DAY, now - 0.05 * DAY)
        row = blank_row(
            id=f"job{i:04d}",
            kind="health",
            spec_hash=f"h{i:04d}",
            spec="{}",
            store=STORE,
            label=f"job {i}",
            state=state,
            submitted=submitted,
            started=submitted if state != "queued" else None,
            ended=ended,
            **(dict(worker="test-worker", host=HOST, pid=os.getpid(), heartbeat=now) if state == "running" else {}),
        )
        created, fresh = table.create(row)
        assert fresh
        table.append_logs(row["id"], [f"line {k} of {row['id']}" for k in range(3)])
        made[row["id"]] = created
    return made


def expected_deleted(rows: dict[str, dict], days: float, now: float) -> set[str]:
    """The definition, row by row: finished, and its end (else its submission) before now - days."""
    return {
        job_id
        for job_id, r in rows.items()
        if r["state"] in FINAL_STATES and (r["ended"] if r["ended"] is not None else r["submitted"]) < now - days * DAY
    }


def check_table(table, rows: dict[str, dict], gone: set[str]) -> None:
    kept = set(rows) - gone
    assert {r["id"] for r in table.list(limit=None)} == kept
    for job_id in gone:
        assert table.get(job_id) is None and table.logs(job_id) == []
        assert table.latest(rows[job_id]["spec_hash"], STORE) is None
    for job_id in kept:
        assert table.get(job_id) == rows[job_id]  # untouched, active ones included
        assert table.logs(job_id) == [f"line {k} of {job_id}" for k in range(3)]
        assert table.latest(rows[job_id]["spec_hash"], STORE)["id"] == job_id
    if hasattr(table, "r"):  # redis: nothing of a deleted job is left behind
        assert table.r.zcard(table._index) == len(kept)
        assert not any(table.r.exists(f"{table.p}job:{j}", f"{table.p}log:{j}") for j in gone)
        assert {j.decode() for j in table.r.smembers(table._active)} == {
            j for j in kept if rows[j]["state"] in ACTIVE_STATES
        }


def test_clean_deletes_exactly_the_old_finished_jobs(backend, capsys):
    table = backend.table
    rows = make_jobs(table)
    gone = expected_deleted(rows, 7, time.time())
    assert 10 < len(gone) < len(rows) - 30  # the cut falls inside the data, on both sides

    assert main(["jobs", "clean", "--older-than", "7", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"deleted": len(gone), "older_than_days": 7.0}
    check_table(table, rows, gone)

    # again with fractional days, as text; then 0: every finished job, never an active one
    gone2 = expected_deleted(rows, 2.5, time.time())
    assert gone < gone2
    assert main(["jobs", "clean", "--older-than", "2.5"]) == 0
    assert capsys.readouterr().out.strip() == f"deleted {len(gone2 - gone)} finished jobs older than 2.5 days"
    check_table(table, rows, gone2)
    everything = {j for j, r in rows.items() if r["state"] in FINAL_STATES}
    assert jobs.clean(0) == len(everything - gone2)
    check_table(table, rows, everything)
    assert main(["jobs", "clean", "--older-than", "0", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["deleted"] == 0


@pytest.mark.parametrize("bad", ["-1", "-0.5", "abc", "", "nan", "inf", "7days"])
def test_bad_days_is_a_one_line_error_and_deletes_nothing(bad, capsys):
    table = jobs.get_backend().table
    rows = make_jobs(table, n=20)
    assert main(["jobs", "clean", f"--older-than={bad}"]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert captured.out == "" and "\n" not in err and err.startswith("nngeo: error: --older-than")
    check_table(table, rows, set())


def test_the_supervisor_trims_jobs_older_than_the_keep_days(backend, monkeypatch):
    """No worker wanted here (NNGEO_EMBEDDED_WORKER=0): a supervisor round only recovers and trims."""
    table = backend.table
    rows = make_jobs(table)
    monkeypatch.setenv("NNGEO_JOBS_KEEP_DAYS", "0")  # keeps all
    Supervisor(backend).check()
    check_table(table, rows, set())

    monkeypatch.setenv("NNGEO_JOBS_KEEP_DAYS", "5")
    sup = Supervisor(backend)
    sup.check()
    gone = expected_deleted(rows, 5, time.time())
    check_table(table, rows, gone)
    assert sup.handle is None  # it started no worker

    # trimming is hourly, not every round: a job that ages past the cut waits for the next one
    late, _ = table.create(
        blank_row(
            id="late",
            kind="health",
            spec_hash="late",
            spec="{}",
            store=STORE,
            label="late",
            state="done",
            submitted=time.time() - 6.3 * DAY,
            started=time.time() - 6.3 * DAY,
            ended=time.time() - 1.3 * DAY,
        )
    )
    sup.check()
    assert table.get("late") == late
    table.update("late", {"ended": late["submitted"]})  # as if it had ended at once: 6 days ago
    sup.check()
    assert table.get("late") is not None
    sup._next_clean = 0.0  # the hour has passed
    sup.check()
    assert table.get("late") is None
    check_table(table, rows, gone)
