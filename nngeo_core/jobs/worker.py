"""The worker process (`nngeo worker`): one Huey consumer per accelerator, heartbeats, recovery
of jobs whose worker died, and the embedded worker that the dashboard starts when none runs.

Liveness: every worker writes a heartbeat row (host, pid, device, current job) every
``HEARTBEAT_SECONDS`` and refreshes its running jobs' heartbeat. A worker is alive while its
heartbeat is younger than ``STALE_SECONDS`` and, on this host, its process exists. A starting
worker, and every worker every few heartbeats, marks ``running`` jobs of dead workers failed
("worker died (killed?) while running") or, with ``--requeue-dead`` / ``NNGEO_REQUEUE_DEAD=1``,
queues them once more. Stopping a worker (SIGTERM, SIGINT, SIGHUP, or its parent dying with
``--parent-pid``) asks running jobs to stop at their next progress check and re-queues them.

GPUs: `nngeo worker` runs one consumer per visible GPU (each its own process with
``CUDA_VISIBLE_DEVICES`` set to one GPU), or one CPU consumer when there is none.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from huey.consumer import Consumer

from .. import __version__
from ..errors import NNGeoError
from ..settings import get_settings
from .runner import WorkerContext, stamp
from .table import FAILED, QUEUED, RUNNING, JobTable

HOST = socket.gethostname()
HEARTBEAT_SECONDS = 2.0
STALE_SECONDS = float(os.environ.get("NNGEO_WORKER_STALE_S") or 30.0)
RECOVER_EVERY_BEATS = 5
SHUTDOWN_WAIT_SECONDS = 15.0
MAX_ATTEMPTS = 2  # a job re-queued after its worker died runs at most twice
ORPHAN_AGE_SECONDS = 5.0
# SQLite has no blocking pop: poll quickly, back off to at most this when idle
SQLITE_POLL = dict(initial_delay=0.05, backoff=1.2, max_delay=0.5)

log = logging.getLogger(__name__)
_CURRENT: tuple[Any, WorkerContext] | None = None


# -- liveness ----------------------------------------------------------------------------------
def pid_alive(pid: int | None) -> bool:
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a killed process its parent has not reaped yet is a zombie: dead for our purposes
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def worker_alive(row: dict, now: float | None = None) -> bool:
    now = time.time() if now is None else now
    beat = row.get("heartbeat")
    if beat is None or now - beat > STALE_SECONDS:
        return False
    return pid_alive(row.get("pid")) if row.get("host") == HOST else True


def live_workers(table: JobTable) -> list[dict]:
    now = time.time()
    return [w for w in table.workers() if worker_alive(w, now)]


def _job_worker_dead(job: dict, now: float) -> bool:
    if job["host"] == HOST and job["pid"] and not pid_alive(job["pid"]):
        return True
    return now - (job["heartbeat"] or job["started"] or 0.0) > STALE_SECONDS


def recover_dead_jobs(table: JobTable, *, me: str | None, requeue: bool, enqueue=None) -> list[tuple[str, str]]:
    """Fail (or re-queue once) running jobs whose worker is gone; returns [(job id, new state)]."""
    now = time.time()
    changed = []
    for job in table.list([RUNNING], limit=None):
        if job["worker"] == me or not _job_worker_dead(job, now):
            continue
        who = f"{job['worker']} (pid {job['pid']} on {job['host']})"
        if requeue and enqueue is not None and job["attempts"] < MAX_ATTEMPTS:
            if table.transition(
                job["id"],
                [RUNNING],
                {
                    "state": QUEUED,
                    "started": None,
                    "worker": None,
                    "pid": None,
                    "host": None,
                    "progress": 0.0,
                    "phase": "re-queued (worker died)",
                },
                worker=job["worker"],
            ):
                enqueue(job["id"])
                table.append_logs(job["id"], [f"{stamp()} worker {who} died; job re-queued"])
                changed.append((job["id"], QUEUED))
        elif table.transition(
            job["id"],
            [RUNNING],
            {"state": FAILED, "ended": now, "phase": "failed", "error": f"worker died (killed?) while running: {who}"},
            worker=job["worker"],
        ):
            table.append_logs(job["id"], [f"{stamp()} worker {who} died while running the job; marked failed"])
            changed.append((job["id"], FAILED))
    for w in table.workers():
        if w["id"] != me and not worker_alive(w, now):
            table.remove_worker(w["id"])
    return changed


def requeue_orphans(backend, older_than: float = ORPHAN_AGE_SECONDS) -> list[str]:
    """Queued jobs with no task in the queue (their worker died between dequeue and claim, or the
    queue was flushed) are handed to the queue again. A duplicate delivery is harmless."""
    now = time.time()
    pending = backend.pending_ids()
    orphans = [
        j["id"]
        for j in backend.table.list([QUEUED], limit=None)
        if j["id"] not in pending and now - (j["submitted"] or now) > older_than
    ]
    for job_id in orphans:
        backend._enqueue(job_id)
    return orphans


def current_context():
    """(backend, WorkerContext) of this worker process, for the Huey task."""
    global _CURRENT
    if _CURRENT is None:  # a consumer started some other way (e.g. huey_consumer): make one
        from . import get_backend

        backend = get_backend()
        _CURRENT = (backend, WorkerContext(worker_id=new_worker_id(), device=detect_device(), enqueue=backend._enqueue))
    return _CURRENT


def new_worker_id() -> str:
    return f"{HOST}-{os.getpid()}-{uuid.uuid4().hex[:4]}"


def detect_device() -> str:
    from ..settings import pick_device

    device = pick_device("auto")
    if device == "cuda":
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").strip()
        return f"cuda:{visible}" if visible and "," not in visible else "cuda:0"
    return device


def redact(url: str) -> str:
    """A queue URL without its password, for display."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
    return url


