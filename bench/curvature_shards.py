"""Sharded neural curvature: one curvature job of a mid-size model through a real Huey SQLite
queue, (a) as one job on 1 consumer and (b) as N shards (default 2) on N consumers, each consumer
a separate `nngeo worker` process with one torch thread; wall time of each (submit -> the merged
table visible in the store), their ratio, and whether the merged table equals the unsharded one
exactly.

    python bench/curvature_shards.py [--model lenet5_s2] [--resize 28] [--shards 2] [--positions 4]

The consumers are started and warmed (torch imported, one health job each) before the clock runs;
the first curvature job of each still imports the curvature modules, in (a) and (b) alike. On a
machine with fewer free cores than consumers the ratio says what the cores allow, not the
queue: `uptime` is printed next to it. Not a timed test: it prints.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path


def wait(cond, timeout, what, poll=0.05):
    deadline = time.monotonic() + timeout
    while not (value := cond()):
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(poll)
    return value


def load() -> str:
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "?"


class Consumers:
    """``n`` separate worker processes on the queue of this environment, one torch thread each."""

    def __init__(self, n: int, home: Path, label: str):
        from nngeo_core import jobs

        self.backend = jobs.get_backend()
        env = dict(os.environ, NNGEO_WORKER_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        self.procs = []
        for i in range(n):
            with open(home / f"worker-{label}-{i}.log", "wb") as log:
                self.procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "nngeo_core", "worker"],
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                    )
                )

    def __enter__(self) -> Consumers:
        from nngeo_core.jobs.kinds import HealthSpec
        from nngeo_core.jobs.liveness import live_workers

        pids = {p.pid for p in self.procs}

        def ready():
            for p in self.procs:
                if p.poll() is not None:
                    raise SystemExit(f"worker {p.pid} exited with status {p.returncode}")
            up = [w for w in live_workers(self.backend.table) if w["pid"] in pids and w["state"] != "starting"]
            return len(up) == len(pids)

        wait(ready, 300, f"{len(pids)} worker(s)", poll=0.2)
        tag = uuid.uuid4().hex[:8]
        warm = [self.backend.submit(HealthSpec(tag=f"{tag}-{i}", seconds=0.5)) for i in range(len(pids))]
        for info in warm:
            self.backend.wait(info.id, timeout=120)
        return self

    def __exit__(self, *exc) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="lenet5_s2")
    ap.add_argument("--resize", type=int, default=28, help="digits resized to this side")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--shards", type=int, default=2, help="shards, and consumers for them")
    ap.add_argument("--positions", type=int, default=4, help="conv_positions of the curvature")
    ap.add_argument("--k", type=int, default=1, help="calibration inputs per class (10 digits each)")
    a = ap.parse_args()

    home = Path(tempfile.mkdtemp(prefix="nngeo-bench-shards-"))
    from nngeo_core.settings import home_env

    os.environ.update(home_env(home), NNGEO_DOWNLOAD="0", NNGEO_EMBEDDED_WORKER="0")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import pandas as pd
    import torch

    torch.set_num_threads(1)
    from nngeo_core import jobs
    from nngeo_core.jobs.shards import submit_sharded
    from nngeo_core.specs import AnalysisSpec, DataSpec, ModelSpec, RunSpec, TrainSpec
    from nngeo_core.store import default_store

    store = default_store()
    run = RunSpec(
        data=DataSpec("digits", params={"resize": a.resize}),
        model=ModelSpec(a.model),
        train=TrainSpec(epochs=a.epochs, seed=0),
    )
    run_key = jobs.run_job(run, store=store)
    spec = jobs.get_job_kind("analyse").prepare(
        AnalysisSpec(run=run_key, method="curvature", params={"conv_positions": a.positions, "k_per_class": a.k}),
        store,
    )
    print(f"{a.model} on digits {a.resize}x{a.resize}, curvature conv_positions={a.positions}, {10 * a.k} inputs")
    print(f"home {home}; load before: {load()} ({os.cpu_count()} cores)")

    # (a) one job, one consumer
    with Consumers(1, home, "one") as c:
        t0 = time.perf_counter()
        info = c.backend.submit(spec, store=store)
        final = c.backend.wait(info.id, timeout=3600, poll=0.1)
        one = time.perf_counter() - t0
    if final.state != "done":
        raise SystemExit(f"the unsharded job {final.state}: {final.error}")
    table = store.get(spec.hash)
    print(f"(a) 1 job, 1 consumer        {one:8.1f} s   ({len(table)} rows; load {load()})")

    # (b) the same analysis as shards, one consumer each
    store.delete(spec.hash)
    with Consumers(a.shards, home, "shards") as c:
        t0 = time.perf_counter()
        job = submit_sharded(spec, a.shards, store=store, backend=c.backend)
        finals = [c.backend.wait(i.id, timeout=3600, poll=0.1) for i in job.jobs]
        wait(lambda: store.exists(spec.hash), 600, "the merged table")
        sharded = time.perf_counter() - t0
    if any(f.state != "done" for f in finals):
        raise SystemExit(f"a shard failed: {[f.error for f in finals if f.state != 'done']}")
    print(f"(b) {len(job.jobs)} shards, {a.shards} consumers   {sharded:8.1f} s   (load {load()})")
    for f, layers in zip(finals, job.groups, strict=True):
        print(f"      shard layers {layers:12s} {f.elapsed:8.1f} s on {f.worker}")
    merged = store.get(spec.hash)
    try:
        pd.testing.assert_frame_equal(merged, table, check_exact=True)
        same = "identical (every row, value and dtype)"
    except AssertionError as exc:
        same = f"DIFFERENT: {str(exc).splitlines()[0]}"
    print(f"merged vs unsharded table: {same}; key {spec.hash} both")
    print(f"ratio 1 consumer / {a.shards} consumers: {one / sharded:.2f}x")


if __name__ == "__main__":
    main()
