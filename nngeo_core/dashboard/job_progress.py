"""What a page shows of one job while it runs, from its ``jobs_view.job_row`` dict: the bar's
fraction, its one-line text, and how often the dashboard should poll. Plain functions of rows
(no Streamlit), so the pages, the sidebar and the tests read the same definitions.

    fraction(row)           0 while queued, the job's own fraction while running, 1 once done
    status_text(row, rows)  "queued (2 ahead)", "running · layer fc2 · 42%", "failed: <one line>"
    poll_interval(...)      settings.poll_s while a job shown (or watched) is active, else idle_poll_s
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import one_line
from ..jobs.table import CANCELLED, DONE, FAILED, QUEUED, RUNNING

# session keys shared by app.py's sidebar and widgets' helpers (both Streamlit; this module is not)
SIDEBAR_POLL = "nngeo_sidebar_poll_s"  # the run_every the sidebar's fragment was registered with
WATCHED = "nngeo_watched_jobs"  # job ids this session waits for (seen active, or submitted here)

# metrics worth a word on a progress bar, with their short names
SHORT_METRICS = (("loss", "loss"), ("accuracy", "acc"), ("test_accuracy", "test acc"), ("sparsity", "sparsity"))


def fraction(row: Mapping[str, Any]) -> float:
    """The bar's fill in [0, 1]: a queued job has done nothing, a done one everything; otherwise
    (running, failed, cancelled) what the job last reported."""
    if row["state"] == QUEUED:
        return 0.0
    if row["state"] == DONE:
        return 1.0
    return max(0.0, min(1.0, float(row.get("fraction") or 0.0)))


def queue_ahead(row: Mapping[str, Any], rows: Iterable[Mapping[str, Any]]) -> int | None:
    """How many queued jobs of ``rows`` were submitted before this queued one (workers take the
    oldest first); None when the row is not queued or its submission time is unknown. ``rows``
    must hold every active job (``jobs_view.list_jobs`` and the snapshot do)."""
    mine = row.get("created")
    if row["state"] != QUEUED or mine is None:
        return None
    return sum(
        1
        for r in rows
        if r["state"] == QUEUED and r["id"] != row["id"] and r.get("created") is not None and r["created"] < mine
    )


def detail(row: Mapping[str, Any]) -> str:
    """The job's phase and its headline metrics: 'epoch 3/20 · loss 0.41 · acc 0.88' ('' if none)."""
    parts = [str(row["phase"])] if row.get("phase") else []
    metrics = row.get("metrics") or {}
    for name, short in SHORT_METRICS:
        value = _number(metrics.get(name))
        if value is not None:
            parts.append(f"{short} {value:.3g}")
    return " · ".join(parts)


def status_text(row: Mapping[str, Any], rows: Iterable[Mapping[str, Any]] | None = None) -> str:
    """One line for an inline progress bar. Queued: 'queued (2 ahead)' when ``rows`` tell the queue
    ('queued (next)' when none is ahead); running: 'running · <phase, metrics> · 42%'; failed:
    'failed: <the error's first line>'; else the state."""
    state = row["state"]
    if state == QUEUED:
        ahead = queue_ahead(row, rows) if rows is not None else None
        return "queued" if ahead is None else "queued (next)" if ahead == 0 else f"queued ({ahead} ahead)"
    if state == RUNNING:
        what = detail(row)
        return " · ".join(p for p in ("running", what, f"{100 * fraction(row):.0f}%") if p)
    if state == FAILED:
        return f"failed: {failure(row)}"
    if state == CANCELLED:
        return "cancelled"
    return str(state)


def failure(row: Mapping[str, Any]) -> str:
    """A failed job's error as one line (its first line, shortened), or 'unknown error'."""
    return one_line(str(row.get("error") or "unknown error"), typed=False)


def is_active(row: Mapping[str, Any]) -> bool:
    return row["state"] in (QUEUED, RUNNING)


def poll_interval(
    rows: Iterable[Mapping[str, Any]], watched: Iterable[str], *, poll_s: float, idle_poll_s: float
) -> float:
    """Seconds between the sidebar's reads: ``poll_s`` while any job it shows is active or this
    session waits for one (``watched``: ids it submitted or saw active), else ``idle_poll_s``."""
    if any(is_active(r) for r in rows) or any(True for _ in watched):
        return poll_s
    return idle_poll_s


def _number(v: Any) -> float | None:
    """``v`` as a float when it is a number (not a bool), else None."""
    if v is None or isinstance(v, bool):
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return None