# -- the consumer ------------------------------------------------------------------------------
class _Consumer(Consumer):
    """Huey's consumer, but every stop signal first asks running jobs to stop cooperatively (they
    are re-queued), then waits up to ``shutdown_timeout`` for them."""

    def __init__(self, huey, on_stop, **options):
        super().__init__(huey, **options)
        self._on_stop = on_stop

    def start(self):
        super().start()
        if hasattr(signal, "SIGHUP"):  # a closed terminal stops the worker instead of re-executing it
            signal.signal(signal.SIGHUP, lambda signum, frame: os.kill(os.getpid(), signal.SIGTERM))

    def stop(self, graceful=False):
        self._on_stop()
        super().stop(graceful=True)


class Worker:
    """One consumer process: `nngeo worker` for one device."""

    def __init__(
        self, queue: str | None = None, *, workers: int = 1, requeue_dead: bool = False, parent_pid: int | None = None
    ):
        from .huey_backend import HueyBackend

        self.settings = get_settings()
        self.backend = HueyBackend(queue or self.settings.queue)
        self.table = self.backend.table
        self.workers = max(1, int(workers))
        self.requeue_dead = requeue_dead
        self.parent_pid = parent_pid
        self.id = new_worker_id()
        self.started = time.time()
        self.ctx = WorkerContext(worker_id=self.id, device="starting", enqueue=self.backend._enqueue)
        self._stop_beating = threading.Event()

    def beat(self, state: str | None = None) -> None:
        now = time.time()
        running = sorted(self.ctx.running)
        self.table.put_worker(
            dict(
                id=self.id,
                host=HOST,
                pid=os.getpid(),
                device=self.ctx.device,
                started=self.started,
                heartbeat=now,
                state=state or ("busy" if running else "idle"),
                job=running[0] if running else None,
                queue=redact(self.backend.queue),
                version=__version__,
            )
        )
        for job_id in running:
            self.table.update(job_id, {"heartbeat": now})

    def recover(self) -> None:
        for job_id, state in recover_dead_jobs(
            self.table, me=self.id, requeue=self.requeue_dead, enqueue=self.backend._enqueue
        ):
            log.warning("job %s of a dead worker -> %s", job_id, state)
        for job_id in requeue_orphans(self.backend):
            log.warning("job %s was queued without a queue entry; handed to the queue again", job_id)

    def _heartbeat_loop(self) -> None:
        n = 0
        while not self._stop_beating.wait(HEARTBEAT_SECONDS):
            n += 1
            try:
                self.beat()
                if n % RECOVER_EVERY_BEATS == 0:
                    self.recover()
            except Exception:
                log.exception("heartbeat failed")
            if self.parent_pid and not pid_alive(self.parent_pid):
                log.warning("parent process %s is gone; stopping", self.parent_pid)
                self.parent_pid = None
                os.kill(os.getpid(), signal.SIGTERM)

    def _request_stop(self) -> None:
        if not self.ctx.shutdown.is_set():
            log.info("stopping: running jobs stop at their next progress check and are re-queued")
        self.ctx.shutdown.set()

    def run(self) -> int:
        global _CURRENT
        self.beat("starting")  # before torch is imported, so `ensure_worker` sees us at once
        self.ctx.device = detect_device()
        from .registry import job_kinds

        kinds = job_kinds()  # import plugin kinds now: a broken one shows at start, not in a job
        _CURRENT = (self.backend, self.ctx)
        self.recover()
        self.beat("idle")
        beater = threading.Thread(target=self._heartbeat_loop, name="nngeo-heartbeat", daemon=True)
        beater.start()
        options = dict(
            workers=self.workers,
            worker_type="thread",
            periodic=False,
            shutdown_timeout=SHUTDOWN_WAIT_SECONDS,
            check_worker_health=True,
        )
        if self.backend.name == "sqlite":
            options.update(SQLITE_POLL)
        consumer = _Consumer(self.backend.huey, self._request_stop, **options)
        log.info(
            "worker %s ready: queue %s (%s), store %s, device %s, kinds %s",
            self.id,
            redact(self.backend.queue),
            self.backend.name,
            self.settings.store,
            self.ctx.device,
            ", ".join(kinds),
        )
        try:
            consumer.run()
        finally:
            self._request_stop()
            self._stop_beating.set()
            beater.join(timeout=HEARTBEAT_SECONDS + 1)
            self._abandon_running()
            try:
                self.table.remove_worker(self.id)
            except Exception:
                log.exception("could not remove the worker row")
            log.info("worker %s stopped", self.id)
        return 0

    def _abandon_running(self) -> None:
        """Jobs that did not stop within the shutdown wait: fail them (their thread dies with us)."""
        for job_id in sorted(self.ctx.running):
            if self.table.transition(
                job_id,
                [RUNNING],
                {
                    "state": FAILED,
                    "ended": time.time(),
                    "phase": "failed",
                    "error": f"worker stopped while running (the job did not stop within {SHUTDOWN_WAIT_SECONDS:.0f} s)",
                },
                worker=self.id,
            ):
                self.table.append_logs(job_id, [f"{stamp()} worker {self.id} stopped; job failed"])


