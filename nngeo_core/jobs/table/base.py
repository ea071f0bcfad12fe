"""What every job table shares: the job states, the row fields, the abstract ``JobTable`` with its
shared helpers (id prefixes, cancel requests), and the queue-URL helpers that say which table
goes with a queue setting.
"""

from __future__ import annotations

import builtins
import json
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ...errors import NNGeoError

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
ACTIVE_STATES = (QUEUED, RUNNING)
FINAL_STATES = (DONE, FAILED, CANCELLED)
STATES = ACTIVE_STATES + FINAL_STATES

Row = dict[str, Any]

# column -> python type; every row dict has exactly these keys (None where unset)
FIELDS: dict[str, type] = {
    "id": str,
    "kind": str,
    "spec_hash": str,
    "spec": str,
    "store": str,
    "label": str,
    "state": str,
    "progress": float,
    "phase": str,
    "metrics": str,
    "submitted": float,
    "started": float,
    "ended": float,
    "heartbeat": float,
    "device": str,
    "worker": str,
    "host": str,
    "pid": int,
    "error": str,
    "result": str,
    "cached": int,
    "cancel_requested": int,
    "attempts": int,
}
WORKER_FIELDS: dict[str, type] = {
    "id": str,
    "host": str,
    "pid": int,
    "device": str,
    "started": float,
    "heartbeat": float,
    "state": str,
    "job": str,
    "queue": str,
    "version": str,
}
MAX_LOG_LINES = 5000  # per job; older lines are dropped first


def blank_row(**values: Any) -> Row:
    row: Row = dict.fromkeys(FIELDS)
    row.update(progress=0.0, phase="", metrics="{}", cached=0, cancel_requested=0, attempts=0)
    row.update(values)
    unknown = set(row) - set(FIELDS)
    if unknown:
        raise KeyError(f"unknown job fields: {sorted(unknown)}")
    return row


def typed_row(raw: Mapping[str, Any], fields: Mapping[str, type]) -> Row:
    """A stored row (text or bytes values, '' for unset numbers) as python values of ``fields``."""
    out: Row = {}
    for k, t in fields.items():
        v = raw.get(k)
        if isinstance(v, bytes):
            v = v.decode()
        out[k] = None if v is None or v == "" and t is not str else t(v)
    return out


def check_fields(fields: Mapping[str, Any]) -> None:
    """Refuse unknown fields, the id, and unknown states in an update."""
    unknown = set(fields) - set(FIELDS)
    if unknown or "id" in fields:
        raise KeyError(f"cannot set job fields {sorted(unknown | ({'id'} & set(fields)))}")
    if "state" in fields and fields["state"] not in STATES:
        raise ValueError(f"unknown job state {fields['state']!r}")


class JobTable(ABC):
    """Shared job state. Every method is safe to call from several threads and processes."""

    @abstractmethod
    def create(self, row: Row) -> tuple[Row, bool]:
        """Insert a job. A queued/running job with the same (spec_hash, store) wins: it is
        returned instead with ``created=False`` (the one atomic dedupe point)."""

    @abstractmethod
    def get(self, job_id: str) -> Row | None: ...

    @abstractmethod
    def latest(self, spec_hash: str, store: str) -> Row | None:
        """The most recent job for this spec and store, if any."""

    @abstractmethod
    def transition(
        self,
        job_id: str,
        from_states: Iterable[str],
        fields: Mapping[str, Any],
        *,
        worker: str | None = None,
        count_attempt: bool = False,
    ) -> bool:
        """Set ``fields`` only if the job's state is one of ``from_states`` (and its worker is
        ``worker`` when given); returns whether it applied. ``count_attempt`` adds 1 to attempts."""

    @abstractmethod
    def update(self, job_id: str, fields: Mapping[str, Any]) -> None:
        """Unconditional update of non-state fields (progress, phase, metrics, heartbeat)."""

    @abstractmethod
    def list(
        self, states: Iterable[str] | None = None, kind: str | None = None, limit: int | None = 100
    ) -> builtins.list[Row]:
        """Jobs, newest first."""

    @abstractmethod
    def ids_with_prefix(self, prefix: str, limit: int = 2) -> builtins.list[str]: ...

    @abstractmethod
    def append_logs(self, job_id: str, lines: builtins.list[str]) -> None: ...

    @abstractmethod
    def logs(self, job_id: str, start: int = 0) -> builtins.list[str]: ...

    @abstractmethod
    def delete_finished(self, before: float) -> int:
        """Delete finished (done, failed, cancelled) jobs that ended before the unix time
        ``before`` (``submitted`` when ``ended`` is unset), with their logs; never an active job.
        Returns how many were deleted."""

    @abstractmethod
    def put_worker(self, row: Row) -> None: ...

    @abstractmethod
    def remove_worker(self, worker_id: str) -> None: ...

    @abstractmethod
    def workers(self) -> builtins.list[Row]: ...

    def close(self) -> None:  # noqa: B027  (optional hook: a table without resources keeps it)
        pass

    # -- shared helpers ------------------------------------------------------------------------
    def get_existing(self, job_id: str) -> Row:
        """The row of a job that must exist (one just written or resolved)."""
        row = self.get(job_id)
        if row is None:
            raise NNGeoError(f"job {job_id} disappeared from the job table")
        return row

    def resolve(self, job_id: str) -> str:
        """Full job id for an id or unique prefix."""
        job_id = str(job_id).strip()
        if not job_id:
            raise NNGeoError("empty job id")
        if self.get(job_id) is not None:
            return job_id
        found = self.ids_with_prefix(job_id)
        if not found:
            raise NNGeoError(f"no job {job_id!r} in the job table (see `nngeo jobs list`)")
        if len(found) > 1:
            raise NNGeoError(f"{job_id!r} matches several jobs; give more characters")
        return found[0]

    def request_cancel(self, job_id: str) -> bool:
        """Raise the cancel flag; a queued job becomes cancelled at once, a running one stops at
        its next progress check. Returns False when the job had already finished."""
        self.update(job_id, {"cancel_requested": 1})
        # flag first, then the state: a worker claiming in between still sees the flag
        if self.transition(job_id, [QUEUED], {"state": CANCELLED, "ended": time.time(), "phase": "cancelled"}):
            return True
        row = self.get(job_id)
        return row is not None and row["state"] == RUNNING


# -- queue settings ----------------------------------------------------------------------------
def is_redis_url(queue: str) -> bool:
    return queue.startswith(("redis://", "rediss://", "unix://"))


def sqlite_queue_path(queue: str) -> Path:
    """'sqlite:///abs/queue.db' or a bare path -> the path (as ``Settings.queue_sqlite_path``)."""
    return Path(queue[len("sqlite://") :] if queue.startswith("sqlite://") else queue).expanduser()


def sqlite_jobs_path(queue_path: Path) -> Path:
    """``queue.db`` -> ``queue.jobs.db`` in the same folder."""
    queue_path = Path(queue_path)
    return queue_path.with_name(queue_path.stem + ".jobs" + (queue_path.suffix or ".db"))


def redact(url: str) -> str:
    """A queue URL without its password, for display."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
    return url


def metrics_json(metrics: Mapping[str, Any]) -> str:
    return json.dumps(dict(metrics), sort_keys=True, default=_plain_number)


def _plain_number(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    return str(o)
