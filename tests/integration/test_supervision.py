"""The app process's supervisor of the embedded worker (``jobs.start_supervisor``), with real
worker processes and no browser: a SIGKILLed worker's job is failed with a one-line reason and a
new worker takes the next job, with no page ever opened; a supervisor starts no worker while
another process serves the queue, two app processes never start two, and one that exits stops
its worker and starts no other."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from worker_helpers import Workers, nngeo_env, wait_until

from nngeo_core import jobs
from nngeo_core.cli import main
from nngeo_core.jobs.embedded import restart_delay
from nngeo_core.jobs.kinds import HealthSpec
from nngeo_core.jobs.liveness import live_workers, pid_alive

DIED = "worker died (killed?) while running"


def wait_finished(job_id: str, timeout: float = 120.0):
    return wait_until(lambda: (i := jobs.status(job_id)).finished and i, timeout, f"job {job_id} to finish", 0.1)


def live_pids(table) -> set[int]:
    return {w["pid"] for w in live_workers(table)}


@pytest.fixture
def app_env(tmp_path, monkeypatch):
    """This test process as the app: the embedded worker on, one torch thread per worker (two cores
    shared with the rest of the suite). Its supervisor and worker are stopped at teardown."""
    env = nngeo_env(tmp_path / "home", NNGEO_EMBEDDED_WORKER="1", NNGEO_WORKER_THREADS="1")
    for k in ("NNGEO_HOME", "NNGEO_STORE", "NNGEO_QUEUE", "NNGEO_EMBEDDED_WORKER", "NNGEO_WORKER_THREADS"):
        monkeypatch.setenv(k, env[k])
    yield env
    jobs.stop_supervisor(stop_worker=True)


def logs_of(env) -> str:
    """The supervised workers' logs, for a failure message."""
    folder = os.path.join(env["NNGEO_HOME"], "logs")
    if not os.path.isdir(folder):
        return ""
    return "\n".join(
        f"---- {name} ----\n" + open(os.path.join(folder, name), errors="replace").read()[-3000:]
        for name in sorted(os.listdir(folder))
    )


@pytest.mark.timeout(300)
def test_a_killed_worker_is_replaced_and_its_job_failed_without_any_page(app_env, capsys):
    table = jobs.get_backend().table
    sup = jobs.start_supervisor()
    assert sup is not None and sup.handle is not None and jobs.start_supervisor() is sup  # once per process
    first = sup.handle
    Workers.wait_ready(table, [first.process])
    long = jobs.submit(HealthSpec(seconds=600, tag="killed"))
    wait_until(lambda: (s := jobs.status(long.id)).state == "running" and s.progress > 0, 90, "the long job to run")

    os.kill(first.pid, signal.SIGKILL)
    t_kill = time.monotonic()
    after = jobs.submit(HealthSpec(tag="after-kill"))  # queued while no worker lives
    new = wait_until(lambda: live_pids(table) - {first.pid}, 60, "a new worker's heartbeat", poll=0.02)
    t_beat = time.monotonic() - t_kill
    killed = wait_finished(long.id, 60)
    t_failed = time.monotonic() - t_kill

    assert not pid_alive(first.pid)
    assert killed.state == "failed" and killed.error.startswith(DIED), logs_of(app_env)
    assert str(first.pid) in killed.error and "\n" not in killed.error
    assert any("died while running the job; marked failed" in line for line in jobs.logs(long.id))
    (new_pid,) = new
    done = wait_finished(after.id)
    assert done.state == "done" and done.pid == new_pid, logs_of(app_env)
    assert sup.handle is not None and sup.handle.pid == new_pid and sup.started_workers == [first.pid, new_pid]
    assert sup.restarts == 1 and sup.last_error is None
    assert jobs.worker_status()["supervisor"]["restarts"] == 1

    # the CLI says what the table says: failed, not "running 58%"
    capsys.readouterr()
    assert main(["jobs", "list", "--json"]) == 0
    states = {j["id"]: j["state"] for j in json.loads(capsys.readouterr().out)}
    assert states[long.id] == "failed" and states[after.id] == "done"
    print(f"SIGKILL -> new worker heartbeat {t_beat:.2f} s, killed job marked failed {t_failed:.2f} s")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_requeue_dead_runs_the_killed_job_once_more(app_env, monkeypatch):
    monkeypatch.setenv("NNGEO_REQUEUE_DEAD", "1")
    table = jobs.get_backend().table
    sup = jobs.start_supervisor()
    first = sup.handle
    Workers.wait_ready(table, [first.process])
    spec = HealthSpec(seconds=4, tag="requeued")
    info = jobs.submit(spec)
    wait_until(lambda: (s := jobs.status(info.id)).state == "running" and s.progress > 0, 90, "the job to run")
    os.kill(first.pid, signal.SIGKILL)
    final = wait_finished(info.id)
    assert final.state == "done" and final.attempts == 2 and final.pid != first.pid, logs_of(app_env)
    assert final.pid == sup.handle.pid
    assert any("re-queued" in line for line in jobs.logs(info.id))


