"""The dashboard's embedded worker: ``ensure_worker`` starts `python -m nngeo_core worker` in the
background when no live worker serves the queue (a file lock keeps two dashboards from starting
one each), stops it when this process exits, and ``worker_status`` reports it with the live
workers and the queue depth for the sidebar. ``NNGEO_EMBEDDED_WORKER=0`` turns it off.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from ..errors import NNGeoError
from ..settings import get_settings
from .liveness import SHUTDOWN_WAIT_SECONDS, live_workers
from .queues import get_backend
from .runner import HOST
from .table import QUEUED, RUNNING, JobTable, redact

log = logging.getLogger(__name__)


@dataclass
class WorkerHandle:
    """A worker process this process started (``ensure_worker``); stopped at exit."""

    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = SHUTDOWN_WAIT_SECONDS + 5) -> int | None:
        """SIGTERM (running jobs are re-queued), then SIGKILL after ``timeout`` seconds."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        return self.process.returncode


_EMBEDDED: WorkerHandle | None = None
_EMBEDDED_LOCK = threading.Lock()


def embedded_worker_enabled() -> bool:
    return get_settings().embedded_worker


def ensure_worker(*, wait: float = 30.0) -> WorkerHandle | None:
    """Start a worker process unless a live one serves the queue; for the dashboard's app.py.

    Returns the handle of the worker this process started (it is stopped when this process
    exits), or None when another worker is alive, the backend needs none (``memory://``) or
    ``NNGEO_EMBEDDED_WORKER=0``. Safe to call on every Streamlit rerun: cheap when a worker runs."""
    global _EMBEDDED
    if not embedded_worker_enabled():
        return None
    backend = get_backend()
    if not backend.spawns_workers:
        return None
    with _EMBEDDED_LOCK:
        if _EMBEDDED is not None and _EMBEDDED.alive():
            return _EMBEDDED
        if live_workers(backend.table):
            return None
        settings = get_settings()
        settings.home.mkdir(parents=True, exist_ok=True)
        with FileLock(settings.home / "worker-spawn.lock"):
            if live_workers(backend.table):  # another process started one meanwhile
                return None
            handle = spawn_worker(parent_pid=os.getpid())
            wait_for_heartbeat(backend.table, handle, wait)
        atexit.register(handle.stop)
        _EMBEDDED = handle
        return handle


def spawn_worker(*, parent_pid: int | None = None, extra_args: list[str] | None = None) -> WorkerHandle:
    """Start `python -m nngeo_core worker` in the background, logging to $NNGEO_HOME/logs."""
    settings = get_settings()
    logs = settings.home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"worker-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    args = [sys.executable, "-m", "nngeo_core", "worker", *(extra_args or [])]
    if parent_pid:
        args += ["--parent-pid", str(parent_pid)]
    with open(log_path, "ab") as fh:
        # own session: a Ctrl-C meant for the dashboard's terminal reaches the worker via atexit, in order
        proc = subprocess.Popen(
            args,
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=os.environ.copy(),
            start_new_session=True,
        )
    return WorkerHandle(proc, log_path)


def wait_for_heartbeat(table: JobTable, handle: WorkerHandle, wait: float) -> None:
    """Wait up to ``wait`` seconds for the started worker's first heartbeat; a worker that exits
    meanwhile is a one-line error with the last line of its log."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if any(w["pid"] == handle.pid and w["host"] == HOST for w in table.workers()):
            return
        if not handle.alive():
            tail = ""
            try:
                lines = handle.log_path.read_text(errors="replace").strip().splitlines()
                tail = f": {lines[-1][:200]}" if lines else ""
            except OSError:
                pass
            raise NNGeoError(
                f"the background worker exited at once (status {handle.process.returncode})"
                f"{tail}; see {handle.log_path}"
            )
        time.sleep(0.1)
    log.warning("worker %s started but has not reported yet; see %s", handle.pid, handle.log_path)


class FileLock:
    """An exclusive advisory lock on a file (serialises worker spawning across processes)."""

    def __init__(self, path: Path):
        self.path = path
        self.fh: IO[str] | None = None

    def __enter__(self) -> FileLock:
        self.fh = open(self.path, "a+")  # held open until __exit__: that is the lock
        try:
            import fcntl  # POSIX only: the import itself is the platform check

            fcntl.flock(self.fh, fcntl.LOCK_EX)
        except ImportError:  # not POSIX: the in-process lock still holds
            pass
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.fh is not None:
            self.fh.close()  # closing releases the lock
            self.fh = None


def worker_status(*, count_jobs: bool = True) -> dict[str, Any]:
    """For the dashboard's sidebar: live workers, queue depth (None without ``count_jobs``), this
    process's embedded worker."""
    backend = get_backend()
    workers = backend.workers()
    now = time.time()
    for w in workers:
        w["heartbeat_age"] = round(now - w["heartbeat"], 1) if w.get("heartbeat") else None
    queued = len(backend.table.list([QUEUED], limit=None)) if count_jobs else None
    running = len(backend.table.list([RUNNING], limit=None)) if count_jobs else None
    embedded = None
    if _EMBEDDED is not None:
        embedded = {"pid": _EMBEDDED.pid, "alive": _EMBEDDED.alive(), "log": str(_EMBEDDED.log_path)}
    return {
        "alive": bool(workers),
        "workers": workers,
        "queued": queued,
        "running": running,
        "backend": backend.name,
        "queue": redact(getattr(backend, "queue", backend.name)),
        "embedded": embedded,
    }
