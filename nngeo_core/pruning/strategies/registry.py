"""The registry of pruning strategies: it imports every implementation, so imports run one way
(registry → strategy modules → base). ``STRATEGIES`` lists them in the order users see."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...params import resolve
from ...registry import Registry
from . import curvature, geodesic, grasp, imp, magnitude, random, snip, synflow, timp, wanda
from .base import CACHE_CLEARERS, Strategy

STRATEGIES: Registry[Strategy] = Registry("pruning strategy")
for _strategy in (
    random.random_pruning,
    magnitude.magnitude,
    imp.imp,
    timp.timp,
    curvature.curvature,
    curvature.curvature_neg,
    snip.snip,
    grasp.grasp,
    synflow.synflow,
    wanda.wanda,
    geodesic.geodesic,
):
    STRATEGIES.add(_strategy.name, _strategy)


def get_strategy(name: str) -> Strategy:
    return STRATEGIES.get(name)


def resolve_params(strategy: str | Strategy, params: Mapping[str, Any] | None) -> dict[str, Any]:
    """The strategy's defaults updated by ``params``; unknown names and ill-typed values are refused."""
    entry = strategy if isinstance(strategy, Strategy) else get_strategy(strategy)
    return resolve(f"the {entry.name} strategy", entry.params, params)


def reset_caches() -> None:
    """Forget every strategy's memoised scores (tests of determinism call this between runs)."""
    for clear in CACHE_CLEARERS:
        clear()
