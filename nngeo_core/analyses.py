"""Registry of analyses: each maps a model (plus optional data) to a result table.

An analysis is a plain function
    fn(model: nn.Module, dataset: Dataset | None, params: dict, progress: Progress) -> pandas.DataFrame
registered under a method name (``persistence``, ``curvature``, ``volume``, ``geodesic``...). The
``analyse`` job kind loads a run's checkpoint, calls the function and stores the table under the
hash of its ``AnalysisSpec``. Analyses never mutate the model.
"""
from __future__ import annotations

from typing import Callable

from .errors import NNGeoError

ANALYSES: dict[str, Callable] = {}
ANALYSIS_INFO: dict[str, dict] = {}


def register_analysis(name: str, *, needs_data: bool = False, description: str = ""):
    def deco(fn):
        ANALYSES[name] = fn
        ANALYSIS_INFO[name] = {"needs_data": needs_data, "description": description}
        return fn
    return deco


def get_analysis(name: str) -> Callable:
    _load_all()
    if name not in ANALYSES:
        raise NNGeoError(f"unknown analysis {name!r}; known: {', '.join(sorted(ANALYSES))}")
    return ANALYSES[name]


def _load_all() -> None:
    """Import the modules that register analyses (kept lazy: some pull in heavy libraries)."""
    import importlib

    for mod in ("nngeo_core.topology", "nngeo_core.curvature", "nngeo_core.geometry"):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith(mod):
                continue  # capability not present in this build
            raise
