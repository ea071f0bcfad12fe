"""A backend that runs jobs in this process, for unit tests and ``NNGEO_QUEUE=memory://``.

Jobs wait in a FIFO until ``run_pending()`` runs them in the calling thread (deterministic unit
tests), or, with ``background=True``, until a daemon thread picks them up. It uses the same job
table, claim and runner as the Huey worker; only the transport differs.
"""

from __future__ import annotations

import collections
import contextlib
import os
import threading

from .backend import JobBackend, JobInfo
from .runner import WorkerContext, execute_job
from .table import JobTable, Row, SqliteJobTable


class InProcessBackend(JobBackend):
    name = "inprocess"

    def __init__(self, *, table: JobTable | None = None, background: bool = False, device: str = "cpu"):
        super().__init__(table or SqliteJobTable(":memory:"))
        self._pending: collections.deque[str] = collections.deque()
        self._cond = threading.Condition()
        self.ctx = WorkerContext(worker_id=f"inprocess-{os.getpid()}-{id(self):x}", device=device, enqueue=self.enqueue)
        self._thread: threading.Thread | None = None
        if background:
            self._thread = threading.Thread(target=self._loop, name="nngeo-inprocess-worker", daemon=True)
            self._thread.start()

    def enqueue(self, job_id: str) -> None:
        with self._cond:
            self._pending.append(job_id)
            self._cond.notify()

    def revoke(self, job_id: str) -> None:
        with self._cond, contextlib.suppress(ValueError):
            self._pending.remove(job_id)

    def pending_ids(self) -> list[str]:
        with self._cond:
            return list(self._pending)

    def run_next(self) -> JobInfo | None:
        """Run the oldest pending job here; None when nothing is pending."""
        with self._cond:
            if not self._pending:
                return None
            job_id = self._pending.popleft()
        execute_job(self.table, job_id, self.ctx)
        return self.status(job_id)

    def run_pending(self, limit: int | None = None) -> list[JobInfo]:
        """Run pending jobs in this thread, oldest first (at most ``limit``); returns their infos."""
        done: list[JobInfo] = []
        while limit is None or len(done) < limit:
            info = self.run_next()
            if info is None:
                break
            done.append(info)
        return done

    def _loop(self) -> None:
        while not self.ctx.shutdown.is_set():
            with self._cond:
                while not self._pending and not self.ctx.shutdown.is_set():
                    self._cond.wait(0.5)
                if self.ctx.shutdown.is_set():
                    return
                job_id = self._pending.popleft()
            execute_job(self.table, job_id, self.ctx)

    def workers(self) -> list[Row]:
        if self._thread is None or not self._thread.is_alive():
            return []
        return [
            {
                "id": self.ctx.worker_id,
                "host": self.ctx.host,
                "pid": self.ctx.pid,
                "device": self.ctx.device,
                "state": "busy" if self.ctx.running else "idle",
                "job": next(iter(self.ctx.running), None),
            }
        ]

    def close(self) -> None:
        self.ctx.shutdown.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=30)
        super().close()
