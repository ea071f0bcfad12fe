"""The pruning lab: strategies (``STRATEGIES``), masks, sweeps and comparisons.

``prune(model, strategy, sparsity, ...)`` prunes one model and returns masks (and new weights for
strategies that change them); ``run_sweep(SweepSpec)`` prunes a trained run at several sparsities
and seeds and stores the table (job kind "prune-sweep"); ``compare(keys)`` aggregates sweeps over
seeds.

The names below load their modules on first use, so ``nngeo --help`` starts without torch. The
"prune-sweep" job kind is registered by ``nngeo_core.pruning.jobs``, which the job registry
imports on demand.
"""

from __future__ import annotations

import importlib

# public name -> submodule that defines it
_EXPORTS = {
    "comparison": ("Comparison", "compare", "pareto_frontier"),
    "masks": (
        "apply_masks",
        "export_state_dict",
        "fold_masks",
        "layer_sparsity",
        "plain_copy",
        "pruned_model",
        "read_masks",
        "select_layers",
        "sparsity",
    ),
    "specs": ("SweepSpec", "compression_levels", "compression_to_sparsity", "sparsity_to_compression"),
    "strategies": (
        "STRATEGIES",
        "PruneData",
        "PruneResult",
        "PruneSettings",
        "Strategy",
        "get_strategy",
        "prune",
        "register_strategy",
        "resolve_params",
        "select_masks",
    ),
    "sweep": ("dense_run_spec", "run_sweep"),
}
_WHERE = {name: mod for mod, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    mod = _WHERE.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{mod}"), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
