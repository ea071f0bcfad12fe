"""Registry of analyses: each maps a model (plus optional data) to a result table.

An analysis is a plain function
    fn(model: nn.Module, dataset: Dataset | None, params: dict, progress: Progress) -> pandas.DataFrame
registered under a method name (``persistence``, ``curvature``, ``volume``, ``geodesic``...). The
``analyse`` job kind loads a run's checkpoint, calls the function and stores the table under the
hash of its ``AnalysisSpec``. Analyses never mutate the model.

An analysis that needs other stored results (a second run, say) registers with ``needs_store``
and is called with ``store=`` as well, the store the job reads and writes; its ``normalize(run,
params, store) -> params`` checks the params and makes them canonical (a key prefix becomes the
full key) when the job is submitted, so a bad request fails before it is queued.
"""

from __future__ import annotations

from collections.abc import Callable

from .errors import NNGeoError

ANALYSES: dict[str, Callable] = {}
ANALYSIS_INFO: dict[str, dict] = {}
NORMALIZERS: dict[str, Callable] = {}


def register_analysis(
    name: str,
    *,
    needs_data: bool = False,
    needs_store: bool = False,
    normalize: Callable | None = None,
    description: str = "",
):
    def deco(fn):
        ANALYSES[name] = fn
        ANALYSIS_INFO[name] = {"needs_data": needs_data, "needs_store": needs_store, "description": description}
        if normalize is not None:
            NORMALIZERS[name] = normalize
        else:
            NORMALIZERS.pop(name, None)
        return fn

    return deco


def normalize_params(name: str, run: str, params: dict, store) -> dict:
    """The analysis's canonical params for ``run`` (unchanged when it registered no ``normalize``)."""
    normalize = NORMALIZERS.get(name)
    return dict(params) if normalize is None else normalize(run, dict(params), store)


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
