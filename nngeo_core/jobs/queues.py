"""The backend for a queue setting, one per process and queue: ``memory://`` runs jobs in this
process (``InProcessBackend``), anything else is a Huey queue (``HueyBackend``: SQLite or Redis).
"""

from __future__ import annotations

import os
import threading

from ..settings import get_settings
from .backend import JobBackend
from .huey_backend import HueyBackend
from .inprocess import InProcessBackend

_BACKENDS: dict[tuple[int, str], JobBackend] = {}
_LOCK = threading.Lock()


def get_backend(queue: str | None = None) -> JobBackend:
    """The backend for ``queue`` (default: the ``NNGEO_QUEUE`` setting), one per process and queue."""
    queue = queue or get_settings().queue
    key = (os.getpid(), queue)
    with _LOCK:
        backend = _BACKENDS.get(key)
        if backend is None:
            backend = InProcessBackend(background=True) if queue.startswith("memory://") else HueyBackend(queue)
            _BACKENDS[key] = backend
        return backend
