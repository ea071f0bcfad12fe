"""The job backend interface (submit, status, progress, cancel, list, logs) and what every backend
shares: dedupe against the store and against active jobs, the job table, job info records.

A backend only has to say how a job id reaches a worker (``enqueue``) and how a queued delivery
is withdrawn (``revoke``); the job table is the single source of truth for job state.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import math
import os
import socket
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import NNGeoError, one_line
from ..settings import get_settings
from ..specs import to_dict
from .liveness import live_workers
from .registry import kind_for_spec
from .runner import stamp
from .table import ACTIVE_STATES, DONE, FAILED, FINAL_STATES, QUEUED, JobTable, Row

if TYPE_CHECKING:
    from ..store import Store

DAY_SECONDS = 86400.0


@dataclass
class JobInfo:
    """What the dashboard and the CLI show about one job."""

    id: str
    kind: str
    state: str  # queued | running | done | failed | cancelled
    progress: float = 0.0  # 0..1
    phase: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    started: float | None = None  # unix times
    ended: float | None = None
    device: str | None = None
    error: str | None = None  # one line, on failure
    cached: bool = False  # the result was already in the store; nothing ran
    existing: bool = False  # an identical job was already queued or running: this is it
    result: str | None = None  # store key of the result, once done
    submitted: float | None = None
    label: str = ""
    spec_hash: str = ""
    worker: str | None = None
    host: str | None = None
    pid: int | None = None
    attempts: int = 0
    cancel_requested: bool = False
    store: str | None = None

    @classmethod
    def from_row(cls, row: Row, cached: bool | None = None) -> JobInfo:
        try:
            metrics = json.loads(row.get("metrics") or "{}")
        except ValueError:
            metrics = {}
        return cls(
            id=row["id"],
            kind=row["kind"],
            state=row["state"],
            progress=float(row["progress"] or 0.0),
            phase=row["phase"] or "",
            metrics=metrics,
            started=row["started"],
            ended=row["ended"],
            device=row["device"],
            error=row["error"],
            cached=bool(row["cached"]) if cached is None else cached,
            result=row["result"],
            submitted=row["submitted"],
            label=row["label"] or "",
            spec_hash=row["spec_hash"],
            worker=row["worker"],
            host=row["host"],
            pid=row["pid"],
            attempts=int(row["attempts"] or 0),
            cancel_requested=bool(row["cancel_requested"]),
            store=row["store"],
        )

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def finished(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def elapsed(self) -> float | None:
        if self.started is None:
            return None
        return (self.ended or time.time()) - self.started

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def new_job_id() -> str:
    return uuid.uuid4().hex[:12]


class JobBackend(ABC):
    """Submit, follow and cancel jobs. Subclasses say how a job id reaches a worker."""

    name = "abstract"
    spawns_workers = False  # whether `ensure_worker` should start a worker process for it

    def __init__(self, table: JobTable):
        self.table = table

    # -- transport ---------------------------------------------------------------------------
    @abstractmethod
    def enqueue(self, job_id: str) -> None:
        """Hand a queued job to the workers."""

    def revoke(self, job_id: str) -> None:  # noqa: B027  (optional hook: the default withdraws nothing)
        """Withdraw a queued delivery (best effort: claiming checks the table anyway)."""

    # -- API ---------------------------------------------------------------------------------
    def submit(self, spec: Any, *, store: Store | None = None) -> JobInfo:
        """Queue ``spec``. Served from the store at once when its result exists (``cached=True``);
        an identical queued or running job is returned instead of a duplicate."""
        from ..store import Store  # lazy: 1.3 s (pandas, fsspec); `nngeo --help` imports this module

        kind = kind_for_spec(spec)
        store = store if store is not None else Store(get_settings().store)
        spec = kind.prepare(spec, store)
        root = store.path if store.local else store.root
        key, spec_hash = kind.key_for(spec), spec.hash
        now = time.time()
        base = dict(
            kind=kind.name,
            spec_hash=spec_hash,
            spec=json.dumps(to_dict(spec), sort_keys=True),
            store=root,
            label=kind.label_for(spec)[:200],
            submitted=now,
        )
        if store.exists(key):
            last = self.table.latest(spec_hash, root)
            if last is not None and last["state"] == DONE and last["result"] == key:
                return JobInfo.from_row(last, cached=True)
            row, _ = self.table.create(
                dict(
                    base,
                    id=new_job_id(),
                    state=DONE,
                    cached=1,
                    result=key,
                    started=now,
                    ended=now,
                    progress=1.0,
                    phase="done (found in store)",
                )
            )
            return JobInfo.from_row(row, cached=True)
        row, created = self.table.create(dict(base, id=new_job_id(), state=QUEUED, phase="queued"))
        if created:
            self.table.append_logs(
                row["id"],
                [f"{stamp(now)} queued by {socket.gethostname()}:{os.getpid()} ({row['label']}, spec {spec_hash})"],
            )
            try:
                self.enqueue(row["id"])
            except Exception as exc:
                error = f"could not queue the job ({self.name} queue): {one_line(exc)}"
                self.table.transition(
                    row["id"], [QUEUED], {"state": FAILED, "ended": time.time(), "error": error, "phase": "failed"}
                )
                raise NNGeoError(error) from None
        info = JobInfo.from_row(row, cached=False)
        info.existing = not created
        return info

    def status(self, job_id: str) -> JobInfo:
        return JobInfo.from_row(self.table.get_existing(self.table.resolve(job_id)))

    def progress(self, job_id: str) -> tuple[float, str, dict[str, Any]]:
        """(fraction done, phase, last metrics): the cheap poll for progress bars."""
        info = self.status(job_id)
        return info.progress, info.phase, info.metrics

    def cancel(self, job_id: str) -> JobInfo:
        """Cancel a job: a queued one at once, a running one at its next progress check (within
        seconds). Cancelling a finished job changes nothing."""
        job_id = self.table.resolve(job_id)
        self.table.request_cancel(job_id)
        info = self.status(job_id)
        if info.state == "cancelled" and info.started is None:
            with contextlib.suppress(Exception):  # the claim refuses a cancelled job anyway
                self.revoke(job_id)
        return info

    def list(
        self, state: str | builtins.list[str] | None = None, kind: str | None = None, limit: int | None = 50
    ) -> builtins.list[JobInfo]:
        states = [state] if isinstance(state, str) else state
        return [JobInfo.from_row(r) for r in self.table.list(states, kind, limit)]

    def logs(self, job_id: str, start: int = 0) -> builtins.list[str]:
        return self.table.logs(self.table.resolve(job_id), start)

    def clean(self, older_than_days: float) -> int:
        """Delete finished (done, failed, cancelled) jobs older than ``older_than_days`` days, by
        when they ended, with their logs; queued and running jobs are never touched. Returns how
        many were deleted."""
        days = float(older_than_days)
        if not math.isfinite(days) or days < 0:
            raise NNGeoError(f"the age of jobs to delete must be 0 or more days, got {older_than_days!r}")
        return self.table.delete_finished(time.time() - days * DAY_SECONDS)

    def workers(self) -> builtins.list[Row]:
        """Live workers of this queue (recent heartbeat, process alive)."""
        return live_workers(self.table)

    def wait(
        self,
        job_id: str,
        timeout: float | None = None,
        poll: float = 0.2,
        on_update: Callable[[JobInfo], None] | None = None,
    ) -> JobInfo:
        """Block until the job has finished (or ``timeout`` seconds passed); returns its info."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            info = self.status(job_id)
            if on_update is not None:
                on_update(info)
            if info.finished or (deadline is not None and time.monotonic() >= deadline):
                return info
            time.sleep(poll)

    def close(self) -> None:
        self.table.close()
