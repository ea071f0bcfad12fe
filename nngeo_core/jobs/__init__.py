"""Background jobs: training, analyses and sweeps run in a worker process, never in the dashboard.

A job is a spec (what to compute) plus its hash. ``submit(spec)`` returns the stored result at
once when the store already has it (``cached=True``), returns the existing job when an identical
one is queued or running, and otherwise queues it for a worker (`nngeo worker`, or the embedded
worker the dashboard starts and keeps alive with ``start_supervisor()``). Workers record state, percent, phase,
metrics, times, device and errors in a job table that ``status``/``list_jobs`` read; ``cancel``
stops a job at its next progress check and nothing is stored.

The queue comes from ``NNGEO_QUEUE`` (see ``nngeo_core.settings``): a SQLite file on one machine
(default ``$NNGEO_HOME/queue.db``), ``redis://host:port/db`` for workers on several machines, or
``memory://`` (this process only, a background thread; for tests and demos). ``clean(days)``
deletes finished jobs older than that many days.

    from nngeo_core import jobs
    info = jobs.submit(RunSpec(...))      # JobInfo(id, kind, state, progress, ..., cached, result)
    jobs.status(info.id).progress
    jobs.cancel(info.id)
    key = jobs.run_job(spec)              # the same computation, here and now, without a queue

Modules, each importing only those listed before it: ``table/`` (the job table: ``base``,
``sqlite``, ``redis``), ``registry`` (job kinds), ``runner`` (running one claimed job),
``liveness`` (heartbeats, dead workers, recovery), ``backend`` (submit/status/cancel over a
table), ``inprocess`` and ``huey_backend`` (the transports), ``queues`` (``get_backend``),
``embedded`` (the dashboard's worker and the app's supervisor of it), ``worker`` (one Huey
consumer), ``supervisor`` (`nngeo worker`: one consumer per GPU); ``kinds`` (built-in kinds,
loaded by the registry) and ``cli`` sit on top.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..progress import Progress
from .backend import JobBackend, JobInfo
from .embedded import WorkerHandle, ensure_worker, start_supervisor, stop_supervisor, worker_status
from .queues import get_backend
from .registry import JOB_KINDS, JobKind, get_job_kind, job_kinds, kind_for_spec, register_job_kind
from .table import ACTIVE_STATES, CANCELLED, DONE, FAILED, FINAL_STATES, QUEUED, RUNNING, STATES

if TYPE_CHECKING:
    from ..store import Store


def submit(spec: Any, *, store: Store | None = None) -> JobInfo:
    """Queue a job for ``spec`` (or find its stored result / its running twin)."""
    return get_backend().submit(spec, store=store)


def status(job_id: str) -> JobInfo:
    return get_backend().status(job_id)


def cancel(job_id: str) -> JobInfo:
    return get_backend().cancel(job_id)


def list_jobs(state: str | list[str] | None = None, kind: str | None = None, limit: int | None = 50) -> list[JobInfo]:
    """Jobs, newest first, optionally of some states and one kind."""
    return get_backend().list(state=state, kind=kind, limit=limit)


def logs(job_id: str, start: int = 0) -> list[str]:
    """The job's log lines (lifecycle, phases, warnings, the traceback of an unexpected error)."""
    return get_backend().logs(job_id, start)


def wait(job_id: str, timeout: float | None = None) -> JobInfo:
    return get_backend().wait(job_id, timeout=timeout)


def clean(older_than_days: float) -> int:
    """Delete finished jobs older than ``older_than_days`` days (never queued or running ones)."""
    return get_backend().clean(older_than_days)


def run_job(spec: Any, progress: Progress | None = None, *, store: Store | None = None) -> str:
    """Compute ``spec`` here, without a queue (the CLI's direct commands); returns the result key."""
    from ..store import default_store  # lazy: 1.3 s (pandas, fsspec); `nngeo --help` imports this package

    kind = kind_for_spec(spec)
    store = store if store is not None else default_store()
    spec = kind.prepare(spec, store)
    return kind.fn(spec, store=store, progress=progress or Progress())


__all__ = [
    "ACTIVE_STATES",
    "CANCELLED",
    "DONE",
    "FAILED",
    "FINAL_STATES",
    "JOB_KINDS",
    "QUEUED",
    "RUNNING",
    "STATES",
    "JobBackend",
    "JobInfo",
    "JobKind",
    "WorkerHandle",
    "cancel",
    "clean",
    "ensure_worker",
    "get_backend",
    "get_job_kind",
    "job_kinds",
    "kind_for_spec",
    "list_jobs",
    "logs",
    "register_job_kind",
    "run_job",
    "start_supervisor",
    "status",
    "stop_supervisor",
    "submit",
    "wait",
    "worker_status",
]
