"""Queue overhead: 100 trivial jobs through a real worker process versus calling the job
function directly, in one run.

The job is the built-in ``health`` kind with ``seconds=0``: a 64x64 matmul on the device and a
one-row Parquet result written to the store, so the direct time is the floor of any real job.
Reported: submit() cost on the client, latency from submit to start (one job at a time on an idle
queue, and for a burst of 100), per-job wall time through the queue versus direct, and their ratio.

    python bench/queue_overhead.py [--jobs 100] [--redis]

--redis also runs the Redis backend (needs `redis-server` on PATH). Not a timed test: it prints.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def wait(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.01)


def start_redis(tmp: Path) -> tuple[subprocess.Popen, str]:
    import redis

    from nngeo_core.dashboard.server import free_port

    port = free_port()
    proc = subprocess.Popen(
        [
            shutil.which("redis-server"),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp),
        ],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"

    def up():
        try:
            return redis.Redis.from_url(url).ping()
        except redis.ConnectionError:
            return False

    wait(up, 20, "redis-server")
    return proc, url


def bench_backend(label: str, queue: str, home: Path, n: int, direct_mean: float) -> None:
    from nngeo_core import jobs
    from nngeo_core.jobs.kinds import HealthSpec
    from nngeo_core.jobs.liveness import live_workers

    os.environ["NNGEO_QUEUE"] = queue
    backend = jobs.get_backend()
    with open(home / f"worker-{label}.log", "wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "nngeo_core", "worker"], env=dict(os.environ), stdout=log, stderr=subprocess.STDOUT
        )
        try:
            wait(
                lambda: any(w["pid"] == worker.pid and w["state"] != "starting" for w in live_workers(backend.table)),
                300,
                "the worker",
            )
            tag = uuid.uuid4().hex[:8]
            # warm-up: the worker's first job imports the kind's modules
            backend.wait(backend.submit(HealthSpec(tag=f"{tag}-warm")).id, timeout=120, poll=0.005)

            # one at a time on an idle queue: pure submit -> start latency
            idle = []
            for i in range(20):
                time.sleep(0.6)  # let the consumer back off to its idle polling interval
                info = backend.submit(HealthSpec(tag=f"{tag}-idle-{i}"))
                final = backend.wait(info.id, timeout=60, poll=0.005)
                idle.append(final.started - final.submitted)

            # a burst of n jobs
            t0 = time.perf_counter()
            submit_costs, infos = [], []
            for i in range(n):
                s0 = time.perf_counter()
                infos.append(backend.submit(HealthSpec(tag=f"{tag}-burst-{i}")))
                submit_costs.append(time.perf_counter() - s0)
            finals = [backend.wait(i.id, timeout=600, poll=0.01) for i in infos]
            wall = time.perf_counter() - t0
            assert all(f.state == "done" for f in finals), [f.error for f in finals if f.state != "done"]
            start_lat = [f.started - f.submitted for f in finals]
            in_worker = [f.ended - f.started for f in finals]
            per_job = wall / n
            print(f"\n[{label}] {n} trivial jobs through one worker process")
            print(
                f"  submit() call          median {1e3 * statistics.median(submit_costs):7.2f} ms   "
                f"p90 {1e3 * pct(submit_costs, 0.9):7.2f} ms"
            )
            print(
                f"  submit->start, idle    median {1e3 * statistics.median(idle):7.2f} ms   "
                f"p90 {1e3 * pct(idle, 0.9):7.2f} ms   (20 single jobs)"
            )
            print(
                f"  submit->start, burst   median {1e3 * statistics.median(start_lat):7.2f} ms   "
                f"max {1e3 * max(start_lat):7.2f} ms   (includes waiting behind earlier jobs)"
            )
            print(f"  claim->done in worker  median {1e3 * statistics.median(in_worker):7.2f} ms")
            print(f"  wall per job (burst)          {1e3 * per_job:7.2f} ms   vs direct {1e3 * direct_mean:7.2f} ms")
            print(
                f"  overhead per job              {1e3 * (per_job - direct_mean):7.2f} ms   "
                f"ratio queued/direct {per_job / direct_mean:5.2f}x"
            )
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(60)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=100)
    ap.add_argument("--redis", action="store_true", help="also bench the Redis queue (needs redis-server)")
    a = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="nngeo-bench-queue-"))
    from nngeo_core.settings import home_env

    os.environ.update(home_env(tmp), NNGEO_EMBEDDED_WORKER="0", NNGEO_DOWNLOAD="0")
    redis_proc = None
    try:
        from nngeo_core import jobs
        from nngeo_core.jobs.kinds import HealthSpec
        from nngeo_core.store import Store

        store = Store(tmp / "store")
        jobs.run_job(HealthSpec(tag="direct-warm"), store=store)
        direct = []
        for i in range(a.jobs):
            t = time.perf_counter()
            jobs.run_job(HealthSpec(tag=f"direct-{i}"), store=store)
            direct.append(time.perf_counter() - t)
        direct_mean = statistics.fmean(direct)
        print(
            f"direct run_job(health): mean {1e3 * direct_mean:.2f} ms, median {1e3 * statistics.median(direct):.2f} ms "
            f"over {a.jobs} calls (cpu count {os.cpu_count()}, load {os.getloadavg()[0]:.1f})"
        )

        bench_backend("sqlite", str(tmp / "queue.db"), tmp, a.jobs, direct_mean)
        if a.redis:
            if shutil.which("redis-server") is None:
                print("\n[redis] skipped: redis-server is not installed")
            else:
                redis_proc, url = start_redis(tmp)
                bench_backend("redis", url, tmp, a.jobs, direct_mean)
    finally:
        if redis_proc is not None:
            redis_proc.terminate()
            redis_proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
