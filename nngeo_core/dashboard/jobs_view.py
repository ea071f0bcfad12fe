"""The job queue as the pages need it: one plain dict per job, whatever the backend returns.

The dashboard talks to ``nngeo_core.jobs`` only through this module, so a page never depends on
the exact attribute names of ``JobInfo``.
"""

from __future__ import annotations

from typing import Any

from .. import jobs
from ..errors import NNGeoError
from ..jobs import ACTIVE_STATES, CANCELLED, DONE, FAILED
from ..settings import get_settings

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


def submit(spec: Any) -> dict:
    return job_row(jobs.submit(spec))


def status(job_id: str) -> dict | None:
    try:
        return job_row(jobs.status(job_id))
    except NNGeoError:
        return None


def cancel(job_id: str) -> None:
    jobs.cancel(job_id)


def list_jobs(limit: int = 20) -> list[dict]:
    """Active jobs first, then the most recent finished ones."""
    active = active_jobs()
    recent = [job_row(j) for j in jobs.list_jobs(limit=limit)]
    seen = {r["id"] for r in active}
    return (active + [r for r in recent if r["id"] not in seen])[: max(limit, len(active))]


def worker_status(rows: list[dict] | None = None) -> dict:
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
    parts = [row["phase"]] if row["phase"] else []
    m = row["metrics"]
    for k, short in (("loss", "loss"), ("accuracy", "acc"), ("test_accuracy", "test acc"), ("sparsity", "sparsity")):
        v = m.get(k)
        if _number(v):
            parts.append(f"{short} {float(v):.3g}")
    return " · ".join(parts) or row["state"]


def _number(v: Any) -> bool:
    try:
        float(v)
        return v is not None and not isinstance(v, bool)
    except (TypeError, ValueError):
        return False
