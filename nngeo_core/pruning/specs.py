"""The spec of a pruning sweep: one dense model, one strategy, its settings, a list of sparsities
and a list of seeds. Its hash names the stored result, so the same request is computed once.
Budgets (dense training, fine-tuning) are fields of the spec shared by every strategy.

The dense model is either trained from ``run`` (one run per seed, found again by its hash) or,
with ``source`` set, a stored model (a trained run or an upload) pruned as it is: then ``run``
only says which data evaluates, calibrates and fine-tunes it and with which training settings,
and the seeds vary only what is random (the strategy's draws, the fine-tuning data order).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import NNGeoError
from ..specs import RunSpec, SpecBase, param_defaults_field, register_spec
from .masks import check_scope, check_sparsity_value

ANALYSES = ("persistence", "eta_floor", "mst_overlap")


def compression_levels(n: int = 6, *, base: float = 2.0, start: float = 2.0) -> tuple[float, ...]:
    """Sparsities for ``n`` compression ratios on a log scale: start, start·base, start·base², ...

    Compression c (dense weights / kept weights) is sparsity 1 − 1/c; ShrinkBench recommends
    reporting levels evenly spaced in log compression (e.g. 2, 4, 8, ... or 10^x with base=10**0.5).
    """
    if n < 1 or start < 1 or base <= 1 or not (math.isfinite(base) and math.isfinite(start)):
        raise NNGeoError("compression levels need n >= 1, start >= 1 and base > 1")
    return tuple(1.0 - 1.0 / (start * base**i) for i in range(int(n)))


def compression_to_sparsity(c: float) -> float:
    if not (math.isfinite(c) and c >= 1):
        raise NNGeoError(f"a compression ratio must be a number >= 1, got {c!r}")
    return 1.0 - 1.0 / c


def sparsity_to_compression(s: float) -> float:
    return 1.0 / (1.0 - check_sparsity_value(s))


# strategies whose label names them when they do not rewind (their ``rewind_epoch`` is None)
REWINDING = {"imp": "IMP", "timp": "T-IMP"}


def strategy_label(strategy: str, params: Mapping[str, Any]) -> str:
    """The strategy as legends and job lists name it: "IMP without rewinding" when IMP (or T-IMP)
    keeps training from the weights it pruned instead of rewinding to an early epoch."""
    if strategy in REWINDING and "rewind_epoch" in params and params["rewind_epoch"] is None:
        return f"{REWINDING[strategy]} without rewinding"
    return strategy


@register_spec
@dataclass(frozen=True, eq=True)
class SweepSpec(SpecBase):
    """Prune the trained ``run`` (one per seed; the run's own seed is replaced by each of ``seeds``)
    or, with ``source`` set, that stored model as it is (``run`` then gives its data and training
    settings), with ``strategy`` at each of ``sparsities``, fine-tune for ``finetune_epochs`` (0 =
    post-training comparison), evaluate, and optionally compute ``analyses`` (persistence,
    eta_floor, mst_overlap). ``layers`` prunes only those layers (empty: all)."""

    run: RunSpec = field(default_factory=RunSpec)
    strategy: str = "magnitude"
    params: Mapping[str, Any] = field(default_factory=dict)
    param_defaults: Mapping[str, Any] = param_defaults_field()
    sparsities: tuple = (0.5, 0.75, 0.875, 0.9375, 0.96875, 0.984375)
    seeds: tuple = (0,)
    finetune_epochs: int = 0
    scope: str = "global"
    exclude_last: bool = False
    finetune_lr: float | None = None  # None: the run's learning rate
    analyses: tuple = ()
    # a stored model's key (train or upload) pruned as it is; None: train ``run`` per seed. Left
    # out of the hash when None, so sweeps stored before this field keep their keys
    source: str | None = None
    # the layers pruned (their sparsity is of these layers' weights; the others stay dense); empty:
    # every layer. One layer is the neural-curvature paper's one-layer-at-a-time ablation. Empty
    # is the default, so sweeps stored before this field keep their keys
    layers: tuple = ()
    kind: str = "prune-sweep"

    def __post_init__(self):
        super().__post_init__()
        # canonical form: the same request always hashes the same (levels/seeds sorted, the run's
        # seed fixed since each seed replaces it, the strategy's defaults filled in)
        object.__setattr__(self, "sparsities", tuple(sorted({float(s) for s in self.sparsities})))
        object.__setattr__(self, "seeds", tuple(sorted({int(s) for s in self.seeds})))
        object.__setattr__(self, "analyses", tuple(sorted(set(self.analyses))))
        layers = (self.layers,) if isinstance(self.layers, str) else tuple(self.layers)
        object.__setattr__(self, "layers", tuple(sorted({str(n).strip() for n in layers} - {""})))
        if self.run.train.seed != 0:
            object.__setattr__(self, "run", self.run.replace(train=self.run.train.replace(seed=0)))
        try:
            # lazy: strategies import torch; a SweepSpec rebuilt for a job listing must not
            from .strategies import STRATEGIES, resolve_params

            params = self.params
            strategy = STRATEGIES.find(self.strategy)
            if strategy is not None and isinstance(params, dict):  # SpecBase froze it into a dict subclass
                object.__setattr__(self, "params", type(params)(resolve_params(strategy, params)))
                object.__setattr__(self, "param_defaults", type(params)(strategy.defaults))
        except NNGeoError:
            pass  # unknown parameters are reported by validate(), when the sweep runs

    def validate(self) -> SweepSpec:
        # lazy: the strategies add ~1.3 s (measured: gudhi, networkx, scipy) on top of this module
        from .strategies import get_strategy, resolve_params

        entry = get_strategy(self.strategy)
        resolve_params(self.strategy, self.params)
        if (self.layers or self.exclude_last) and not entry.any_layers:  # told before anything is queued
            raise NNGeoError(
                f"the {entry.name} strategy always prunes every dense/conv layer; "
                "drop the layer selection (layers, exclude_last)"
            )
        if not self.sparsities:
            raise NNGeoError("a sweep needs at least one sparsity")
        for s in self.sparsities:
            check_sparsity_value(s)
        if not self.seeds:
            raise NNGeoError("a sweep needs at least one seed")
        if (
            isinstance(self.finetune_epochs, bool)
            or int(self.finetune_epochs) != self.finetune_epochs
            or self.finetune_epochs < 0
        ):
            raise NNGeoError(f"finetune_epochs must be a whole number >= 0, got {self.finetune_epochs!r}")
        check_scope(self.scope)
        unknown = [a for a in self.analyses if a not in ANALYSES]
        if unknown:
            raise NNGeoError(f"unknown sweep analysis {unknown[0]!r}; choose from {', '.join(ANALYSES)}")
        if self.source is not None and not (isinstance(self.source, str) and self.source.strip()):
            raise NNGeoError(f"a sweep's source must be a stored model's key, got {self.source!r}")
        if self.finetune_lr is not None and not (self.finetune_lr > 0 and math.isfinite(self.finetune_lr)):
            raise NNGeoError("finetune_lr must be a positive number")
        return self
