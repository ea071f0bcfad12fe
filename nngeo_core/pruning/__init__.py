"""The pruning lab: strategies (``STRATEGIES``), masks, sweeps and comparisons.

``prune(model, strategy, sparsity, ...)`` prunes one model and returns masks (and new weights for
strategies that change them); ``run_sweep(SweepSpec)`` prunes a trained run at several sparsities
and seeds and stores the table (job kind "prune-sweep"); ``compare(keys)`` aggregates sweeps over
seeds. Importing this package registers the "prune-sweep" job kind.
"""
from __future__ import annotations

from .compare import Comparison, compare, pareto_frontier
from .masks import (apply_masks, export_state_dict, fold_masks, layer_sparsity, plain_copy, pruned_model,
                    read_masks, select_layers, sparsity)
from .specs import SweepSpec, compression_levels, compression_to_sparsity, sparsity_to_compression
from .strategies import (STRATEGIES, PruneData, PruneResult, PruneSettings, Strategy, get_strategy, prune,
                         register_strategy, resolve_params, select_masks)
from .sweep import dense_run_spec, run_sweep
from . import jobs as _jobs

_jobs.register()

__all__ = ["STRATEGIES", "Strategy", "PruneData", "PruneResult", "PruneSettings", "prune", "register_strategy",
           "get_strategy", "resolve_params", "select_masks", "apply_masks", "fold_masks", "plain_copy",
           "pruned_model", "read_masks", "select_layers", "sparsity", "layer_sparsity", "export_state_dict",
           "SweepSpec", "run_sweep", "dense_run_spec", "compression_levels", "compression_to_sparsity",
           "sparsity_to_compression", "compare", "Comparison", "pareto_frontier"]