APP_SCRIPT = """
import json, sys
from nngeo_core import jobs
sup = jobs.start_supervisor()
print(json.dumps({"pid": sup.handle.pid if sup.handle else None}), flush=True)
sys.stdin.read()  # until the test closes our stdin; then a normal exit (atexit stops the supervisor and worker)
print(json.dumps({"started": sup.started_workers}), flush=True)
"""


@pytest.mark.timeout(300)
def test_supervisors_leave_a_live_worker_be_and_two_apps_start_one_between_them(app_env, workers):
    table = jobs.get_backend().table
    external = workers.start(app_env)  # a separate `nngeo worker` serves the queue
    Workers.wait_ready(table, [external])
    other = subprocess.Popen(
        [sys.executable, "-c", APP_SCRIPT], env=app_env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert json.loads(other.stdout.readline()) == {"pid": None}  # the second app started none
        sup = jobs.start_supervisor()
        assert sup.handle is None and sup.started_workers == []  # nor did this one
        assert live_pids(table) == {external.pid}

        # the external worker dies: exactly one of the two apps replaces it
        os.kill(external.pid, signal.SIGKILL)
        external.wait()
        (replacement,) = wait_until(lambda: live_pids(table) - {external.pid}, 60, "a replacement worker")
        time.sleep(3 * 0.5 + 2)  # several supervisor rounds in both apps, and a worker start
        assert live_pids(table) == {replacement}, logs_of(app_env)
        info = jobs.submit(HealthSpec(tag="two-apps"))
        assert wait_finished(info.id).pid == replacement

        # the second app exits normally: its supervisor and worker (if it started the replacement)
        # stop, and then this app keeps the queue served
        other.stdin.close()
        assert other.wait(60) == 0
        theirs = json.loads(other.stdout.readline())["started"]
        assert len(theirs) + len(sup.started_workers) == 1 and replacement in theirs + sup.started_workers
        if theirs:
            wait_until(lambda: not pid_alive(replacement), 30, "the exited app's worker to stop")
            wait_until(lambda: sup.handle is not None and sup.handle.pid in live_pids(table), 60, "this app's worker")
        else:
            assert pid_alive(replacement) and sup.handle.pid == replacement
        last = jobs.submit(HealthSpec(tag="after-the-other-app"))
        assert wait_finished(last.id).pid == sup.handle.pid
    finally:
        if other.poll() is None:
            other.kill()
            other.wait()


EXIT_SCRIPT = """
import json, sys, time
from nngeo_core import jobs
from nngeo_core.jobs.kinds import HealthSpec
sup = jobs.start_supervisor()
long = jobs.submit(HealthSpec(seconds=300, tag="at-exit"))
while jobs.status(long.id).state != "running":
    time.sleep(0.05)
print(json.dumps({"pid": sup.handle.pid, "job": long.id}), flush=True)
"""


@pytest.mark.timeout(300)
def test_an_app_that_exits_stops_its_supervisor_and_worker(app_env):
    proc = subprocess.run([sys.executable, "-c", EXIT_SCRIPT], env=app_env, capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    table = jobs.get_backend().table
    wait_until(lambda: not pid_alive(out["pid"]), 30, "the app's worker to exit")
    assert table.workers() == []
    stopped = jobs.status(out["job"])  # stopped by the exit, not killed: back in the queue
    assert stopped.state == "queued" and stopped.phase == "re-queued (worker stopped)"
    time.sleep(2)  # no supervisor is left to start another
    assert table.workers() == [] and len(os.listdir(os.path.join(app_env["NNGEO_HOME"], "logs"))) == 1


def test_restart_delays_grow_for_a_worker_that_keeps_dying():
    assert [restart_delay(n) for n in range(9)] == [0, 0, 2, 4, 8, 16, 32, 60, 60]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_worker_that_keeps_dying_is_retried_ever_more_slowly_and_shown(app_env, monkeypatch):
    monkeypatch.setenv("NNGEO_JOB_MODULES", "no_such_module_for_this_test")  # each worker exits at start
    sup = jobs.start_supervisor()
    wait_until(lambda: sup.failures >= 3, 120, "three workers to die")
    assert sup.handle is None and sup._retry_at > time.monotonic()  # waiting out a back-off
    error = jobs.worker_status()["supervisor"]["error"]
    assert error.startswith("the job worker keeps exiting (status 2") and "\n" not in error
    assert "cannot import 'no_such_module_for_this_test'" in error
    assert sup.started_workers and not any(pid_alive(p) for p in sup.started_workers)
