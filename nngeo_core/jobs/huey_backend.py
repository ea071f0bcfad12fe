"""The Huey queue: ``SqliteHuey`` on one machine (a file next to NNGEO_HOME, no server) or
``RedisHuey`` when ``NNGEO_QUEUE=redis://host:port/db``, so consumers on several machines share
one queue. A queued job is one Huey task ``nngeo_job(job_id)`` whose Huey task id is the job id;
everything else about the job lives in the job table (``table/``).

Huey delivers each task to one consumer (SQLite: delete-on-dequeue inside an exclusive
transaction; Redis: BRPOP). A task that runs anyway after a cancel, or a second delivery after a
re-queue, is harmless: the worker claims the job in the table first and skips it if it is not
``queued`` any more.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .backend import JobBackend
from .runner import WorkerContext, detect_device, execute_job, new_worker_id
from .table import is_redis_url, job_table_for, sqlite_queue_path

if TYPE_CHECKING:
    from huey import Huey

HUEY_NAME = "nngeo"
TASK_NAME = "nngeo_job"

log = logging.getLogger(__name__)


def make_huey(queue: str, run: Callable[[str], None]) -> tuple[Huey, Any]:
    """A Huey instance for the queue setting with ``run(job_id)`` registered as the nngeo task;
    returns (huey, task)."""
    # lazy: huey takes 0.35 s to import, and `nngeo --help` imports this module
    from huey import RedisHuey, SqliteHuey

    huey: Huey
    if is_redis_url(queue):
        # blocking BRPOP with a short timeout: jobs start at once, and shutdown stays quick
        huey = RedisHuey(HUEY_NAME, url=queue, results=False, blocking=True, read_timeout=1)
    else:
        path = sqlite_queue_path(queue)
        path.parent.mkdir(parents=True, exist_ok=True)
        huey = SqliteHuey(HUEY_NAME, filename=str(path), results=False, timeout=30)
    task = huey.task(name=TASK_NAME)(run)
    return huey, task


class HueyBackend(JobBackend):
    spawns_workers = True

    def __init__(self, queue: str):
        super().__init__(job_table_for(queue))
        self.queue = queue
        self.name = "redis" if is_redis_url(queue) else "sqlite"
        # who runs this queue's jobs in this process: the `nngeo worker` sets it; a consumer
        # started some other way (e.g. huey_consumer) gets one on its first job
        self.context: WorkerContext | None = None

        def run_queued_job(job_id: str) -> None:
            """The Huey task: run one job in this consumer's worker context."""
            execute_job(self.table, job_id, self.worker_context())

        self.huey, self.task = make_huey(queue, run_queued_job)

    def __repr__(self) -> str:
        return f"HueyBackend({self.queue!r})"

    def worker_context(self) -> WorkerContext:
        if self.context is None:
            self.context = WorkerContext(worker_id=new_worker_id(), device=detect_device(), enqueue=self.enqueue)
        return self.context

    def enqueue(self, job_id: str) -> None:
        self.huey.enqueue(self.task.s(job_id, id=job_id))

    def revoke(self, job_id: str) -> None:
        # revoke_once: the flag is consumed when the consumer skips the task, so none pile up
        self.huey.revoke_by_id(job_id, revoke_once=True)

    def pending_ids(self) -> set[str]:
        """Ids of jobs whose Huey task is waiting in the queue."""
        return {t.id for t in self.huey.pending()}

    def close(self) -> None:
        super().close()
        with contextlib.suppress(Exception):
            self.huey.storage.close()
