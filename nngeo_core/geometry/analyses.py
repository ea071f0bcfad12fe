"""The ``volume`` and ``geodesic`` analyses for the analysis registry (``nngeo_core.analyses``)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..analyses import register_analysis
from ..errors import NNGeoError
from ..progress import Progress
from .geodesic import sparsify_path
from .image_plane import image_plane
from .pullback import grid_heatmap

VOLUME_PARAMS = {"layer", "resolution", "bounds", "ricci", "convention", "indices", "extent"}
GEODESIC_PARAMS = {"sparsity", "steps", "eps", "beta", "batch_size", "mask", "method", "lam", "fisher",
                   "seed", "tol", "eval_size", "record_every"}


def _check_params(name: str, params: dict, allowed: set[str]) -> dict:
    params = dict(params or {})
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise NNGeoError(f"{name}: unknown parameter {unknown[0]!r}; known: {', '.join(sorted(allowed))}")
    return params


def default_bounds(dataset, pad: float = 0.1) -> tuple[float, float, float, float]:
    """dataset.meta["bounds"], else the range of its inputs padded by 10%."""
    if "bounds" in dataset.meta:
        return tuple(float(b) for b in dataset.meta["bounds"])  # type: ignore[return-value]
    x = torch.cat([dataset.x_train, dataset.x_test]).double()
    lo, hi = x.min(0).values, x.max(0).values
    span = (hi - lo).clamp(min=1e-6)
    lo, hi = lo - pad * span, hi + pad * span
    return float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1])


def default_plane_indices(dataset) -> list[int]:
    """Indices of the first test inputs of three different classes (or the first three)."""
    y = dataset.y_test.tolist()
    picked, classes = [], set()
    for i, c in enumerate(y):
        if c not in classes:
            picked.append(i)
            classes.add(c)
        if len(picked) == 3:
            return picked
    if len(y) < 3:
        raise NNGeoError("the dataset needs at least three test inputs to span a plane")
    return [0, 1, 2]


@register_analysis("volume", needs_data=True,
                   description="Volume element (and Ricci scalar for 2-D inputs) of the pullback metric of a hidden layer")
def volume_analysis(model: nn.Module, dataset, params: dict, progress: Progress) -> pd.DataFrame:
    """2-D data: ``grid_heatmap`` over ``bounds`` (default: the dataset's). Images: ``image_plane``
    through three test inputs (``indices``, default the first of three different classes)."""
    if dataset is None:
        raise NNGeoError("the volume analysis needs the model's dataset")
    p = _check_params("volume", params, VOLUME_PARAMS)
    layer = p.get("layer", -1)
    if tuple(dataset.input_shape) == (2,):
        bounds = p.get("bounds") or default_bounds(dataset)
        return grid_heatmap(model, bounds, p.get("resolution", 100), layer=layer, ricci=p.get("ricci", True),
                            convention=p.get("convention", "standard"), progress=progress)
    indices = p.get("indices") or default_plane_indices(dataset)
    if len(indices) != 3 or any(not isinstance(i, (int, np.integer)) or not 0 <= i < len(dataset.x_test)
                                for i in indices):
        raise NNGeoError(f"indices must be three test-set positions from 0 to {len(dataset.x_test) - 1}, got {indices!r}")
    x1, x2, x3 = (dataset.x_test[int(i)] for i in indices)
    # default 20×20: each point costs min(n, d) backward passes (seconds for a wide conv layer on CPU)
    frame = image_plane(model, x1, x2, x3, p.get("resolution", 20), layer=layer, extent=p.get("extent", 1.5),
                        progress=progress)
    anchor_rows = frame["anchor"].to_numpy()
    labels = dataset.y_test[[int(i) for i in indices]].numpy()
    frame["label"] = np.where(anchor_rows >= 0, labels[np.clip(anchor_rows, 0, 2)], -1)
    return frame


@register_analysis("geodesic", needs_data=True,
                   description="Geodesic path in weight space to a sparse network (functional metric)")
def geodesic_analysis(model: nn.Module, dataset, params: dict, progress: Progress) -> pd.DataFrame:
    """``sparsify_path`` with the metric on training inputs and accuracies on the test set."""
    if dataset is None:
        raise NNGeoError("the geodesic analysis needs the model's dataset")
    p = _check_params("geodesic", params, GEODESIC_PARAMS)
    p.setdefault("steps", 100)
    _, frame = sparsify_path(model, dataset.x_train, dataset.y_train, eval_x=dataset.x_test,
                             eval_y=dataset.y_test, progress=progress, **p)
    return frame
