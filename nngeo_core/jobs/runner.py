"""Running one queued job: claim it, run its kind with a Progress wired to the job table, record
the outcome. Shared by the Huey worker and the in-process backend, so unit tests exercise the
same code the worker runs.

Claiming is a conditional update (queued -> running), so a job delivered twice, or cancelled
while still queued, is never run twice or at all. The job's Progress writes percent, phase and
metrics to the table (throttled) and reads the cancel flag at most every ``CANCEL_POLL_SECONDS``;
the kind raises ``Cancelled`` at its next ``progress.check()`` and, since kinds write to the
store only at the end, a cancelled job leaves nothing behind.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import NNGeoError, one_line
from ..progress import Cancelled, Progress
from ..settings import pick_device
from ..specs import spec_from_dict
from .registry import get_job_kind
from .table import CANCELLED, DONE, FAILED, QUEUED, RUNNING, JobTable, metrics_json

if TYPE_CHECKING:
    from ..store import Store

CANCEL_POLL_SECONDS = 0.5
PROGRESS_WRITE_SECONDS = 0.5  # regular updates
MIN_WRITE_SECONDS = 0.25  # even forced ones (end of each epoch) are written at most this often
LOG_PHASE_SECONDS = 1.0  # phase changes go to the job log at most this often
LOG_FLUSH_SECONDS = 0.5

HOST = socket.gethostname()

log = logging.getLogger(__name__)


@dataclass
class WorkerContext:
    """Who runs jobs in this process, and how to reach the outside."""

    worker_id: str
    device: str = "cpu"
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    shutdown: threading.Event = field(default_factory=threading.Event)
    # called with a job id to put it back in the queue (the backend's enqueue)
    enqueue: Callable[[str], None] | None = None
    running: set[str] = field(default_factory=set)  # job ids running in this process now
    _stores: dict[str, Store] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def store(self, root: str) -> Store:
        from ..store import Store  # lazy: 1.3 s (pandas, fsspec); `nngeo --help` imports this module

        with self._lock:
            if root not in self._stores:
                self._stores[root] = Store(root)
            return self._stores[root]


def new_worker_id() -> str:
    return f"{HOST}-{os.getpid()}-{uuid.uuid4().hex[:4]}"


def detect_device() -> str:
    """The device this worker process computes on (``cuda:N`` for its one visible GPU)."""
    device = pick_device("auto")
    if device == "cuda":
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").strip()
        return f"cuda:{visible}" if visible and "," not in visible else "cuda:0"
    return device


def stamp(t: float | None = None) -> str:
    t = time.time() if t is None else t
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) + f".{int(t % 1 * 1000):03d}"


class JobLog:
    """Per-job log lines, buffered and written to the job table in batches."""

    def __init__(self, table: JobTable, job_id: str):
        self.table, self.job_id = table, job_id
        self._buf: list[str] = []
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def write(self, message: str, flush: bool = False) -> None:
        lines = [f"{stamp()} {line}" for line in str(message).rstrip("\n").splitlines() or [""]]
        with self._lock:
            self._buf.extend(lines)
        if flush or time.monotonic() - self._last >= LOG_FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            lines, self._buf = self._buf, []
            self._last = time.monotonic()
        if lines:
            try:
                self.table.append_logs(self.job_id, lines)
            except Exception:  # logs are best effort; the job's outcome is not
                log.exception("could not write %d log lines of job %s", len(lines), self.job_id)


class _ThreadLogHandler(logging.Handler):
    """Copies log records emitted by one thread (the job's) into the job's log."""

    def __init__(self, job_log: JobLog, thread_id: int):
        super().__init__(logging.INFO)
        self.job_log, self.thread_id = job_log, thread_id
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread_id:
            try:
                self.job_log.write(self.format(record))
            except Exception:
                self.handleError(record)


class JobProgress(Progress):
    """Progress that writes to the job table and reads the job's cancel flag, both throttled: a
    loop with millisecond epochs (whose end-of-epoch updates are forced) must not turn into a
    stream of database writes."""

    def __init__(self, table: JobTable, job_id: str, ctx: WorkerContext, job_log: JobLog):
        super().__init__(on_update=self._write, is_cancelled=self._poll_cancel, min_interval=PROGRESS_WRITE_SECONDS)
        self.table, self.job_id, self.ctx, self.job_log = table, job_id, ctx, job_log
        self._last_poll = 0.0
        self._last_write = 0.0
        self._last_log = 0.0
        self._cancel = False
        self._pending: tuple[float, str, dict[str, Any]] | None = None
        self._logged_phase: str | None = None
        self.stopped_for_shutdown = False

    def _write(self, fraction: float, phase: str, metrics: dict[str, Any]) -> None:
        self._pending = (fraction, phase, metrics)
        if time.monotonic() - self._last_write >= MIN_WRITE_SECONDS:
            self.flush()

    def flush(self) -> None:
        """Write the latest unwritten update, if any."""
        if self._pending is None:
            return
        fraction, phase, metrics = self._pending
        self._pending = None
        now = time.monotonic()
        self._last_write = now
        try:
            self.table.update(
                self.job_id,
                {
                    "progress": float(fraction),
                    "phase": phase[:200],
                    "metrics": metrics_json(metrics),
                    "heartbeat": time.time(),
                },
            )
        except Exception:
            log.exception("could not record progress of job %s", self.job_id)
        if phase != self._logged_phase and now - self._last_log >= LOG_PHASE_SECONDS:
            self._logged_phase, self._last_log = phase, now
            shown = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items())
            self.job_log.write(f"[{100 * fraction:5.1f}%] {phase} {shown}".rstrip())

    def _poll_cancel(self) -> bool:
        if self.ctx.shutdown.is_set():
            self.stopped_for_shutdown = True
            return True
        now = time.monotonic()
        if self._pending is not None and now - self._last_write >= PROGRESS_WRITE_SECONDS:
            self.flush()  # a throttled update must not stay unwritten through a long quiet phase
        if not self._cancel and now - self._last_poll >= CANCEL_POLL_SECONDS:
            self._last_poll = now
            try:
                row = self.table.get(self.job_id)
                self._cancel = row is None or bool(row["cancel_requested"])
            except Exception:  # an unreachable table must not kill a long job; try again later
                log.exception("could not read the cancel flag of job %s", self.job_id)
        return self._cancel


def execute_job(table: JobTable, job_id: str, ctx: WorkerContext) -> str | None:
    """Claim and run one job; returns its final state, or None if it was not ours to run
    (cancelled while queued, or claimed by another worker)."""
    now = time.time()
    claimed = table.transition(
        job_id,
        [QUEUED],
        {
            "state": RUNNING,
            "started": now,
            "heartbeat": now,
            "ended": None,
            "worker": ctx.worker_id,
            "host": ctx.host,
            "pid": ctx.pid,
            "device": ctx.device,
            "phase": "starting",
            "error": None,
            "progress": 0.0,
        },
        count_attempt=True,
    )
    if not claimed:
        return None
    ctx.running.add(job_id)
    job = table.get_existing(job_id)
    job_log = JobLog(table, job_id)
    job_log.write(f"started on worker {ctx.worker_id} (device {ctx.device}, attempt {job['attempts']})", flush=True)
    progress = JobProgress(table, job_id, ctx, job_log)
    handler = _ThreadLogHandler(job_log, threading.get_ident())
    logging.getLogger().addHandler(handler)
    state = FAILED
    try:
        try:
            kind = get_job_kind(job["kind"])
            spec = spec_from_dict(job["spec"])
            if not isinstance(spec, kind.spec_type):
                raise NNGeoError(
                    f"job kind {kind.name!r} takes a {kind.spec_type.__name__}, got a {type(spec).__name__}"
                )
            progress.check()
            try:
                key = kind.fn(spec, store=ctx.store(job["store"]), progress=progress)
            finally:
                progress.flush()  # where it got to, before the final state is written
            if not isinstance(key, str) or not key:
                raise NNGeoError(f"job kind {kind.name!r} returned {key!r} instead of a result key")
        except Cancelled:
            if progress.stopped_for_shutdown and not _cancel_requested(table, job_id):
                state = _requeue_after_shutdown(table, job_id, ctx, job_log)
            else:
                state = CANCELLED
                table.transition(
                    job_id,
                    [RUNNING],
                    {"state": CANCELLED, "ended": time.time(), "phase": "cancelled"},
                    worker=ctx.worker_id,
                )
                job_log.write("cancelled; nothing was stored")
        except Exception as exc:
            error = one_line(exc)
            table.transition(
                job_id,
                [RUNNING],
                {"state": FAILED, "ended": time.time(), "error": error[:1000], "phase": "failed"},
                worker=ctx.worker_id,
            )
            job_log.write(f"failed: {error}")
            if not isinstance(exc, NNGeoError):  # bad input is explained by its message; bugs need the trace
                job_log.write("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
        else:
            state = DONE
            # FAILED too: a worker wrongly presumed dead (e.g. suspended) still records its result
            table.transition(
                job_id,
                [RUNNING, FAILED],
                {
                    "state": DONE,
                    "ended": time.time(),
                    "result": key,
                    "progress": 1.0,
                    "phase": "done",
                    "error": None,
                    "metrics": metrics_json(progress.metrics),
                },
                worker=ctx.worker_id,
            )
            job_log.write(f"done: result {key}")
    finally:
        logging.getLogger().removeHandler(handler)
        ctx.running.discard(job_id)
        job_log.flush()
    return state


def _cancel_requested(table: JobTable, job_id: str) -> bool:
    row = table.get(job_id)
    return row is None or bool(row["cancel_requested"])


def _requeue_after_shutdown(table: JobTable, job_id: str, ctx: WorkerContext, job_log: JobLog) -> str:
    """The worker is stopping (not the user cancelling): put the job back for the next worker."""
    if ctx.enqueue is None:
        table.transition(
            job_id,
            [RUNNING],
            {
                "state": FAILED,
                "ended": time.time(),
                "phase": "failed",
                "error": "worker stopped before the job finished",
            },
            worker=ctx.worker_id,
        )
        job_log.write("worker stopping: job failed (no queue to put it back)")
        return FAILED
    if not table.transition(
        job_id,
        [RUNNING],
        {
            "state": QUEUED,
            "started": None,
            "worker": None,
            "pid": None,
            "host": None,
            "progress": 0.0,
            "phase": "re-queued (worker stopped)",
        },
        worker=ctx.worker_id,
    ):
        return (table.get(job_id) or {}).get("state") or FAILED
    try:
        ctx.enqueue(job_id)
    except Exception as exc:
        table.transition(
            job_id,
            [QUEUED],
            {
                "state": FAILED,
                "ended": time.time(),
                "phase": "failed",
                "error": f"worker stopped and the job could not be re-queued: {one_line(exc)}",
            },
        )
        return FAILED
    job_log.write("worker stopping: job re-queued")
    return QUEUED
