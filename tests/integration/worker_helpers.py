"""Helpers for integration tests with real worker processes: `python -m nngeo_core worker`
subprocesses with NNGEO_HOME / NNGEO_STORE / NNGEO_QUEUE pointing into tmp_path."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from nngeo_core.settings import home_env

REDIS_SERVER = shutil.which("redis-server")
WORKER_START_TIMEOUT = 120.0  # torch import on a loaded 2-core machine


def wait_until(cond, timeout: float, what: str, poll: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(poll)


def nngeo_env(home: Path, queue: str | None = None, **extra: str) -> dict:
    env = dict(os.environ)
    env.update(home_env(home), NNGEO_DOWNLOAD="0", NNGEO_EMBEDDED_WORKER="0", PYTHONUNBUFFERED="1")
    if queue:
        env["NNGEO_QUEUE"] = queue
    env.update(extra)
    return env


def use_env(monkeypatch, env: dict) -> None:
    """Point this test process at the same store and queue as the workers started with ``env``."""
    for k in ("NNGEO_HOME", "NNGEO_STORE", "NNGEO_QUEUE"):
        monkeypatch.setenv(k, env[k])


class Workers:
    """Starts worker processes, waits for their heartbeats, stops them at teardown."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.procs: list[tuple[subprocess.Popen, Path]] = []

    def start(self, env: dict, *args: str) -> subprocess.Popen:
        log = self.log_dir / f"worker-{len(self.procs)}.log"
        with open(log, "wb") as fh:
            proc = subprocess.Popen(
                [sys.executable, "-m", "nngeo_core", "worker", *args],
                env=env,
                stdout=fh,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self.procs.append((proc, log))
        return proc

    @staticmethod
    def wait_ready(table, procs: list[subprocess.Popen], timeout: float = WORKER_START_TIMEOUT) -> list[dict]:
        """Wait until each process has a heartbeat row past 'starting' (torch imported, ready)."""
        from nngeo_core.jobs.liveness import live_workers

        pids = {p.pid for p in procs}

        def ready():
            for p in procs:
                assert p.poll() is None, f"worker {p.pid} exited with status {p.returncode}"
            rows = [w for w in live_workers(table) if w["pid"] in pids and w["state"] != "starting"]
            return rows if len(rows) == len(pids) else None

        return wait_until(ready, timeout, f"{len(pids)} worker(s) to report ready", poll=0.2)

    def stop_all(self) -> None:
        for proc, _ in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc, _ in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def dump(self) -> None:
        for _, log in self.procs:
            print(f"---- {log.name} ----")
            print(log.read_text(errors="replace")[-5000:])
