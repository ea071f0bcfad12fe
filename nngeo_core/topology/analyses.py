"""The topology analyses for the analysis registry (``nngeo_core.analyses``): ``persistence``,
``persistence_diagrams``, ``critical_compression`` and ``mst_overlap``.

``persistence`` and ``mst_overlap`` also take ``null_models`` / ``null_seeds``
(``models.nulls.NULL_PARAMS``): when null models are named, the table stacks the network's own rows
(``model = "trained"``) and each null kind × seed's (``model`` = the kind, ``seed``), each computed
from scratch; without them the table is what it always was (no ``model`` / ``seed`` columns)."""

from __future__ import annotations

from ..analysis_base import register_analysis
from ..errors import NNGeoError
from ..models.nulls import NULL_PARAMS, null_normalizer, null_rows
from ..params import Param, signature_defaults
from .compression import critical_compression
from .overlap import mst_overlap
from .persistence import neural_persistence, persistence_diagrams

# each analysis declares the parameters of the function it calls, with that function's defaults
PERSISTENCE_PARAMS = {
    **signature_defaults(neural_persistence, ("p", "normalize", "essential", "conv", "zeros")),
    "input_shape": Param(None, kind=tuple),
    **NULL_PARAMS,
}
DIAGRAM_PARAMS = {
    **signature_defaults(persistence_diagrams, ("normalize", "essential", "conv", "zeros")),
    "input_shape": Param(None, kind=tuple),
}
COMPRESSION_PARAMS = {**signature_defaults(critical_compression, ("conv",)), "input_shape": Param(None, kind=tuple)}
OVERLAP_PARAMS = {**signature_defaults(mst_overlap, ("conv", "input_shape"))}
OVERLAP_PARAMS["input_shape"] = Param(None, kind=tuple)
OVERLAP_PARAMS.update(NULL_PARAMS)
NULLS = tuple(NULL_PARAMS)


def _params(method: str, params: dict | None, allowed: tuple[str, ...]) -> dict:
    params = dict(params or {})
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise NNGeoError(f"analysis {method!r} has no parameter {unknown[0]!r}; its parameters: {', '.join(allowed)}")
    if params.get("input_shape") is not None:
        params["input_shape"] = tuple(params["input_shape"])
    return params


@register_analysis(
    "persistence",
    params=PERSISTENCE_PARAMS,
    normalize=null_normalizer,
    columns=("layer", "np"),
    description="Neural persistence per layer (Rieck et al. 2019): p-norm of each layer's 0-dim persistence diagram.",
)
def persistence_analysis(model, dataset, params, progress):
    params = _params("persistence", params, ("p", "normalize", "essential", "conv", "zeros", "input_shape", *NULLS))
    nulls = {k: params.pop(k) for k in NULLS if k in params}
    return null_rows(
        model,
        lambda net, pr: neural_persistence(net, progress=pr, **params),
        nulls,
        progress,
        input_shape=params.get("input_shape"),
    )


@register_analysis(
    "persistence_diagrams",
    params=DIAGRAM_PARAMS,
    columns=("layer", "birth", "death"),
    description="Every layer's 0-dim persistence diagram as a long "
    "table (layer, birth, death), for diagram and barcode plots.",
)
def persistence_diagrams_analysis(model, dataset, params, progress):
    params = _params("persistence_diagrams", params, ("normalize", "essential", "conv", "zeros", "input_shape"))
    if progress is not None:
        progress.check()
    return persistence_diagrams(model, **params)


@register_analysis(
    "critical_compression",
    params=COMPRESSION_PARAMS,
    columns=("layer", "kind", "n_edges", "mst_size", "eta_tau"),
    description="Topologically critical compression ratio "
    "|W| / |MST| per layer and for the model (Balwani & Krzyston 2022).",
)
def critical_compression_analysis(model, dataset, params, progress):
    params = _params("critical_compression", params, ("conv", "input_shape"))
    if progress is not None:
        progress.check()
    return critical_compression(model, params.pop("input_shape", None), **params)


@register_analysis(
    "mst_overlap",
    params=OVERLAP_PARAMS,
    normalize=null_normalizer,
    columns=("layer", "alpha", "overlap", "bound", "chance", "p_chance"),
    description="Fraction of each layer's maximum spanning tree among its "
    "largest weights, with a lower bound and the random-chance value.",
)
def mst_overlap_analysis(model, dataset, params, progress):
    params = _params("mst_overlap", params, ("conv", "input_shape", *NULLS))
    nulls = {k: params.pop(k) for k in NULLS if k in params}

    def compute(net, pr):
        if pr is not None:
            pr.check()
        return mst_overlap(net, **params)

    return null_rows(model, compute, nulls, progress, input_shape=params.get("input_shape"))
