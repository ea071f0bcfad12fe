"""Pruning strategies: ``STRATEGIES`` (the registry), ``prune`` (the one entry point) and what a
strategy receives and returns (``base``). Each strategy lives in its own module; ``registry``
imports them all."""

from __future__ import annotations

from .apply import prune
from .base import (
    PruneData,
    PruneResult,
    PruneSettings,
    Strategy,
    register_strategy,
    select_masks,
)
from .registry import STRATEGIES, get_strategy, reset_caches, resolve_params

__all__ = [
    "STRATEGIES",
    "Strategy",
    "PruneData",
    "PruneResult",
    "PruneSettings",
    "register_strategy",
    "get_strategy",
    "resolve_params",
    "prune",
    "select_masks",
    "reset_caches",
]