# -- `nngeo worker` ----------------------------------------------------------------------------
def plan_consumers(gpus: str, visible: str | None, device_count: int) -> list[str | None]:
    """The ``CUDA_VISIBLE_DEVICES`` value of each consumer process to start.

    ``[None]``: one consumer here, environment unchanged. ``[""]``: one CPU consumer. More than
    one entry: one child process per GPU. ``gpus`` is auto (every visible GPU), all, none/cpu, or a
    comma list of GPU ids."""
    choice = (gpus or "auto").strip().lower()
    if choice in ("none", "cpu"):
        return [""]
    if choice in ("auto", "all"):
        if visible is not None:
            ids = [x.strip() for x in visible.split(",") if x.strip()]
        else:
            ids = [str(i) for i in range(device_count)]
        return [None] if len(ids) <= 1 else ids
    ids = [x.strip() for x in choice.split(",") if x.strip()]
    if not ids or any(not x.replace("-", "").isalnum() for x in ids):
        raise NNGeoError(f"--gpus takes auto, all, none or a list of GPU ids such as 0,1; got {gpus!r}")
    return ids


def count_gpus() -> int:
    """NVIDIA GPUs on this machine, without initialising CUDA (the driver's /proc entries, or nvidia-smi)."""
    proc = Path("/proc/driver/nvidia/gpus")
    if proc.is_dir():
        return len(list(proc.iterdir()))
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20).stdout
            return sum(1 for line in out.splitlines() if line.startswith("GPU "))
        except (OSError, subprocess.SubprocessError):
            return 0
    return 0


def configure_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("huey").setLevel(logging.INFO if verbose else logging.WARNING)
    logging.getLogger("nngeo_core").setLevel(logging.INFO)
    logging.captureWarnings(True)


