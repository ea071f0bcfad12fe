"""Progress reporting and cooperative cancel, shared by training, analyses and sweeps.

Long work takes a ``Progress`` and calls ``progress.update(fraction, phase, **metrics)`` now and
then, and ``progress.check()`` at least once per epoch or chunk; ``check`` raises ``Cancelled``
when the job was cancelled, so the work stops and writes nothing. The default ``Progress()``
does nothing, so every function also runs plainly from Python or the CLI.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


class Cancelled(Exception):
    """Raised inside a job when its cancel flag is set."""


class Progress:
    def __init__(
        self,
        on_update: Callable[[float, str, dict], None] | None = None,
        is_cancelled: Callable[[], bool] | None = None,
        min_interval: float = 0.2,
    ):
        self._on_update = on_update
        self._is_cancelled = is_cancelled
        self._min_interval = min_interval
        self._last = 0.0
        self.fraction = 0.0
        self.phase = ""
        self.metrics: dict[str, Any] = {}

    def update(
        self, fraction: float | None = None, phase: str | None = None, force: bool = False, **metrics: Any
    ) -> None:
        if fraction is not None:
            self.fraction = max(0.0, min(1.0, float(fraction)))
        if phase is not None:
            self.phase = phase
        if metrics:
            self.metrics.update(metrics)
        now = time.monotonic()
        # throttle: reporting must not cost the loop more than a few percent
        if self._on_update is not None and (force or now - self._last >= self._min_interval):
            self._last = now
            self._on_update(self.fraction, self.phase, dict(self.metrics))

    def check(self) -> None:
        if self._is_cancelled is not None and self._is_cancelled():
            raise Cancelled("cancelled")

    def sub(self, start: float, end: float) -> Progress:
        """A child reporting into [start, end] of this one (for multi-phase jobs)."""
        parent = self

        def on_update(fraction, phase, metrics):
            parent.update(start + (end - start) * fraction, phase, **metrics)

        child = Progress(on_update, self._is_cancelled, min_interval=0.0)
        return child
