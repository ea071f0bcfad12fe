"""The SQLite queue with real `python -m nngeo_core worker` processes: submit -> worker -> store,
cache hits, cancel, 50 jobs over two consumers, SIGKILL mid-job (and mid-write), the dashboard's
embedded worker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from types import SimpleNamespace

import pandas as pd
import pyarrow.parquet as pq
import pytest
from worker_helpers import Workers, nngeo_env, use_env, wait_until

from nngeo_core import jobs
from nngeo_core.cli import build_parser, main, run_spec_from_args
from nngeo_core.jobs.kinds import HealthSpec
from nngeo_core.specs import DataSpec, ModelSpec, RunSpec, TrainSpec
from nngeo_core.store import Store

TINY_ARGS = [
    "--model",
    "mlp",
    "--widths",
    "4",
    "--data",
    "xor",
    "--data-param",
    "n_train=64",
    "--data-param",
    "n_test=64",
    "--epochs",
    "1",
]


def tiny_run(seed: int = 0, epochs: int = 1) -> RunSpec:
    return RunSpec(
        data=DataSpec("xor", params={"n_train": 64, "n_test": 64}),
        model=ModelSpec("mlp", {"widths": (4,)}),
        train=TrainSpec(epochs=epochs, seed=seed),
    )


def wait_finished(job_id: str, timeout: float = 90.0):
    return wait_until(lambda: (i := jobs.status(job_id)).finished and i, timeout, f"job {job_id} to finish", 0.1)


# -- one worker shared by the first tests (a worker start costs seconds: torch) -----------------
@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    home = tmp_path_factory.mktemp("shared-home")
    pool = Workers(home)
    env = nngeo_env(home)
    proc = pool.start(env)
    yield SimpleNamespace(home=home, env=env, pool=pool, proc=proc, store=Store(env["NNGEO_STORE"]))
    pool.stop_all()
    pool.dump()


@pytest.fixture
def shared_env(shared, monkeypatch):
    use_env(monkeypatch, shared.env)
    Workers.wait_ready(jobs.get_backend().table, [shared.proc])
    return shared


@pytest.mark.timeout(300)
def test_job_runs_in_worker_and_resubmit_is_served_from_store(shared_env, capsys):
    spec = run_spec_from_args(build_parser().parse_args(["train", *TINY_ARGS]))
    info = jobs.submit(spec)
    assert info.state == "queued" and not info.cached
    final = wait_finished(info.id)
    assert final.state == "done", final.error
    assert final.result == spec.hash and final.pid == shared_env.proc.pid and final.device == "cpu"
    assert final.started >= final.submitted and final.ended >= final.started and final.attempts == 1
    assert shared_env.store.exists(spec.hash) and shared_env.store.entry(spec.hash)["kind"] == "train"
    n_jobs = len(jobs.list_jobs(limit=None))

    # the same job through the CLI: served from the store, nothing queued or run
    assert main(["jobs", "submit", "train", *TINY_ARGS, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["cached"] is True and out["state"] == "done" and out["result"] == spec.hash and out["id"] == info.id
    assert len(jobs.list_jobs(limit=None)) == n_jobs
    time.sleep(0.5)
    assert sum("started on worker" in line for line in jobs.logs(info.id)) == 1


@pytest.mark.timeout(300)
def test_cancel_running_training_stops_within_seconds_and_stores_nothing(shared_env):
    spec = tiny_run(seed=1, epochs=1_000_000)
    info = jobs.submit(spec)
    wait_until(lambda: jobs.status(info.id).progress > 0, 90, "training to make progress")
    t0 = time.monotonic()
    assert jobs.cancel(info.id).cancel_requested
    final = wait_finished(info.id, timeout=5)
    stopped_after = time.monotonic() - t0
    assert final.state == "cancelled" and final.result is None and stopped_after < 5
    assert not shared_env.store.exists(spec.hash) and shared_env.store.temp_files() == []
    # the worker goes on to the next job
    after = jobs.submit(HealthSpec(tag="after-cancel"))
    assert wait_finished(after.id).state == "done"


@pytest.mark.timeout(300)
def test_fifty_jobs_over_two_consumers_each_stored_exactly_once(shared_env, workers, tmp_path):
    second = workers.start(shared_env.env)
    Workers.wait_ready(jobs.get_backend().table, [shared_env.proc, second])
    store = Store(tmp_path / "fifty")  # the job carries its store: results land here, and only here
    specs = [tiny_run(seed=1000 + i) for i in range(50)]
    t0 = time.monotonic()
    infos = [jobs.submit(s, store=store) for s in specs]
    finals = [wait_finished(i.id, timeout=120) for i in infos]
    elapsed = time.monotonic() - t0
    print(f"50 tiny training jobs over 2 consumers: {elapsed:.1f} s")
    assert [f.state for f in finals] == ["done"] * 50, [f.error for f in finals if f.state != "done"]
    assert [f.result for f in finals] == [s.hash for s in specs]
    assert all(f.attempts == 1 for f in finals)
    assert {f.pid for f in finals} == {shared_env.proc.pid, second.pid}  # both consumers took work
    assert sorted(store.keys()) == sorted(s.hash for s in specs)
    assert len(os.listdir(os.path.join(store.path, "results", "train"))) == 50 and store.temp_files() == []
    for f in finals:
        assert sum("started on worker" in line for line in jobs.logs(f.id)) == 1


@pytest.mark.timeout(300)
def test_jobs_run_with_the_workers_share_of_torch_threads(shared_env, workers, tmp_path, monkeypatch):
    """A job's own thread (a Huey consumer thread) sees the count the worker set for its process:
    NNGEO_WORKER_THREADS when set, else the process's cores // its consumers."""
    setting = shared_env.env.get("NNGEO_WORKER_THREADS")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    expected = int(setting) if setting else max(1, cores // 1)  # the shared worker: one consumer
    final = wait_finished(jobs.submit(HealthSpec(tag="threads")).id)
    assert final.state == "done" and final.pid == shared_env.proc.pid
    assert int(shared_env.store.get(final.result)["torch_threads"].iloc[0]) == expected

    # the setting wins over the cores, and it is a change from the inherited OMP_NUM_THREADS=1
    env = nngeo_env(tmp_path / "home", NNGEO_WORKER_THREADS="3", OMP_NUM_THREADS="1")
    use_env(monkeypatch, env)  # its own queue: only this worker takes the next job
    three = workers.start(env, "--workers", "2")
    Workers.wait_ready(jobs.get_backend().table, [three])
    final = wait_finished(jobs.submit(HealthSpec(tag="three-threads")).id)
    assert final.state == "done" and final.pid == three.pid
    assert int(Store(env["NNGEO_STORE"]).get(final.result)["torch_threads"].iloc[0]) == 3
    three.send_signal(signal.SIGTERM)
    three.wait(60)
    assert "torch threads 3," in workers.procs[-1][1].read_text()


# -- SIGKILL ---------------------------------------------------------------------------------
WRITER_MODULE = '''
"""Test-only job kind: writes many complete results, so a SIGKILL lands during a store write."""
from dataclasses import dataclass

import numpy as np
import pandas as pd

from nngeo_core.jobs import register_job_kind
from nngeo_core.specs import SpecBase, register_spec, spec_hash


@register_spec
@dataclass(frozen=True, eq=True)
class WriterSpec(SpecBase):
    n: int = 10000
    rows: int = 100000
    kind: str = "test-writer"


def part_key(i):
    return spec_hash({"writer-part": i})


def writer_job(spec, *, store, progress):
    for i in range(spec.n):
        progress.check()
        x = np.arange(spec.rows, dtype=np.float64) * (i + 1)
        store.put("test-written", {"writer-part": i}, pd.DataFrame({"i": np.full(spec.rows, i), "x": x}),
                  key=part_key(i), artifacts={"blob.bin": x.tobytes()})
        progress.update((i + 1) / spec.n, "writing", written=i + 1, force=True)
    return store.put("test-writer", spec, pd.DataFrame({"n": [spec.n]}))


register_job_kind("test-writer", WriterSpec, writer_job)
'''


@pytest.mark.timeout(300)
def test_sigkill_mid_job_leaves_no_partial_results_and_no_stuck_job(workers, tmp_path, monkeypatch, request):
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "nngeo_test_writer.py").write_text(textwrap.dedent(WRITER_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path / "plugins"))
    home = tmp_path / "home"
    env = nngeo_env(
        home,
        NNGEO_JOB_MODULES="nngeo_test_writer",
        PYTHONPATH=os.pathsep.join([str(tmp_path / "plugins"), os.environ.get("PYTHONPATH", "")]),
    )
    use_env(monkeypatch, env)
    from nngeo_core.jobs.registry import JOB_KINDS

    # registered by the import below; removed again at teardown
    request.addfinalizer(lambda: JOB_KINDS.remove("test-writer"))
    monkeypatch.setitem(sys.modules, "nngeo_test_writer", None)
    del sys.modules["nngeo_test_writer"]
    import nngeo_test_writer as writer

    store = Store(env["NNGEO_STORE"])
    table = jobs.get_backend().table
    first = workers.start(env, "--workers", "2")
    Workers.wait_ready(table, [first])

    done = jobs.submit(tiny_run(seed=7))
    done_key = wait_finished(done.id).result
    before = store.get(done_key)
    ckpt_before = store.read_artifact(done_key, "checkpoint.safetensors")

    long_train = jobs.submit(tiny_run(seed=8, epochs=1_000_000))
    write_job = jobs.submit(writer.WriterSpec())
    wait_until(lambda: jobs.status(long_train.id).progress > 0, 90, "training to run")
    wait_until(lambda: jobs.status(write_job.id).metrics.get("written", 0) >= 3, 90, "the writer to write")
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    assert {jobs.status(j.id).state for j in (long_train, write_job)} == {"running"}  # nobody noticed yet

    second = workers.start(env)  # restart: it finds the dead worker's jobs
    for j in (long_train, write_job):
        final = wait_finished(j.id, timeout=120)
        assert final.state == "failed" and final.error.startswith("worker died (killed?) while running")
        assert str(first.pid) in final.error
    Workers.wait_ready(table, [second])

    # what readers see is complete: every catalogued result reads back whole
    keys = store.keys()
    parts = [k for k in keys if store.entry(k)["kind"] == "test-written"]
    assert len(parts) >= 3
    for k in parts:
        df = store.get(k)
        i = int(df["i"].iloc[0])
        assert len(df) == 100000 and (df["x"].to_numpy() == pd.RangeIndex(100000).to_numpy() * (i + 1.0)).all()
        assert len(store.read_artifact(k, "blob.bin")) == 100000 * 8
    # every file under its final name is a complete Parquet file (only .tmp-* files may be partial)
    for dirpath, _, files in os.walk(store.path):
        for f in files:
            if f.endswith(".parquet") and not f.startswith(".tmp-"):
                pq.read_table(os.path.join(dirpath, f))
    assert not store.exists(tiny_run(seed=8, epochs=1_000_000).hash)
    assert not store.exists(writer.WriterSpec().hash)
    # the older result is intact, and leftovers of the killed writer are only temp files
    pd.testing.assert_frame_equal(store.get(done_key), before)
    assert store.read_artifact(done_key, "checkpoint.safetensors") == ckpt_before
    assert all(os.path.basename(p).startswith(".tmp-") for p in store.temp_files())
    store.clean_temp(older_than=0)
    assert store.temp_files() == [] and store.keys() == keys

    # the restarted worker works
    again = jobs.submit(HealthSpec(tag="after-kill"))
    assert wait_finished(again.id).state == "done"


