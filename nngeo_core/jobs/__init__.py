"""Background jobs: training, analyses and sweeps run in a worker process, never in the dashboard.

A job is a spec (what to compute) plus its hash. ``submit(spec)`` returns the stored result at
once when the store already has it (``cached=True``), returns the existing job when an identical
one is queued or running, and otherwise queues it for a worker (`nngeo worker`, or the embedded
worker the dashboard starts with ``ensure_worker()``). Workers record state, percent, phase,
metrics, times, device and errors in a job table that ``status``/``list_jobs`` read; ``cancel``
stops a job at its next progress check and nothing is stored.

The queue comes from ``NNGEO_QUEUE`` (see ``nngeo_core.settings``): a SQLite file on one machine
(default ``$NNGEO_HOME/queue.db``), ``redis://host:port/db`` for workers on several machines, or
``memory://`` (this process only, a background thread; for tests and demos).

    from nngeo_core import jobs
    info = jobs.submit(RunSpec(...))      # JobInfo(id, kind, state, progress, ..., cached, result)
    jobs.status(info.id).progress
    jobs.cancel(info.id)
    key = jobs.run_job(spec)              # the same computation, here and now, without a queue
"""

from __future__ import annotations

import os
import threading
from typing import Any

from ..progress import Progress
from .backend import JobBackend, JobInfo
from .registry import JOB_KINDS, JobKind, get_job_kind, job_kinds, kind_for_spec, register_job_kind
from .table import ACTIVE_STATES, CANCELLED, DONE, FAILED, FINAL_STATES, QUEUED, RUNNING, STATES

_BACKENDS: dict[tuple[int, str], JobBackend] = {}
_LOCK = threading.Lock()


def get_backend(queue: str | None = None) -> JobBackend:
    """The backend for ``queue`` (default: the ``NNGEO_QUEUE`` setting), one per process and queue."""
    from ..settings import get_settings

    queue = queue or get_settings().queue
    key = (os.getpid(), queue)
    with _LOCK:
        backend = _BACKENDS.get(key)
        if backend is None:
            if queue.startswith("memory://"):
                from .inprocess import InProcessBackend

                backend = InProcessBackend(background=True)
            else:
                from .huey_backend import HueyBackend

                backend = HueyBackend(queue)
            _BACKENDS[key] = backend
        return backend


def submit(spec: Any, *, store=None) -> JobInfo:
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


def run_job(spec: Any, progress: Progress | None = None, *, store=None) -> str:
    """Compute ``spec`` here, without a queue (the CLI's direct commands); returns the result key."""
    from ..store import default_store

    kind = kind_for_spec(spec)
    store = store if store is not None else default_store()
    if kind.normalize is not None:
        spec = kind.normalize(spec, store)
    return kind.fn(spec, store=store, progress=progress or Progress())


def ensure_worker(**kwargs):
    """Start a background worker unless one is alive (for app.py); see ``worker.ensure_worker``."""
    from .worker import ensure_worker as _ensure

    return _ensure(**kwargs)


def worker_status(*, count_jobs: bool = True) -> dict:
    """Live workers and queue depth, for the dashboard's sidebar (``count_jobs=False``: workers
    only, for a caller that has just listed the active jobs itself)."""
    from .worker import worker_status as _status

    return _status(count_jobs=count_jobs)


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
    "cancel",
    "ensure_worker",
    "get_backend",
    "get_job_kind",
    "job_kinds",
    "kind_for_spec",
    "list_jobs",
    "logs",
    "register_job_kind",
    "run_job",
    "status",
    "submit",
    "wait",
    "worker_status",
]
