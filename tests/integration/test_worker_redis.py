"""Scale-out: two consumers with separate homes (two 'machines') share one Redis queue and one
store folder (a shared disk). Needs `redis-server` (Debian package redis-server); skipped without."""

from __future__ import annotations

import time

import pytest
from worker_helpers import Workers, nngeo_env, wait_until

from nngeo_core import jobs
from nngeo_core.jobs.kinds import HealthSpec
from nngeo_core.specs import DataSpec, ModelSpec, RunSpec, TrainSpec
from nngeo_core.store import Store


def tiny_run(seed: int) -> RunSpec:
    return RunSpec(
        data=DataSpec("xor", params={"n_train": 64, "n_test": 64}),
        model=ModelSpec("mlp", {"widths": (4,)}),
        train=TrainSpec(epochs=1, seed=seed),
    )


@pytest.mark.timeout(300)
def test_two_consumers_share_one_redis_queue(redis_url, workers, tmp_path, monkeypatch):
    shared_store = str(tmp_path / "shared-store")
    env_a = nngeo_env(tmp_path / "machine-a", queue=redis_url, NNGEO_STORE=shared_store)
    env_b = nngeo_env(tmp_path / "machine-b", queue=redis_url, NNGEO_STORE=shared_store)
    monkeypatch.setenv("NNGEO_QUEUE", redis_url)
    monkeypatch.setenv("NNGEO_STORE", shared_store)
    backend = jobs.get_backend()
    assert backend.name == "redis"
    a, b = workers.start(env_a), workers.start(env_b)
    Workers.wait_ready(backend.table, [a, b])
    status = jobs.worker_status()
    assert status["backend"] == "redis" and sorted(w["pid"] for w in status["workers"]) == sorted([a.pid, b.pid])

    specs = [tiny_run(2000 + i) for i in range(20)]
    infos = [jobs.submit(s) for s in specs]
    assert jobs.submit(specs[-1]).id == infos[-1].id or jobs.status(infos[-1].id).finished
    finals = [wait_until(lambda i=i: (s := jobs.status(i.id)).finished and s, 120, f"job {i.id}", 0.1) for i in infos]
    assert [f.state for f in finals] == ["done"] * 20, [f.error for f in finals if f.state != "done"]
    assert all(f.attempts == 1 for f in finals)
    assert {f.pid for f in finals} == {a.pid, b.pid}  # both machines took work
    store = Store(shared_store)
    assert sorted(store.keys()) == sorted(s.hash for s in specs) and store.temp_files() == []
    assert all(sum("started on worker" in line for line in jobs.logs(f.id)) == 1 for f in finals)

    # resubmitting is served from the shared store; cancel reaches a job on the other machine
    assert all(jobs.submit(s).cached for s in specs[:3])
    long = jobs.submit(HealthSpec(seconds=120, tag="redis-cancel"))
    wait_until(lambda: jobs.status(long.id).state == "running", 60, "the long job to start")
    t0 = time.monotonic()
    jobs.cancel(long.id)
    final = wait_until(lambda: (s := jobs.status(long.id)).finished and s, 5, "cancel")
    assert final.state == "cancelled" and time.monotonic() - t0 < 5
    assert not store.exists(HealthSpec(seconds=120, tag="redis-cancel").hash)