# -- the dashboard's embedded worker -----------------------------------------------------------
EMBEDDED_SCRIPT = """
import json, sys, time
from nngeo_core import jobs
from nngeo_core.jobs.kinds import HealthSpec

handle = jobs.ensure_worker()
assert jobs.ensure_worker() is handle          # a rerun reuses it
status = jobs.worker_status()
info = jobs.submit(HealthSpec(tag="embedded"))
final = jobs.wait(info.id, timeout=120)
# a long job is running when the app exits: stopping the worker puts it back in the queue
long = jobs.submit(HealthSpec(seconds=300, tag="interrupted"))
while jobs.status(long.id).state != "running":
    time.sleep(0.05)
print(json.dumps({"worker_pid": handle.pid, "alive": status["alive"], "long": long.id,
                  "status_pids": [w["pid"] for w in status["workers"]], "state": final.state, "job_pid": final.pid}))
sys.stdout.flush()
"""


@pytest.mark.timeout(300)
def test_embedded_worker_starts_when_none_is_alive_and_stops_with_the_app(tmp_path, monkeypatch):
    home = tmp_path / "home"
    env = nngeo_env(home, NNGEO_EMBEDDED_WORKER="1")
    use_env(monkeypatch, env)
    proc = subprocess.run([sys.executable, "-c", EMBEDDED_SCRIPT], env=env, capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["alive"] and out["status_pids"] == [out["worker_pid"]]
    assert out["state"] == "done" and out["job_pid"] == out["worker_pid"]
    # the app exited: atexit stopped its worker, which removed its heartbeat row
    from nngeo_core.jobs.liveness import pid_alive

    wait_until(lambda: not pid_alive(out["worker_pid"]), 30, "the embedded worker to exit")
    assert jobs.get_backend().table.workers() == []
    interrupted = jobs.status(out["long"])
    assert interrupted.state == "queued" and interrupted.phase == "re-queued (worker stopped)"
    assert any("re-queued" in line for line in jobs.logs(out["long"]))


# -- slower checks (pytest -m slow) ----------------------------------------------------------
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_requeue_dead_runs_a_killed_job_once_more(workers, tmp_path, monkeypatch):
    env = nngeo_env(tmp_path / "home")
    use_env(monkeypatch, env)
    table = jobs.get_backend().table
    first = workers.start(env)
    Workers.wait_ready(table, [first])
    spec = HealthSpec(seconds=3, tag="requeue")
    info = jobs.submit(spec)
    wait_until(lambda: jobs.status(info.id).state == "running", 60, "the job to start")
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    workers.start(env, "--requeue-dead")
    final = wait_finished(info.id, timeout=120)
    assert final.state == "done" and final.attempts == 2 and final.result == spec.hash
    assert any("re-queued" in line for line in jobs.logs(info.id))
    assert Store(env["NNGEO_STORE"]).keys() == [spec.hash]


PARENT_SCRIPT = """
import sys, time
from nngeo_core import jobs
handle = jobs.ensure_worker()
print(handle.pid)
sys.stdout.flush()
time.sleep(600)
"""


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_embedded_worker_exits_when_its_parent_is_killed(tmp_path, monkeypatch):
    from nngeo_core.jobs.liveness import pid_alive

    env = nngeo_env(tmp_path / "home", NNGEO_EMBEDDED_WORKER="1")
    parent = subprocess.Popen([sys.executable, "-c", PARENT_SCRIPT], env=env, stdout=subprocess.PIPE, text=True)
    worker_pid = int(parent.stdout.readline())
    assert pid_alive(worker_pid)
    parent.kill()  # no atexit: the worker must notice by itself
    parent.wait()
    wait_until(lambda: not pid_alive(worker_pid), 30, "the orphaned worker to exit")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_one_consumer_per_gpu_id_under_a_supervisor(workers, tmp_path, monkeypatch):
    env = nngeo_env(tmp_path / "home")
    use_env(monkeypatch, env)
    table = jobs.get_backend().table
    supervisor = workers.start(env, "--gpus", "0,1")
    from nngeo_core.jobs.liveness import live_workers, pid_alive

    rows = wait_until(
        lambda: (r := [w for w in live_workers(table) if w["state"] != "starting"]) and len(r) == 2 and r,
        180,
        "two consumers",
    )
    assert supervisor.pid not in {w["pid"] for w in rows}
    info = jobs.submit(HealthSpec(tag="gpu-ids"))
    final = wait_finished(info.id)
    assert final.state == "done"
    health = Store(env["NNGEO_STORE"]).get(final.result)
    assert health["cuda_visible_devices"].iloc[0] in ("0", "1")  # each consumer sees exactly one GPU id
    # the two consumer processes share this machine's cores: each gets half for torch's threads
    setting = env.get("NNGEO_WORKER_THREADS")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert int(health["torch_threads"].iloc[0]) == (int(setting) if setting else max(1, cores // 2))
    supervisor.send_signal(signal.SIGTERM)
    supervisor.wait(60)
    wait_until(lambda: not any(pid_alive(w["pid"]) for w in rows), 30, "the consumers to exit")
