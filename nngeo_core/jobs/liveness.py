"""Which workers are alive, and what happens to the jobs of those that are not.

Every worker writes a heartbeat row (host, pid, device, current job) every ``HEARTBEAT_SECONDS``
and refreshes its running jobs' heartbeat (``Heartbeat``). A worker is alive while its heartbeat
is younger than ``NNGEO_WORKER_STALE_S`` seconds and, on this host, its process exists. A
starting worker, and every worker every ``RECOVER_EVERY_BEATS`` beats, marks ``running`` jobs of
dead workers failed ("worker died (killed?) while running") or, with ``--requeue-dead`` /
``NNGEO_REQUEUE_DEAD=1``, queues them once more (``recover_dead_jobs``), and hands queued jobs
that lost their queue entry to the queue again (``requeue_orphans``).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Collection
from typing import Protocol

from .. import __version__
from ..settings import get_settings
from .runner import HOST, WorkerContext, stamp
from .table import FAILED, QUEUED, RUNNING, JobTable, Row, redact

HEARTBEAT_SECONDS = 2.0
RECOVER_EVERY_BEATS = 5
SHUTDOWN_WAIT_SECONDS = 15.0  # how long a stopping worker waits for its running jobs
MAX_ATTEMPTS = 2  # a job re-queued after its worker died runs at most twice
ORPHAN_AGE_SECONDS = 5.0

log = logging.getLogger(__name__)


class Queue(Protocol):
    """What recovery needs of a backend: its table, the ids waiting in its queue, a way in."""

    table: JobTable

    def pending_ids(self) -> Collection[str]: ...

    def enqueue(self, job_id: str) -> None: ...


def stale_seconds() -> float:
    """Seconds without a heartbeat after which a worker counts as dead (``NNGEO_WORKER_STALE_S``)."""
    return get_settings().worker_stale_s


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


def worker_alive(row: Row, now: float | None = None, stale: float | None = None) -> bool:
    now = time.time() if now is None else now
    stale = stale_seconds() if stale is None else stale
    beat = row.get("heartbeat")
    if beat is None or now - beat > stale:
        return False
    return pid_alive(row.get("pid")) if row.get("host") == HOST else True


def live_workers(table: JobTable) -> list[Row]:
    now, stale = time.time(), stale_seconds()
    return [w for w in table.workers() if worker_alive(w, now, stale)]


def job_worker_dead(job: Row, now: float, stale: float) -> bool:
    """Whether the worker running ``job`` is gone: its process on this host, or its heartbeat."""
    if job["host"] == HOST and job["pid"] and not pid_alive(job["pid"]):
        return True
    return now - (job["heartbeat"] or job["started"] or 0.0) > stale


def recover_dead_jobs(
    table: JobTable, *, me: str | None, requeue: bool, enqueue: Callable[[str], None] | None = None
) -> list[tuple[str, str]]:
    """Fail (or re-queue once) running jobs whose worker is gone; returns [(job id, new state)]."""
    now, stale = time.time(), stale_seconds()
    changed = []
    for job in table.list([RUNNING], limit=None):
        if job["worker"] == me or not job_worker_dead(job, now, stale):
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
        if w["id"] != me and not worker_alive(w, now, stale):
            table.remove_worker(w["id"])
    return changed


def requeue_orphans(backend: Queue, older_than: float = ORPHAN_AGE_SECONDS) -> list[str]:
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
        backend.enqueue(job_id)
    return orphans


class Heartbeat:
    """The heartbeat of one worker: its row in the job table and its running jobs' heartbeat,
    written by ``beat`` and, once started, every ``HEARTBEAT_SECONDS`` by a daemon thread that also
    runs ``recover`` every ``RECOVER_EVERY_BEATS`` beats and stops this process (SIGTERM) when
    ``parent_pid`` has exited."""

    def __init__(
        self,
        table: JobTable,
        ctx: WorkerContext,
        *,
        queue: str,
        recover: Callable[[], None],
        parent_pid: int | None = None,
    ):
        self.table, self.ctx, self.queue = table, ctx, queue
        self.recover = recover
        self.parent_pid = parent_pid
        self.started = time.time()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def beat(self, state: str | None = None) -> None:
        now = time.time()
        running = sorted(self.ctx.running)
        self.table.put_worker(
            dict(
                id=self.ctx.worker_id,
                host=HOST,
                pid=os.getpid(),
                device=self.ctx.device,
                started=self.started,
                heartbeat=now,
                state=state or ("busy" if running else "idle"),
                job=running[0] if running else None,
                queue=redact(self.queue),
                version=__version__,
            )
        )
        for job_id in running:
            self.table.update(job_id, {"heartbeat": now})

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="nngeo-heartbeat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=HEARTBEAT_SECONDS + 1)

    def _loop(self) -> None:
        n = 0
        while not self._stop.wait(HEARTBEAT_SECONDS):
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