def run_worker_command(
    *,
    workers: int = 1,
    gpus: str = "auto",
    requeue_dead: bool | None = None,
    parent_pid: int | None = None,
    verbose: bool = False,
) -> int:
    configure_logging(verbose)
    if requeue_dead is None:
        requeue_dead = os.environ.get("NNGEO_REQUEUE_DEAD", "0").lower() in ("1", "true", "yes")
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    plan = plan_consumers(gpus, visible, count_gpus() if visible is None else 0)
    if len(plan) > 1:
        extra = (
            ["--workers", str(workers)]
            + (["--requeue-dead"] if requeue_dead else [])
            + (["--verbose"] if verbose else [])
            + (["--parent-pid", str(parent_pid)] if parent_pid else [])
        )
        return supervise(plan, extra)
    if plan[0] is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = plan[0]
    return Worker(workers=workers, requeue_dead=requeue_dead, parent_pid=parent_pid).run()


def supervise(gpu_ids: list[str], extra_args: list[str]) -> int:
    """One child consumer per GPU; restarts a child that dies, stops them all on a signal."""
    children: dict[str, subprocess.Popen] = {}
    stopping = threading.Event()

    def spawn(gid: str) -> subprocess.Popen:
        env = dict(os.environ, CUDA_VISIBLE_DEVICES=gid)
        log.info("starting consumer for GPU %s", gid)
        return subprocess.Popen([sys.executable, "-m", "nngeo_core", "worker", "--gpus", gid, *extra_args], env=env)

    def on_signal(signum, frame):
        stopping.set()

    for sig in (signal.SIGTERM, signal.SIGINT) + ((signal.SIGHUP,) if hasattr(signal, "SIGHUP") else ()):
        signal.signal(sig, on_signal)
    restarts: dict[str, list[float]] = {g: [] for g in gpu_ids}
    for gid in gpu_ids:
        children[gid] = spawn(gid)
    while not stopping.wait(1.0):
        for gid, child in list(children.items()):
            if child.poll() is None:
                continue
            recent = [t for t in restarts[gid] if time.time() - t < 300]
            if len(recent) >= 5:
                log.error("consumer for GPU %s keeps dying (status %s); not restarting it", gid, child.returncode)
                del children[gid]
                continue
            log.warning("consumer for GPU %s exited with status %s; restarting", gid, child.returncode)
            restarts[gid] = recent + [time.time()]
            children[gid] = spawn(gid)
        if not children:
            return 1
    for child in children.values():
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + SHUTDOWN_WAIT_SECONDS + 5
    for child in children.values():
        try:
            child.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
    return 0


# -- the embedded worker of the dashboard ------------------------------------------------------
@dataclass
class WorkerHandle:
    """A worker process this process started (``ensure_worker``); stopped at exit."""

    process: subprocess.Popen
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
    return os.environ.get("NNGEO_EMBEDDED_WORKER", "1").strip().lower() not in ("0", "false", "no", "off")


def ensure_worker(*, wait: float = 30.0) -> WorkerHandle | None:
    """Start a worker process unless a live one serves the queue; for the dashboard's app.py.

    Returns the handle of the worker this process started (it is stopped when this process
    exits), or None when another worker is alive, the backend needs none (``memory://``) or
    ``NNGEO_EMBEDDED_WORKER=0``. Safe to call on every Streamlit rerun: cheap when a worker runs."""
    global _EMBEDDED
    if not embedded_worker_enabled():
        return None
    from . import get_backend

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
        with _file_lock(settings.home / "worker-spawn.lock"):
            if live_workers(backend.table):  # another process started one meanwhile
                return None
            handle = spawn_worker(parent_pid=os.getpid())
            _wait_for_heartbeat(backend.table, handle, wait)
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


def _wait_for_heartbeat(table: JobTable, handle: WorkerHandle, wait: float) -> None:
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


class _file_lock:
    """An exclusive advisory lock on a file (serialises worker spawning across processes)."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        self.fh = open(self.path, "a+")
        try:
            import fcntl

            fcntl.flock(self.fh, fcntl.LOCK_EX)
        except ImportError:  # not POSIX: the in-process lock still holds
            pass
        return self

    def __exit__(self, *exc):
        self.fh.close()  # closing releases the lock


def worker_status(*, count_jobs: bool = True) -> dict:
    """For the dashboard's sidebar: live workers, queue depth (None without ``count_jobs``), this
    process's embedded worker."""
    from . import get_backend

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


__all__ = [
    "Worker",
    "WorkerHandle",
    "ensure_worker",
    "worker_status",
    "live_workers",
    "plan_consumers",
    "recover_dead_jobs",
    "requeue_orphans",
    "run_worker_command",
]
