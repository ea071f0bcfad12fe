"""The job queue as the pages need it: one plain dict per job, whatever the backend returns.

The dashboard talks to ``nngeo_core.jobs`` only through this module, so a page never depends on
the exact attribute names of ``JobInfo``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from .. import jobs
from ..errors import NNGeoError
from ..jobs import ACTIVE_STATES, CANCELLED, DONE, FAILED
from ..jobs.registry import kind_for_spec
from ..settings import get_settings
from . import job_progress

DONE_STATES = (DONE,)
FAILED_STATES = (FAILED,)
CANCELLED_STATES = (CANCELLED,)


def embedded_worker_wanted() -> bool:
    """NNGEO_EMBEDDED_WORKER=0 (tests, a separate `nngeo worker`) keeps the app from starting one."""
    return get_settings().embedded_worker


def ensure_worker() -> Any:
    """Start the embedded worker unless one is alive (for app.py): its handle, or None when
    another process serves the queue."""
    return jobs.ensure_worker()


def _get(info: Any, *names: str, default: Any = None) -> Any:
    for n in names:
        if isinstance(info, dict) and n in info:
            return info[n]
        if hasattr(info, n):
            return getattr(info, n)
    return default


def job_row(info: Any) -> dict:
    """A JobInfo (dataclass, object or dict) as a plain dict with fixed keys."""
    state = str(_get(info, "state", "status", default="unknown")).lower()
    fraction = _get(info, "fraction", "progress", default=0.0)
    try:
        fraction = max(0.0, min(1.0, float(fraction or 0.0)))
    except (TypeError, ValueError):
        fraction = 0.0
    metrics = _get(info, "metrics", default={}) or {}
    return {
        "id": str(_get(info, "id", "job_id", default="")),
        "kind": str(_get(info, "kind", default="")),
        "label": str(_get(info, "label", "title", "description", default="") or ""),
        "state": state,
        "fraction": fraction,
        "phase": str(_get(info, "phase", "message", default="") or ""),
        "metrics": dict(metrics) if isinstance(metrics, dict) else {},
        "error": _get(info, "error", default=None),
        "result": _get(info, "result", "result_key", "key", default=None),
        "created": _get(info, "created", "submitted", default=None),
        "spec_hash": _get(info, "spec_hash", "hash", "key", default=None),
    }


def is_active(row: dict) -> bool:
    return row["state"] in ACTIVE_STATES


def is_done(row: dict) -> bool:
    return row["state"] in DONE_STATES


def is_failed(row: dict) -> bool:
    return row["state"] in FAILED_STATES


def active_jobs() -> list[dict]:
    return [job_row(j) for j in jobs.list_jobs(state=list(ACTIVE_STATES), limit=None)]


def active_job_for(spec_hash: str) -> dict | None:
    """The queued or running job computing the spec with this hash, if any."""
    return active_jobs_by_hash().get(spec_hash)


def active_jobs_by_hash() -> dict[str, dict]:
    """Every queued or running job under its spec hash and its result key (one queue query, for
    pages that check many specs at once)."""
    out: dict[str, dict] = {}
    for row in active_jobs():
        for h in (row["spec_hash"], row["result"]):
            if h:
                out.setdefault(h, row)
    return out


def label_for(spec: Any) -> str:
    """A job's label as the queue will give it (its kind's ``describe``: what it computes and every
    parameter that is not its default), for a spec ``defaults.complete`` has filled in; pages show
    it before the queue has the job."""
    return kind_for_spec(spec).label_for(spec)


def submit(spec: Any) -> dict:
    row = job_row(jobs.submit(spec))
    invalidate()  # the next snapshot must show it: the sidebar and the page wait for it
    return row


def status(job_id: str) -> dict | None:
    try:
        return job_row(jobs.status(job_id))
    except NNGeoError:
        return None


def cancel(job_id: str) -> None:
    jobs.cancel(job_id)
    invalidate()


def list_jobs(limit: int = 20) -> list[dict]:
    """Active jobs first, then the most recent finished ones."""
    active = active_jobs()
    recent = [job_row(j) for j in jobs.list_jobs(limit=limit)]
    seen = {r["id"] for r in active}
    return (active + [r for r in recent if r["id"] not in seen])[: max(limit, len(active))]


def worker_status(rows: list[dict] | tuple[dict, ...] | None = None) -> dict:
    """{'alive': bool, 'text': one line} for the sidebar. ``rows``: ``list_jobs()`` just read (it
    holds every active job), so the queue is not listed again to count them."""
    if rows is None:
        info = jobs.worker_status()
    else:
        info = jobs.worker_status(count_jobs=False)
        info.update(
            running=sum(r["state"] == "running" for r in rows), queued=sum(r["state"] == "queued" for r in rows)
        )
    alive = bool(info.get("alive"))
    n = len(info.get("workers") or [])
    parts = [f"{n} worker{'s' if n != 1 else ''} alive" if alive else "no worker running"]
    if info.get("running"):
        parts.append(f"{info['running']} running")
    if info.get("queued"):
        parts.append(f"{info['queued']} queued")
    if not alive and not embedded_worker_wanted():
        parts.append("start one with `nngeo worker`")
    return {"alive": alive, "text": " · ".join(parts)}


def progress_text(row: dict) -> str:
    """'epoch 3/20 · loss 0.41 · acc 0.88' for a progress bar."""
    return job_progress.detail(row) or row["state"]


# -- one shared read of the job table ---------------------------------------------------------
# Every open tab polls the job table; the dashboard serves all its sessions (threads of this one
# process) from one read that is at most ``max_age`` seconds old, so ten tabs cost one query.
SNAPSHOT_RECENT = 30  # finished jobs kept in a snapshot besides every active one


@dataclass(frozen=True)
class JobsSnapshot:
    """The job table at ``read_at``: every active job first, then the most recent finished ones
    (``job_row`` dicts, shared by every session: treat them as read-only), and the worker line."""

    rows: tuple[dict, ...]
    worker: dict
    read_at: float
    by_id: dict[str, dict] = field(default_factory=dict, compare=False)

    def recent(self, limit: int) -> list[dict]:
        """What ``list_jobs(limit)`` returns: active jobs first, at least ``limit`` rows in all."""
        n_active = sum(is_active(r) for r in self.rows)
        return list(self.rows[: max(limit, n_active)])

    def active_by_hash(self) -> dict[str, dict]:
        out: dict[str, dict] = {}
        for row in self.rows:
            if is_active(row):
                for h in (row["spec_hash"], row["result"]):
                    if h:
                        out.setdefault(h, row)
        return out

    def latest_for(self, spec_hash: str) -> dict | None:
        """The most recent job (any state) of this spec hash among the snapshot's rows."""
        found = [r for r in self.rows if spec_hash in (r["spec_hash"], r["result"])]
        return max(found, key=lambda r: r["created"] or 0.0) if found else None


