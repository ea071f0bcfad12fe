"""The job table (SQLite, and Redis when `redis-server` is installed), worker liveness and
recovery of jobs whose worker died, consumer planning, and the `nngeo jobs` commands without a
worker."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

from nngeo_core.cli import main
from nngeo_core.errors import NNGeoError
from nngeo_core.jobs.liveness import live_workers, pid_alive, recover_dead_jobs, worker_alive
from nngeo_core.jobs.supervisor import plan_consumers
from nngeo_core.jobs.table import SqliteJobTable, blank_row

REDIS = shutil.which("redis-server")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def redis_url():
    if REDIS is None:
        pytest.skip("redis-server is not installed (Debian package: redis-server)")
    import redis

    port = free_port()
    proc = subprocess.Popen(
        [REDIS, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while True:
        try:
            redis.Redis.from_url(url).ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail("redis-server did not start")
            time.sleep(0.05)
    yield url
    proc.terminate()
    proc.wait(10)


@pytest.fixture(params=["sqlite", "redis"])
def table(request, tmp_path):
    if request.param == "sqlite":
        t = SqliteJobTable(tmp_path / "jobs.db")
    else:
        from nngeo_core.jobs.table import RedisJobTable

        url = request.getfixturevalue("redis_url")
        t = RedisJobTable(url, prefix=f"t{os.getpid()}{time.monotonic_ns()}")
    yield t
    t.close()


def row(job_id: str, spec_hash: str = "a" * 16, state: str = "queued", store: str = "/s", **kw) -> dict:
    return blank_row(
        id=job_id, kind="train", spec_hash=spec_hash, spec="{}", store=store, state=state, submitted=time.time(), **kw
    )


def test_create_dedupes_active_jobs_per_spec_and_store(table):
    a, created = table.create(row("job1"))
    assert created and a["state"] == "queued" and a["attempts"] == 0 and a["progress"] == 0.0
    b, created = table.create(row("job2"))
    assert not created and b["id"] == "job1"
    c, created = table.create(row("job3", store="/other"))
    assert created and c["id"] == "job3"  # another store is another result
    assert table.transition("job1", ["queued"], {"state": "running", "worker": "w"}, count_attempt=True)
    assert table.create(row("job4"))[0]["id"] == "job1"  # running still blocks duplicates
    assert table.transition("job1", ["running"], {"state": "done", "result": "k"}, worker="w")
    d, created = table.create(row("job5"))
    assert created and d["id"] == "job5"  # a finished job does not
    assert table.latest("a" * 16, "/s")["id"] == "job5"
    assert table.get("job1")["attempts"] == 1


def test_transitions_are_conditional(table):
    table.create(row("j1"))
    assert not table.transition("j1", ["running"], {"state": "done"})
    assert table.transition("j1", ["queued"], {"state": "running", "worker": "w1", "pid": 12, "started": 1.5})
    assert not table.transition("j1", ["queued"], {"state": "running", "worker": "w2"})  # second claim loses
    assert not table.transition("j1", ["running"], {"state": "done"}, worker="w2")  # not w2's job
    assert table.transition(
        "j1", ["running"], {"state": "queued", "worker": None, "pid": None, "started": None}, worker="w1"
    )
    r = table.get("j1")
    assert r["state"] == "queued" and r["worker"] is None and r["pid"] is None and r["started"] is None
    assert not table.transition("missing", ["queued"], {"state": "running"})
    with pytest.raises(ValueError):
        table.update("j1", {"state": "done"})
    with pytest.raises(KeyError):
        table.update("j1", {"no_such_field": 1})


def test_cancel_flag_and_listing(table):
    for i in range(5):
        table.create(row(f"j{i}", spec_hash=f"{i:016x}"))
        time.sleep(0.002)
    assert table.request_cancel("j0") and table.get("j0")["state"] == "cancelled"
    table.transition("j1", ["queued"], {"state": "running", "worker": "w"})
    assert table.request_cancel("j1")
    r1 = table.get("j1")
    assert r1["state"] == "running" and r1["cancel_requested"] == 1
    table.transition("j2", ["queued"], {"state": "done"})
    assert not table.request_cancel("j2") and table.get("j2")["state"] == "done"
    assert [r["id"] for r in table.list()] == ["j4", "j3", "j2", "j1", "j0"]
    assert [r["id"] for r in table.list(["queued"])] == ["j4", "j3"]
    assert [r["id"] for r in table.list(["queued", "running"], limit=2)] == ["j4", "j3"]
    assert [r["id"] for r in table.list(kind="other")] == []
    table.update("j3", {"progress": 0.25, "phase": "epoch 1/4", "metrics": json.dumps({"loss": 0.5})})
    r3 = table.get("j3")
    assert r3["progress"] == 0.25 and r3["phase"] == "epoch 1/4" and json.loads(r3["metrics"]) == {"loss": 0.5}


def test_prefix_resolution_logs_and_workers(table):
    table.create(row("abc123"))
    table.create(row("abd456", spec_hash="b" * 16))
    assert table.resolve("abc") == "abc123"
    with pytest.raises(NNGeoError, match="several"):
        table.resolve("ab")
    with pytest.raises(NNGeoError, match="no job"):
        table.resolve("zz")
    table.append_logs("abc123", ["one", "two"])
    table.append_logs("abc123", ["three"])
    assert table.logs("abc123") == ["one", "two", "three"] and table.logs("abc123", 2) == ["three"]
    assert table.logs("abd456") == []
    now = time.time()
    table.put_worker(
        dict(
            id="w1", host=socket.gethostname(), pid=os.getpid(), device="cpu", started=now, heartbeat=now, state="idle"
        )
    )
    table.put_worker(dict(id="w2", host="elsewhere", pid=1, device="cuda:0", started=now, heartbeat=now - 3600))
    assert {w["id"] for w in table.workers()} == {"w1", "w2"}
    assert [w["id"] for w in live_workers(table)] == ["w1"]  # w2's heartbeat is an hour old
    table.remove_worker("w1")
    assert [w["id"] for w in table.workers()] == ["w2"]


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_liveness_of_processes_and_workers():
    assert pid_alive(os.getpid()) and not pid_alive(_dead_pid()) and not pid_alive(None)
    host = socket.gethostname()
    assert worker_alive({"heartbeat": time.time(), "host": host, "pid": os.getpid()})
    assert not worker_alive({"heartbeat": time.time(), "host": host, "pid": _dead_pid()})
    assert worker_alive({"heartbeat": time.time(), "host": "other-host", "pid": 1})
    assert not worker_alive({"heartbeat": time.time() - 3600, "host": "other-host", "pid": 1})


def test_a_killed_child_not_yet_reaped_counts_as_dead():
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    p.kill()
    time.sleep(0.3)  # a zombie until we reap it
    assert not pid_alive(p.pid)
    p.wait()


def test_recovery_fails_or_requeues_jobs_of_dead_workers(table):
    host, now = socket.gethostname(), time.time()
    dead = _dead_pid()
    for jid, h in (("dead1", "1"), ("dead2", "2"), ("alive", "3"), ("stale", "4"), ("mine", "5")):
        table.create(row(jid, spec_hash=h * 16))
    claims = {
        "dead1": (host, dead, now),
        "dead2": (host, dead, now),
        "alive": (host, os.getpid(), now),
        "stale": ("far-away", 77, now - 3600),
        "mine": (host, dead, now),
    }
    for jid, (h, pid, beat) in claims.items():
        table.transition(
            jid,
            ["queued"],
            {"state": "running", "worker": f"w-{jid}", "host": h, "pid": pid, "heartbeat": beat, "started": beat},
            count_attempt=True,
        )
    table.transition("dead2", ["running"], {"attempts": 2})  # already re-run once
    enqueued = []
    changed = dict(recover_dead_jobs(table, me="w-mine", requeue=True, enqueue=enqueued.append))
    # dead pid on this host, or a heartbeat older than NNGEO_WORKER_STALE_S on another host
    assert changed == {"dead1": "queued", "dead2": "failed", "stale": "queued"}
    assert sorted(enqueued) == ["dead1", "stale"]
    assert table.get("dead1")["state"] == "queued" and table.get("dead1")["worker"] is None
    r = table.get("dead2")
    assert r["state"] == "failed" and r["error"].startswith("worker died (killed?) while running")
    assert any("died" in line for line in table.logs("dead2"))
    assert table.get("alive")["state"] == "running" and table.get("mine")["state"] == "running"
    # without re-queueing, a dead worker's job fails
    changed = dict(recover_dead_jobs(table, me=None, requeue=False))
    assert changed == {"mine": "failed"}


def test_plan_consumers():
    assert plan_consumers("auto", None, 0) == [None]  # CPU machine: one consumer here
    assert plan_consumers("auto", None, 1) == [None]
    assert plan_consumers("auto", None, 4) == ["0", "1", "2", "3"]
    assert plan_consumers("auto", "2,5", 8) == ["2", "5"]  # respects CUDA_VISIBLE_DEVICES
    assert plan_consumers("auto", "", 8) == [None]  # GPUs hidden
    assert plan_consumers("none", "0,1", 2) == [""]
    assert plan_consumers("3", None, 4) == ["3"]
    assert plan_consumers("0,1", None, 0) == ["0", "1"]
    with pytest.raises(NNGeoError):
        plan_consumers("0;rm", None, 1)


# -- the commands, with no worker running -------------------------------------------------------
def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_jobs_cli_submit_status_list_cancel_logs_without_worker(capsys):
    code, out, _ = run_cli(capsys, "jobs", "submit", "health", "--seconds", "5", "--tag", "cli", "--json")
    job = json.loads(out)
    assert code == 0 and job["state"] == "queued" and job["cached"] is False and job["kind"] == "health"
    code, out, _ = run_cli(capsys, "jobs", "submit", "health", "--seconds", "5", "--tag", "cli", "--json")
    assert json.loads(out)["id"] == job["id"] and json.loads(out)["existing"] is True
    code, out, _ = run_cli(capsys, "jobs", "status", job["id"][:6], "--json")
    assert json.loads(out)["id"] == job["id"]
    code, out, _ = run_cli(capsys, "jobs", "list", "--json")
    assert [j["id"] for j in json.loads(out)] == [job["id"]]
    code, out, _ = run_cli(capsys, "jobs", "cancel", job["id"], "--json")
    assert json.loads(out)["state"] == "cancelled"
    code, out, _ = run_cli(capsys, "jobs", "logs", job["id"])
    assert "queued by" in out
    code, out, _ = run_cli(capsys, "jobs", "workers", "--json")
    st = json.loads(out)
    assert st["alive"] is False and st["queued"] == 0 and st["backend"] == "sqlite"


def test_jobs_cli_errors_are_one_line(capsys):
    code, _, err = run_cli(capsys, "jobs", "status", "nope")
    assert code == 2 and err.strip().count("\n") == 0 and "no job 'nope'" in err
    code, _, err = run_cli(capsys, "jobs", "submit", "no-such-kind")
    assert code == 2 and "unknown job kind 'no-such-kind'" in err
    code, _, err = run_cli(capsys, "jobs", "submit", "health", "--spec-json", "{not json")
    assert code == 2 and "not valid JSON" in err


def test_jobs_cli_spec_json_queues_the_same_job_as_flags(capsys):
    from nngeo_core.cli import build_parser, run_spec_from_args
    from nngeo_core.specs import to_dict

    argv = ["--model", "mlp", "--widths", "4", "--data", "xor", "--epochs", "1"]
    spec = run_spec_from_args(build_parser().parse_args(["train", *argv]))
    _, out, _ = run_cli(capsys, "jobs", "submit", "train", *argv, "--json")
    by_flags = json.loads(out)
    _, out, _ = run_cli(capsys, "jobs", "submit", "train", "--spec-json", json.dumps(to_dict(spec)), "--json")
    by_json = json.loads(out)
    assert by_flags["spec_hash"] == spec.hash and by_json["id"] == by_flags["id"]


def test_ensure_worker_respects_the_off_switch(monkeypatch):
    from nngeo_core import jobs

    monkeypatch.setenv("NNGEO_EMBEDDED_WORKER", "0")
    assert jobs.ensure_worker() is None
    monkeypatch.setenv("NNGEO_EMBEDDED_WORKER", "1")
    monkeypatch.setenv("NNGEO_QUEUE", "memory://ensure-test")
    assert jobs.ensure_worker() is None  # the in-process backend needs no worker process
    assert jobs.start_supervisor() is None  # nor a supervisor


def test_jobs_list_and_status_fail_a_dead_workers_job_with_nothing_else_running(capsys):
    """No worker and no dashboard: the reading commands themselves notice the dead worker."""
    from nngeo_core import jobs

    table = jobs.get_backend().table
    dead = _dead_pid()
    code, out, _ = run_cli(capsys, "jobs", "submit", "health", "--seconds", "5", "--tag", "dead", "--json")
    job = json.loads(out)["id"]
    now = time.time()
    fields = {"state": "running", "worker": "w-gone", "host": socket.gethostname(), "pid": dead, "heartbeat": now}
    assert table.transition(job, ["queued"], dict(fields, started=now, progress=0.58), count_attempt=True)
    assert table.get(job)["state"] == "running"  # what `jobs list` said before: running 58%
    code, out, _ = run_cli(capsys, "jobs", "list", "--json")
    (listed,) = json.loads(out)
    assert code == 0 and listed["state"] == "failed" and listed["error"].startswith("worker died (killed?)")
    assert f"pid {dead}" in listed["error"] and "\n" not in listed["error"]
    code, out, _ = run_cli(capsys, "jobs", "status", job)
    assert "state failed" in out and "error: worker died (killed?) while running" in out
