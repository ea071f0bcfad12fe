"""The job table: one row per job (state, progress, phase, metrics, times, worker, error, result),
per-job log lines and live worker heartbeats, shared by submitters, workers and the dashboard.

Two implementations with one interface (``base.JobTable``): ``SqliteJobTable`` (``sqlite.py``, a
small SQLite file next to the SQLite queue) and ``RedisJobTable`` (``redis.py``, hashes in the
Redis server that carries the queue). Every state change is a conditional update ("set running
WHERE state='queued'"), so two workers never claim the same job and a late writer never
overwrites a newer state.

States: queued -> running -> done | failed | cancelled; queued -> cancelled; running -> queued
(re-queued after its worker stopped or died, when that is enabled).
"""

from __future__ import annotations

from .base import (
    ACTIVE_STATES,
    CANCELLED,
    DONE,
    FAILED,
    FIELDS,
    FINAL_STATES,
    MAX_LOG_LINES,
    QUEUED,
    RUNNING,
    STATES,
    WORKER_FIELDS,
    JobTable,
    Row,
    blank_row,
    check_fields,
    is_redis_url,
    metrics_json,
    redact,
    sqlite_jobs_path,
    sqlite_queue_path,
    typed_row,
)
from .redis import RedisJobTable
from .sqlite import SqliteJobTable


def job_table_for(queue: str) -> JobTable:
    """The job table that goes with a queue setting (``NNGEO_QUEUE``, see ``nngeo_core.settings``)."""
    if is_redis_url(queue):
        return RedisJobTable(queue)
    return SqliteJobTable(sqlite_jobs_path(sqlite_queue_path(queue)))


__all__ = [
    "ACTIVE_STATES",
    "CANCELLED",
    "DONE",
    "FAILED",
    "FIELDS",
    "FINAL_STATES",
    "MAX_LOG_LINES",
    "QUEUED",
    "RUNNING",
    "STATES",
    "WORKER_FIELDS",
    "JobTable",
    "RedisJobTable",
    "Row",
    "SqliteJobTable",
    "blank_row",
    "check_fields",
    "is_redis_url",
    "job_table_for",
    "metrics_json",
    "redact",
    "sqlite_jobs_path",
    "sqlite_queue_path",
    "typed_row",
]
