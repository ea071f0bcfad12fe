"""Chunks of points: how many points one pass may take within a memory budget, and the slices."""

from __future__ import annotations

from collections.abc import Iterator

# bytes of working memory one chunk of points may use (Jacobians and their forward passes)
CHUNK_BYTES = 2**28
# the jet path runs few, large elementwise passes: big chunks amortise per-op (thread) overhead
JET_CHUNK_BYTES = 2**27


def chunk_size_for(per_point_floats: int, budget_bytes: int = CHUNK_BYTES, cap: int = 8192) -> int:
    """Points per chunk when each point needs ``per_point_floats`` float64 values (at least 1)."""
    return int(max(1, min(cap, budget_bytes // max(1, 8 * per_point_floats))))


def iter_chunks(n: int, size: int) -> Iterator[slice]:
    """Slices of ``range(n)`` of ``size`` items (the last one shorter)."""
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))
