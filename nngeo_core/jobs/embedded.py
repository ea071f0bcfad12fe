"""The dashboard's embedded worker, kept alive by the app process itself.

``start_supervisor()`` (app.py calls it once per process) starts `python -m nngeo_core worker` in
the background when no live worker serves the queue, then watches it from a daemon thread: when
it dies (killed, crashed), the jobs it was running are marked failed at once (or re-queued once
with ``NNGEO_REQUEUE_DEAD=1``) and a new worker starts within a second, whether or not any browser
is open. A file lock in NNGEO_HOME (``worker-spawn.lock``) keeps two app processes from starting
one each: the second finds the first's worker alive and leaves it be. The supervisor also trims
finished jobs older than ``NNGEO_JOBS_KEEP_DAYS`` (at start, then hourly) and stops with its
worker when the process exits. ``ensure_worker`` is the one-shot without a watcher (scripts,
tests); ``worker_status`` reports the live workers and the queue depth for the sidebar.
``NNGEO_EMBEDDED_WORKER=0`` turns all of it off.
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
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from ..errors import NNGeoError, one_line
from ..settings import get_settings
from .backend import JobBackend
from .liveness import SHUTDOWN_WAIT_SECONDS, live_workers, recover_dead_jobs
from .queues import get_backend
from .runner import HOST
from .table import QUEUED, RUNNING, JobTable, redact

SUPERVISE_SECONDS = 0.5  # how often the supervisor looks at its worker (a death is noticed this fast)
HEALTHY_SECONDS = 60.0  # a worker that lived this long resets the restart back-off
MAX_RESTART_DELAY = 60.0
CLEAN_EVERY_SECONDS = 3600.0

log = logging.getLogger(__name__)


@dataclass
class WorkerHandle:
    """A worker process this process started; stopped at exit."""

    process: subprocess.Popen[bytes]
    log_path: Path
    started: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None  # poll() also reaps a killed worker, so it is no zombie

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


_EMBEDDED: WorkerHandle | None = None  # the worker this process started (ensure_worker or the supervisor)
_EMBEDDED_LOCK = threading.RLock()
_SUPERVISOR: Supervisor | None = None
_EXIT_HOOK_REGISTERED = False


def embedded_worker_enabled() -> bool:
    return get_settings().embedded_worker


def ensure_worker(*, wait: float = 30.0, stop: threading.Event | None = None) -> WorkerHandle | None:
    """Start a worker process unless a live one serves the queue.

    Returns the handle of the worker this process started (it is stopped when this process
    exits), or None when another worker is alive, the backend needs none (``memory://``) or
    ``NNGEO_EMBEDDED_WORKER=0``. Cheap when a worker runs. ``stop`` cuts the wait for the first
    heartbeat short (the supervisor stopping)."""
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
            _EMBEDDED = handle  # before the wait: a worker that exits at once is still ours to report
            _register_exit_hook()
            wait_for_heartbeat(backend.table, handle, wait, stop)
        return handle


def _register_exit_hook() -> None:
    global _EXIT_HOOK_REGISTERED
    if not _EXIT_HOOK_REGISTERED:
        atexit.register(_stop_all)
        _EXIT_HOOK_REGISTERED = True


def _stop_all() -> None:
    """At exit: the supervisor first (or it would start a new worker), then our worker."""
    stop_supervisor()
    handle = _EMBEDDED
    if handle is not None:
        handle.stop()


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


def wait_for_heartbeat(table: JobTable, handle: WorkerHandle, wait: float, stop: threading.Event | None = None) -> None:
    """Wait up to ``wait`` seconds for the started worker's first heartbeat; a worker that exits
    meanwhile is a one-line error with the last line of its log."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and not (stop is not None and stop.is_set()):
        if any(w["pid"] == handle.pid and w["host"] == HOST for w in table.workers()):
            return
        if not handle.alive():
            raise NNGeoError(
                f"the background worker exited at once (status {handle.process.returncode})"
                f"{log_tail(handle.log_path)}; see {handle.log_path}"
            )
        time.sleep(0.1)
    if stop is None or not stop.is_set():
        log.warning("worker %s started but has not reported yet; see %s", handle.pid, handle.log_path)


def log_tail(path: Path) -> str:
    """': <the last line of a worker's log>', or '' (for an error message)."""
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return f": {lines[-1][:200]}" if lines else ""


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


def restart_delay(failures: int) -> float:
    """Seconds to wait before the next start after ``failures`` workers in a row died young: the
    first death is healed at once, a worker that keeps dying is retried ever more slowly."""
    return 0.0 if failures <= 1 else min(MAX_RESTART_DELAY, 2.0 ** (failures - 1))


def clean_finished(backend: JobBackend, keep_days: float) -> int:
    """Delete finished jobs older than ``keep_days`` (0 keeps all); returns how many went."""
    return backend.clean(keep_days) if keep_days > 0 else 0


class Supervisor:
    """Keeps a worker serving the queue, from a daemon thread of the app process (``check`` every
    ``SUPERVISE_SECONDS``): recovers the jobs of dead workers, starts a worker when none is alive
    (with back-off when they keep dying), trims old finished jobs hourly."""

    def __init__(self, backend: JobBackend, *, wait: float = 30.0):
        self.backend = backend
        self.wait = wait
        self.restarts = 0  # workers started after the first
        self.failures = 0  # workers in a row that died young
        self.last_error: str | None = None
        self.started_workers: list[int] = []  # pids, oldest first
        self._retry_at = 0.0
        self._next_clean = 0.0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def handle(self) -> WorkerHandle | None:
        return _EMBEDDED

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stop.is_set()

    def start(self) -> Supervisor:
        # in the caller's thread: the first page load waits for (and shows) the worker; the
        # trimming of old jobs waits for the thread, so the page does not wait for it
        self.check(clean=False)
        self._thread = threading.Thread(target=self._loop, name="nngeo-supervisor", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop watching (the worker keeps running; ``_stop_all`` stops it at exit)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=self.wait + 5)

    def _loop(self) -> None:
        while not self._stop.wait(SUPERVISE_SECONDS):
            try:
                self.check()
            except Exception as exc:  # a table that is briefly unreachable must not end the watch
                error = f"the job worker supervisor failed a check: {one_line(exc)}"
                if error != self.last_error:  # once per distinct error, not twice a second
                    log.exception("%s; trying again every %.1f s", error, SUPERVISE_SECONDS)
                self.last_error = error

    def check(self, *, clean: bool = True) -> None:
        """One round: notice our worker's death, recover dead workers' jobs, start a worker if
        none serves the queue, trim old jobs when due (with ``clean``)."""
        with self._lock:
            self._reap()
            # any process may do this (the transitions are conditional); doing it here fails the
            # dead worker's jobs at once, not when the next worker has started
            for job_id, state in recover_dead_jobs(
                self.backend.table, me=None, requeue=get_settings().requeue_dead, enqueue=self.backend.enqueue
            ):
                log.warning("job %s of a dead worker -> %s", job_id, state)
            now = time.monotonic()
            if self.handle is None and now >= self._retry_at and not self._stop.is_set():
                self._start_worker()
            handle = self.handle
            if self.last_error and handle is not None and handle.alive() and now - handle.started > HEALTHY_SECONDS:
                self.last_error = None  # this one has lived long enough: the trouble is over
            if clean and now >= self._next_clean:
                self._next_clean = now + CLEAN_EVERY_SECONDS
                n = clean_finished(self.backend, get_settings().jobs_keep_days)
                if n:
                    log.info("deleted %d finished jobs older than %g days", n, get_settings().jobs_keep_days)

    def _reap(self) -> bool:
        """Whether our worker has died since the last round (then its handle is dropped, and the
        next start is due at once or, when workers keep dying young, after a back-off)."""
        global _EMBEDDED
        with _EMBEDDED_LOCK:
            handle = _EMBEDDED
            if handle is None or handle.alive():
                return False
            _EMBEDDED = None
        lived = time.monotonic() - handle.started
        self.failures = 0 if lived >= HEALTHY_SECONDS else self.failures + 1
        delay = restart_delay(self.failures)
        self._retry_at = time.monotonic() + delay
        rc = handle.process.returncode
        log.warning("the embedded worker (pid %s) exited with status %s after %.0f s", handle.pid, rc, lived)
        if self.failures >= 2:  # one death is healed quietly; repeated ones are shown in the sidebar
            self.last_error = (
                f"the job worker keeps exiting (status {rc} after {lived:.0f} s{log_tail(handle.log_path)}); "
                f"next try in {delay:.0f} s; see {handle.log_path}"
            )
        return True

    def _start_worker(self) -> None:
        global _EMBEDDED
        try:
            handle = ensure_worker(wait=self.wait, stop=self._stop)
        except NNGeoError as exc:  # it exited at once: try again later, more slowly each time
            self.failures += 1
            self._retry_at = time.monotonic() + restart_delay(self.failures)
            self.last_error = str(exc)
            log.error("%s", exc)
            with _EMBEDDED_LOCK:
                _EMBEDDED = None
            return
        if handle is not None and handle.pid not in self.started_workers:
            if self.started_workers:
                self.restarts += 1
                log.warning("started worker pid %s to replace the dead one", handle.pid)
            self.started_workers.append(handle.pid)

    def info(self) -> dict[str, Any]:
        return {
            "alive": self.alive(),
            "restarts": self.restarts,
            "error": self.last_error,
            "workers_started": list(self.started_workers),
        }


_SUPERVISOR_LOCK = threading.Lock()


def start_supervisor(*, wait: float = 30.0) -> Supervisor | None:
    """The app process's worker supervisor, started on the first call (which waits up to ``wait``
    seconds for the first worker's heartbeat) and returned by every later one. None when
    ``NNGEO_EMBEDDED_WORKER=0`` or the backend needs no worker process (``memory://``)."""
    global _SUPERVISOR
    if not embedded_worker_enabled():
        return None
    backend = get_backend()
    if not backend.spawns_workers:
        return None
    with _SUPERVISOR_LOCK:
        if _SUPERVISOR is not None and _SUPERVISOR.alive() and _SUPERVISOR.backend is backend:
            return _SUPERVISOR
        if _SUPERVISOR is not None:
            _SUPERVISOR.stop()
        _register_exit_hook()
        _SUPERVISOR = Supervisor(backend, wait=wait).start()
        return _SUPERVISOR


def stop_supervisor(*, stop_worker: bool = False) -> None:
    """Stop this process's supervisor (at exit, and in tests); with ``stop_worker`` its worker too."""
    global _SUPERVISOR, _EMBEDDED
    with _SUPERVISOR_LOCK:
        sup, _SUPERVISOR = _SUPERVISOR, None
    if sup is not None:
        sup.stop()
    handle = _EMBEDDED
    if stop_worker and handle is not None:
        handle.stop()
        _EMBEDDED = None


def worker_status(*, count_jobs: bool = True) -> dict[str, Any]:
    """For the dashboard's sidebar: live workers, queue depth (None without ``count_jobs``), this
    process's embedded worker and its supervisor."""
    backend = get_backend()
    workers = backend.workers()
    now = time.time()
    for w in workers:
        w["heartbeat_age"] = round(now - w["heartbeat"], 1) if w.get("heartbeat") else None
    queued = len(backend.table.list([QUEUED], limit=None)) if count_jobs else None
    running = len(backend.table.list([RUNNING], limit=None)) if count_jobs else None
    embedded = None
    handle = _EMBEDDED
    if handle is not None:
        embedded = {"pid": handle.pid, "alive": handle.alive(), "log": str(handle.log_path)}
    return {
        "alive": bool(workers),
        "workers": workers,
        "queued": queued,
        "running": running,
        "backend": backend.name,
        "queue": redact(getattr(backend, "queue", backend.name)),
        "embedded": embedded,
        "supervisor": _SUPERVISOR.info() if _SUPERVISOR is not None else None,
    }
