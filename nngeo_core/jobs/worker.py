"""One worker process for one device: a Huey consumer of the queue that runs jobs in threads,
beats its heartbeat (``liveness.Heartbeat``) and recovers the jobs of dead workers when it starts
and every few heartbeats. Stopping it (SIGTERM, SIGINT, SIGHUP, or its parent dying with
``--parent-pid``) asks running jobs to stop at their next progress check and re-queues them; jobs
that do not stop within ``SHUTDOWN_WAIT_SECONDS`` are failed.

`nngeo worker` itself (one consumer per GPU) is ``supervisor.run_worker_command``.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from huey.consumer import Consumer

from .. import threads
from ..settings import get_settings
from .huey_backend import HueyBackend
from .liveness import SHUTDOWN_WAIT_SECONDS, Heartbeat, recover_dead_jobs, requeue_orphans
from .registry import job_kinds
from .runner import WorkerContext, detect_device, new_worker_id, stamp
from .table import FAILED, RUNNING, redact

# SQLite has no blocking pop: poll quickly, back off to at most this when idle
SQLITE_POLL = dict(initial_delay=0.05, backoff=1.2, max_delay=0.5)

log = logging.getLogger(__name__)


class StoppingConsumer(Consumer):
    """Huey's consumer, but every stop signal first asks running jobs to stop cooperatively (they
    are re-queued), then waits up to ``shutdown_timeout`` for them."""

    def __init__(self, huey: Any, on_stop: Callable[[], None], **options: Any):
        super().__init__(huey, **options)
        self._on_stop = on_stop

    def start(self) -> None:
        super().start()
        if hasattr(signal, "SIGHUP"):  # a closed terminal stops the worker instead of re-executing it
            signal.signal(signal.SIGHUP, _sighup_to_sigterm)

    def stop(self, graceful: bool = False) -> None:
        self._on_stop()
        super().stop(graceful=True)


def _sighup_to_sigterm(signum: int, frame: FrameType | None) -> None:
    os.kill(os.getpid(), signal.SIGTERM)


class Worker:
    """One consumer process: `nngeo worker` for one device."""

    def __init__(
        self, queue: str | None = None, *, workers: int = 1, requeue_dead: bool = False, parent_pid: int | None = None
    ):
        self.settings = get_settings()
        self.backend = HueyBackend(queue or self.settings.queue)
        self.table = self.backend.table
        self.workers = max(1, int(workers))
        self.requeue_dead = requeue_dead
        self.id = new_worker_id()
        self.threads = 0  # torch intra-op threads, set in run()
        self.ctx = WorkerContext(worker_id=self.id, device="starting", enqueue=self.backend.enqueue)
        self.heartbeat = Heartbeat(
            self.table, self.ctx, queue=self.backend.queue, recover=self.recover, parent_pid=parent_pid
        )

    @property
    def started(self) -> float:
        return self.heartbeat.started

    def beat(self, state: str | None = None) -> None:
        self.heartbeat.beat(state)

    def recover(self) -> None:
        for job_id, state in recover_dead_jobs(
            self.table, me=self.id, requeue=self.requeue_dead, enqueue=self.backend.enqueue
        ):
            log.warning("job %s of a dead worker -> %s", job_id, state)
        for job_id in requeue_orphans(self.backend):
            log.warning("job %s was queued without a queue entry; handed to the queue again", job_id)

    def _request_stop(self) -> None:
        if not self.ctx.shutdown.is_set():
            log.info("stopping: running jobs stop at their next progress check and are re-queued")
        self.ctx.shutdown.set()

    def run(self) -> int:
        self.beat("starting")  # before torch is imported, so `ensure_worker` sees us at once
        self.ctx.device = detect_device()
        # Huey's consumers here are threads of this one process and torch's thread count is
        # process-wide: set once, to this process's cores // its consumers (a multi-GPU
        # `nngeo worker` hands each child process its share through NNGEO_WORKER_THREADS)
        self.threads = threads.set_for_consumers(self.workers)
        kinds = job_kinds()  # import plugin kinds now: a broken one shows at start, not in a job
        self.backend.context = self.ctx
        self.recover()
        self.beat("idle")
        self.heartbeat.start()
        options: dict[str, Any] = dict(
            workers=self.workers,
            worker_type="thread",
            periodic=False,
            shutdown_timeout=SHUTDOWN_WAIT_SECONDS,
            check_worker_health=True,
        )
        if self.backend.name == "sqlite":
            options.update(SQLITE_POLL)
        consumer = StoppingConsumer(self.backend.huey, self._request_stop, **options)
        log.info(
            "worker %s ready: queue %s (%s), store %s, device %s, torch threads %d, kinds %s",
            self.id,
            redact(self.backend.queue),
            self.backend.name,
            self.settings.store,
            self.ctx.device,
            self.threads,
            ", ".join(kinds),
        )
        try:
            consumer.run()
        finally:
            self._request_stop()
            self.heartbeat.stop()
            self._abandon_running()
            try:
                self.table.remove_worker(self.id)
            except Exception:
                log.exception("could not remove the worker row")
            log.info("worker %s stopped", self.id)
        return 0

    def _abandon_running(self) -> None:
        """Jobs that did not stop within the shutdown wait: fail them (their thread dies with us)."""
        for job_id in sorted(self.ctx.running):
            if self.table.transition(
                job_id,
                [RUNNING],
                {
                    "state": FAILED,
                    "ended": time.time(),
                    "phase": "failed",
                    "error": "worker stopped while running "
                    f"(the job did not stop within {SHUTDOWN_WAIT_SECONDS:.0f} s)",
                },
                worker=self.id,
            ):
                self.table.append_logs(job_id, [f"{stamp()} worker {self.id} stopped; job failed"])
