"""Torch's intra-op threads for the worker's consumers: each consumer gets its share of the cores.

``for_consumers(n)`` is ``NNGEO_WORKER_THREADS`` when set, else the cores this process may run on
(its CPU affinity: a container or ``taskset`` limit, not the machine's count) divided by the ``n``
consumers sharing them, at least 1. Without it every consumer would start one thread per machine
core, and several consumers on one machine would oversubscribe the cores many times over.
"""

from __future__ import annotations

import os

from .settings import get_settings


def usable_cores() -> int:
    """Cores this process may run on: its CPU affinity where the OS has one, else the CPU count."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # no sched_getaffinity (macOS, Windows)
        return max(1, os.cpu_count() or 1)


def for_consumers(consumers: int, setting: int | None = None, cores: int | None = None) -> int:
    """Threads per consumer: ``setting`` when given, else ``cores // consumers`` (at least 1)."""
    if setting is not None:
        return max(1, int(setting))
    cores = usable_cores() if cores is None else cores
    return max(1, cores // max(1, int(consumers)))


def set_for_consumers(consumers: int = 1) -> int:
    """Set torch's intra-op thread count for ``consumers`` consumers of this machine's cores
    (``NNGEO_WORKER_THREADS`` wins); returns the number set. Torch's count is per process."""
    n = for_consumers(consumers, get_settings().worker_threads)
    import torch  # lazy: ~2 s; the worker beats its first heartbeat before paying for torch

    torch.set_num_threads(n)
    return n


def current() -> int:
    """Torch's intra-op thread count in this process now."""
    import torch  # lazy: ~2 s, as above

    return torch.get_num_threads()
