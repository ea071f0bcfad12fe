"""The Huey queue: ``SqliteHuey`` on one machine (a file next to NNGEO_HOME, no server) or
``RedisHuey`` when ``NNGEO_QUEUE=redis://host:port/db``, so consumers on several machines share
one queue. A queued job is one Huey task ``nngeo_job(job_id)`` whose Huey task id is the job id;
everything else about the job lives in the job table (``table.py``).

Huey delivers each task to one consumer (SQLite: delete-on-dequeue inside an exclusive
transaction; Redis: BRPOP). A task that runs anyway after a cancel, or a second delivery after a
re-queue, is harmless: the worker claims the job in the table first and skips it if it is not
``queued`` any more.
"""

from __future__ import annotations

import logging

from .backend import JobBackend
from .table import is_redis_url, job_table_for, sqlite_queue_path

HUEY_NAME = "nngeo"
TASK_NAME = "nngeo_job"

log = logging.getLogger(__name__)


def run_queued_job(job_id: str) -> None:
    """The Huey task: run one job in this consumer's worker context."""
    from .runner import execute_job
    from .worker import current_context

    backend, ctx = current_context()
    execute_job(backend.table, job_id, ctx)


def make_huey(queue: str):
    """A Huey instance for the queue setting, with the nngeo task registered; returns (huey, task)."""
    if is_redis_url(queue):
        from huey import RedisHuey

        # blocking BRPOP with a short timeout: jobs start at once, and shutdown stays quick
        huey = RedisHuey(HUEY_NAME, url=queue, results=False, blocking=True, read_timeout=1)
    else:
        from huey import SqliteHuey

        path = sqlite_queue_path(queue)
        path.parent.mkdir(parents=True, exist_ok=True)
        huey = SqliteHuey(HUEY_NAME, filename=str(path), results=False, timeout=30)
    task = huey.task(name=TASK_NAME)(run_queued_job)
    return huey, task


class HueyBackend(JobBackend):
    spawns_workers = True

    def __init__(self, queue: str):
        super().__init__(job_table_for(queue))
        self.queue = queue
        self.name = "redis" if is_redis_url(queue) else "sqlite"
        self.huey, self.task = make_huey(queue)

    def __repr__(self) -> str:
        return f"HueyBackend({self.queue!r})"

    def _enqueue(self, job_id: str) -> None:
        self.huey.enqueue(self.task.s(job_id, id=job_id))

    def _revoke(self, job_id: str) -> None:
        # revoke_once: the flag is consumed when the consumer skips the task, so none pile up
        self.huey.revoke_by_id(job_id, revoke_once=True)

    def pending_ids(self) -> set[str]:
        """Ids of jobs whose Huey task is waiting in the queue."""
        return {t.id for t in self.huey.pending()}

    def close(self) -> None:
        super().close()
        try:
            self.huey.storage.close()
        except Exception:
            pass