class _SnapshotCache:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.generation = 0  # bumped by invalidate(): older snapshots are read again
        self.entries: dict[str, tuple[JobsSnapshot, int]] = {}  # by queue setting (tests change it)
        self.finished = 0  # jobs seen leaving the active states, over all snapshots

    def get(self, queue: str, max_age: float) -> JobsSnapshot:
        # the read happens under the lock: concurrent tabs wait for the one read in flight instead
        # of repeating it, and an invalidate() (after a write) cannot slip between read and store
        with self.lock:
            old, generation = self.entries.get(queue, (None, -1))
            if old is not None and generation == self.generation and time.time() - old.read_at <= max_age:
                return old
            started = time.time()
            active = [job_row(j) for j in jobs.list_jobs(state=list(ACTIVE_STATES), limit=None)]
            seen = {r["id"] for r in active}
            recent = [job_row(j) for j in jobs.list_jobs(limit=SNAPSHOT_RECENT)]
            rows = tuple(active + [r for r in recent if r["id"] not in seen])
            fresh = JobsSnapshot(rows, worker_status(rows), started, {r["id"]: r for r in rows})
            if old is not None:
                self.finished += len({r["id"] for r in old.rows if is_active(r)} - seen)
            self.entries[queue] = (fresh, self.generation)
            return fresh

    def invalidate(self) -> None:
        with self.lock:
            self.generation += 1


_SNAPSHOTS = _SnapshotCache()


def snapshot(max_age: float | None = None) -> JobsSnapshot:
    """The shared read of the job table, at most ``max_age`` seconds old (default: half of
    ``settings.poll_s``, so a page polling every poll_s sees each change within about one poll)."""
    settings = get_settings()
    return _SNAPSHOTS.get(settings.queue, settings.poll_s / 2 if max_age is None else max_age)


def job(job_id: str) -> dict | None:
    """One job's row: from the shared snapshot when it holds it (every active job and the recent
    finished ones: ten tabs, one query), else from the queue itself."""
    return snapshot().by_id.get(job_id) or status(job_id)


def invalidate() -> None:
    """Drop the shared snapshot: this process just changed the job table (submit, cancel)."""
    _SNAPSHOTS.invalidate()


def finished_count() -> int:
    """How many jobs the snapshots have seen finish in this process: it grows whenever results
    may have been added to the store (a cache key for reads of a store that has no mtime)."""
    return _SNAPSHOTS.finished
