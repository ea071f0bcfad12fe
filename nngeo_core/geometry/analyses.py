"""The ``volume``, ``geodesic`` and ``forgetting`` analyses for the analysis registry (``nngeo_core.analyses``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..analysis_base import register_analysis
from ..data import dataset_info
from ..data import load as load_data
from ..errors import NNGeoError
from ..params import Param, resolve, signature_defaults
from ..progress import Progress
from ..runs import load_run, read_header
from .geodesic import forgetting_path, sparsify_path
from .heatmaps import grid_heatmap
from .image_plane import image_plane

VOLUME_PARAMS = {
    "layer": -1,  # the hidden layer whose pullback metric is measured (-1: the last)
    "resolution": Param(None, kind=int, low=2),  # None: 100x100 grid for 2-D inputs, 20x20 plane for images
    "bounds": Param(None, kind=tuple),  # None: the dataset's range, padded by 10%
    "ricci": True,
    "convention": Param("standard", choices=("standard", "paper")),
    "indices": Param(None, kind=tuple),  # None: the first test inputs of three classes
    "extent": 1.5,
}
GEODESIC_STEPS = 100
PATH_SETTINGS = ("eps", "beta", "batch_size", "method", "lam", "fisher", "seed", "tol", "eval_size", "record_every")
GEODESIC_PARAMS = {
    **signature_defaults(sparsify_path, ("sparsity", "mask", *PATH_SETTINGS)),
    "steps": Param(GEODESIC_STEPS, low=1),
}
FORGETTING_STEPS = 50  # default: well under a second for a small mlp on a toy task on CPU
FORGETTING_PARAMS = {
    "run_b": None,  # required: the key of the run trained on task B (normalize_forgetting checks it)
    **signature_defaults(forgetting_path, ("direction", *PATH_SETTINGS)),
    "steps": Param(FORGETTING_STEPS, low=1),
}


def _check_params(name: str, params: dict, declared: dict) -> dict:
    """``params`` checked against the declaration, every default filled in."""
    return resolve(f"analysis {name!r}", declared, params)


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


@register_analysis(
    "volume",
    needs_data=True,
    params=VOLUME_PARAMS,
    columns=("log_volume",),
    description="Volume element (and Ricci scalar for 2-D inputs) of the pullback metric of a hidden layer",
)
def volume_analysis(model: nn.Module, dataset, params: dict, progress: Progress) -> pd.DataFrame:
    """2-D data: ``grid_heatmap`` over ``bounds`` (default: the dataset's). Images: ``image_plane``
    through three test inputs (``indices``, default the first of three different classes)."""
    if dataset is None:
        raise NNGeoError("the volume analysis needs the model's dataset")
    p = _check_params("volume", params, VOLUME_PARAMS)
    layer = p.get("layer", -1)
    if tuple(dataset.input_shape) == (2,):
        bounds = p.get("bounds") or default_bounds(dataset)
        return grid_heatmap(
            model,
            bounds,
            100 if p["resolution"] is None else p["resolution"],
            layer=layer,
            ricci=p.get("ricci", True),
            convention=p.get("convention", "standard"),
            progress=progress,
        )
    indices = p.get("indices") or default_plane_indices(dataset)
    if len(indices) != 3 or any(
        not isinstance(i, (int, np.integer)) or not 0 <= i < len(dataset.x_test) for i in indices
    ):
        raise NNGeoError(
            f"indices must be three test-set positions from 0 to {len(dataset.x_test) - 1}, got {indices!r}"
        )
    x1, x2, x3 = (dataset.x_test[int(i)] for i in indices)
    # default 20×20; the pseudo-volume only where the full Jacobian is cheap (image_plane's
    # pseudo_volume=None): a torchvision net gets the plane's volume element (log_area) by two
    # forward-mode passes per point, of its pooled features (the input of its final Linear)
    frame = image_plane(
        model,
        x1,
        x2,
        x3,
        20 if p["resolution"] is None else p["resolution"],
        layer=layer,
        extent=p.get("extent", 1.5),
        progress=progress,
    )
    anchor_rows = frame["anchor"].to_numpy()
    labels = dataset.y_test[[int(i) for i in indices]].numpy()
    frame["label"] = np.where(anchor_rows >= 0, labels[np.clip(anchor_rows, 0, 2)], -1)
    return frame


@register_analysis(
    "geodesic",
    needs_data=True,
    params=GEODESIC_PARAMS,
    columns=("step", "path_length"),
    timings=("seconds",),
    description="Geodesic path in weight space to a sparse network (functional metric)",
)
def geodesic_analysis(model: nn.Module, dataset, params: dict, progress: Progress) -> pd.DataFrame:
    """``sparsify_path`` with the metric on training inputs and accuracies on the test set."""
    if dataset is None:
        raise NNGeoError("the geodesic analysis needs the model's dataset")
    p = _check_params("geodesic", params, GEODESIC_PARAMS)
    p.setdefault("steps", 100)
    path = sparsify_path(
        model, dataset.x_train, dataset.y_train, eval_x=dataset.x_test, eval_y=dataset.y_test, progress=progress, **p
    )
    return path.table


def _shape_text(shape) -> str:
    return "×".join(map(str, shape)) or "scalar"


def _architecture_difference(a: dict, b: dict) -> str | None:
    """None when two models have the same weights (names and shapes), else the first difference,
    worded from b's side (b "has", "lacks", "is ... there")."""
    for name in sorted(set(a) & set(b)):
        if a[name] != b[name]:
            return f"{name} is {_shape_text(b[name])} there, {_shape_text(a[name])} here"
    extra, missing = sorted(set(b) - set(a)), sorted(set(a) - set(b))
    if extra:
        return f"it has {extra[0]} ({_shape_text(b[extra[0]])}), which run A lacks"
    if missing:
        return f"it lacks {missing[0]} ({_shape_text(a[missing[0]])})"
    return None


def normalize_forgetting(run: str, params: dict, store) -> dict:
    """Check a forgetting request before it runs: ``run_b`` names another stored model of the same
    architecture whose dataset has the inputs of run A's; it becomes the full key."""
    p = _check_params("forgetting", params, FORGETTING_PARAMS)
    run_b = p.get("run_b")
    if isinstance(run_b, int) and not isinstance(run_b, bool) and run_b >= 0:
        run_b = str(run_b)  # `--param run_b=12345678` reads an all-digit key as a number
    if not isinstance(run_b, str) or not run_b.strip():
        raise NNGeoError(
            "forgetting: give run_b, the key of a stored model trained on task B (see `nngeo list`)"
            + (
                f"; got the number {run_b!r}: give more of the key's digits, up to a letter"
                if isinstance(run_b, (int, float)) and not isinstance(run_b, bool)
                else ""
            )
        )
    try:
        head_b = read_header(run_b, store=store)
    except NNGeoError as exc:
        raise NNGeoError(f"forgetting: run_b: {exc}") from None
    full_b, full_a = store.resolve(run_b), store.resolve(run)
    if full_b == full_a:
        raise NNGeoError("forgetting: run_b is the analysed run itself; give a run trained on another task")
    head_a = read_header(full_a, store=store)
    diff = _architecture_difference(dict(head_a.shapes), dict(head_b.shapes))
    if diff is not None:
        raise NNGeoError(f"forgetting: run_b {full_b[:8]} has another architecture than run {full_a[:8]}: {diff}")
    if head_b.data_spec is None:
        raise NNGeoError(f"forgetting: run_b {full_b[:8]} records no dataset (an upload?), so it has no task B")
    if head_a.data_spec is not None:
        shape_a = tuple(dataset_info(head_a.data_spec.name, **dict(head_a.data_spec.params)).input_shape)
        shape_b = tuple(dataset_info(head_b.data_spec.name, **dict(head_b.data_spec.params)).input_shape)
        if shape_a != shape_b:
            raise NNGeoError(
                f"forgetting: task B ({head_b.data_spec.name}) has inputs of shape {shape_b}, "
                f"task A ({head_a.data_spec.name}) {shape_a}; both tasks need the same inputs"
            )
    p["run_b"] = full_b
    return p


@register_analysis(
    "forgetting",
    needs_data=True,
    needs_store=True,
    normalize=normalize_forgetting,
    params=FORGETTING_PARAMS,
    columns=("step", "path_length", "accuracy_a", "accuracy_b"),
    description="Forgetting path (Raghavan & Thomson 2020): from this run (task A) towards run_b "
    "(task B), accuracy on both tasks and distance to run_b",
)
def forgetting_analysis(model: nn.Module, dataset, params: dict, progress: Progress, *, store) -> pd.DataFrame:
    """``forgetting_path`` from ``model`` (task A: its dataset) towards the final model of stored
    run ``run_b`` (task B: that run's dataset); metric on training inputs, accuracies on test sets.
    ``params`` are those ``normalize_forgetting`` checked (the analyse job calls it first)."""
    if dataset is None:
        raise NNGeoError("the forgetting analysis needs the model's dataset")
    p = _check_params("forgetting", params, FORGETTING_PARAMS)
    run_b = p.pop("run_b")
    p.setdefault("steps", FORGETTING_STEPS)
    progress.update(0.0, f"loading run {run_b[:8]}", force=True)
    ckpt_b = load_run(run_b, store=store)
    if ckpt_b.data_spec is None:
        raise NNGeoError(f"forgetting: run_b {run_b[:8]} records no dataset (an upload?), so it has no task B")
    task_b = load_data(ckpt_b.data_spec)
    progress.check()
    path = forgetting_path(model, ckpt_b.model.eval(), dataset, task_b, progress=progress, **p)
    return path.table
