"""The registry of analyses (``ANALYSES``): every ``Analysis`` declared in the capabilities'
modules, in the order they are defined there. See ``analysis_base`` for what an analysis is.

The ``analyse`` job kind loads a run's checkpoint, calls the function and stores the table under
the hash of its ``AnalysisSpec``.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from .analysis_base import Analysis, register_analysis
from .registry import Registry

# the modules whose Analysis objects are the built-in analyses; imported on first lookup, since
# they pull in torch, gudhi and POT, which `nngeo --help` and the listing commands must not pay for
ANALYSIS_MODULES = ("nngeo_core.topology.analyses", "nngeo_core.curvature.analyses", "nngeo_core.geometry.analyses")


def _load_builtin(registry: Registry[Analysis]) -> None:
    for name in ANALYSIS_MODULES:
        module = importlib.import_module(name)
        for value in vars(module).values():
            if isinstance(value, Analysis) and registry.find(value.name) is None:
                registry.add(value.name, value)


ANALYSES: Registry[Analysis] = Registry("analysis", loader=_load_builtin)

__all__ = [
    "ANALYSES",
    "Analysis",
    "analysis_attrs",
    "get_analysis",
    "normalize_params",
    "register_analysis",
    "analysis_info",
]


def get_analysis(name: str) -> Analysis:
    return ANALYSES.get(name)


def analysis_info() -> dict[str, dict[str, Any]]:
    """name -> needs_data, needs_store, description, for listings."""
    return {name: a.info() for name, a in ANALYSES.items()}


def normalize_params(name: str, run: str, params: Mapping[str, Any], store: Any) -> dict[str, Any]:
    """The analysis's canonical params for ``run``: checked against its declaration with the
    defaults filled in, then its own ``normalize`` (if it declares one)."""
    entry = get_analysis(name)
    full = entry.resolve(params) if entry.params else dict(params)
    return full if entry.normalize is None else entry.normalize(run, full, store)


def analysis_attrs(spec: Any, store: Any) -> dict[str, Any]:
    """The catalog attributes an analysis result (an ``AnalysisSpec``'s table) is stored with: its
    run's model, data, seed, strategy and sparsity, a label, the epoch and the params."""
    entry = store.entry(spec.run)
    where = f" at epoch {spec.epoch}" if spec.epoch is not None else ""
    attrs = dict(
        model=entry["model"],
        data=entry["data"],
        method=spec.method,
        run=entry["key"],
        seed=entry["seed"],
        strategy=entry["strategy"],
        sparsity=entry["sparsity"],
        label=f"{spec.method} of {entry['label'] or entry['key'][:8]}{where}",
        epoch=spec.epoch,
        params=dict(spec.params),
    )
    return {k: v for k, v in attrs.items() if v is not None}
