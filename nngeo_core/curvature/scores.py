"""Per-weight curvature scores, the calibration inputs they are computed on, for the pruning strategy.

``curvature_scores`` gives every weight the minimum curvature over the layer-graph edges it labels
(``scores_from_table`` from a curvature table); ``calibration_set`` picks the correctly classified
inputs the neural curvature is measured on.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..errors import NNGeoError
from ..models.base import get_layer, prunable_layers, tensor_attribute
from ..progress import Progress
from .neural import FROM_PRESET, neural_curvature, preset_settings, weight_only_curvature


def scores_from_table(model: nn.Module, df: pd.DataFrame, fill: float = 1.0) -> dict[str, torch.Tensor]:
    """Per-weight curvature (min over the edges each weight labels) shaped like each layer's weight.

    Weights with no computed edge (zero weights, conv taps that only ever see padding) get
    ``fill``: no information flows through them, so they rank as redundant.
    """
    out: dict[str, torch.Tensor] = {}
    for info in prunable_layers(model):
        w = tensor_attribute(get_layer(model, info.name), "weight")
        flat = np.full(w.numel(), np.nan)
        rows = df[df["layer"] == info.name]
        if len(rows):
            mins = rows.groupby("kernel")["curvature"].min()
            flat[mins.index.to_numpy(dtype=np.int64)] = mins.to_numpy()
        filled = np.where(np.isnan(flat), fill, flat)
        out[info.name] = torch.from_numpy(filled.reshape(tuple(w.shape))).to(torch.float32)
    return out


def curvature_scores(
    model: nn.Module,
    inputs=None,
    *,
    preset: str = "nngeo",
    alpha: float = FROM_PRESET,
    method: str = FROM_PRESET,
    aggregate: str = "min",
    normalize_idleness: bool = FROM_PRESET,
    dead_value: float = FROM_PRESET,
    conv_positions: int | None = FROM_PRESET,
    masses: str = FROM_PRESET,
    dead_rule: str = FROM_PRESET,
    remap_one: float = FROM_PRESET,
    processes: int | None = None,
    device: str = "auto",
    progress: Progress | None = None,
) -> dict[str, torch.Tensor]:
    """Per-weight neural curvature, ``{layer name: tensor shaped like its weight}``, for pruning.

    Positive curvature marks redundant weights (prune highest first); negative marks bottlenecks
    (pruning lowest first is the ablation). With ``inputs=None`` the weight-only curvature is used
    (``preset`` then gives alpha, method, normalize_idleness and conv_positions only). Settings as
    ``neural_curvature`` (the preset fills those not given). Never NaN: weights without edges get
    ``dead_value``.
    """
    s = preset_settings(
        preset,
        alpha=alpha,
        method=method,
        normalize_idleness=normalize_idleness,
        dead_value=dead_value,
        conv_positions=conv_positions,
        masses=masses,
        dead_rule=dead_rule,
        remap_one=remap_one,
    )
    if inputs is None:
        df = weight_only_curvature(
            model,
            alpha=s["alpha"],
            method=s["method"],
            normalize_idleness=s["normalize_idleness"],
            conv_positions=s["conv_positions"],
            processes=processes,
            device=device,
            progress=progress,
        )
    else:
        df = neural_curvature(
            model,
            inputs,
            aggregate=aggregate,
            **{k: v for k, v in s.items() if k != "tie_break"},
            processes=processes,
            device=device,
            progress=progress,
        )
    return scores_from_table(model, df, fill=float(s["dead_value"]))


def calibration_set(model: nn.Module, dataset, k: int = 1, *, split: str = "test") -> torch.Tensor:
    """``k`` correctly classified inputs per class from the held-out split (first ones, in order)."""
    if int(k) < 1:
        raise NNGeoError("k (calibration inputs per class) must be at least 1")
    if split not in ("test", "train"):
        raise NNGeoError("split must be test or train")
    x = dataset.x_test if split == "test" else dataset.x_train
    y = dataset.y_test if split == "test" else dataset.y_train
    if len(x) == 0:
        raise NNGeoError(f"dataset {dataset.name} has no {split} inputs to calibrate on")
    yc = y.cpu()
    classes = range(int(dataset.num_classes))
    # a class is done once it has k correct inputs, or all of its inputs (fewer than k) are correct
    need = [min(int(k), int((yc == c).sum())) for c in classes]
    got = [0] * len(need)
    param = next(model.parameters())
    was = model.training
    model.eval()
    preds = []
    with torch.no_grad():
        for s in range(0, len(x), 2048):
            pred = model(x[s : s + 2048].to(device=param.device, dtype=param.dtype)).argmax(1).cpu()
            preds.append(pred)
            hit = yc[s : s + 2048][pred == yc[s : s + 2048]]
            got = [g + int((hit == c).sum()) for g, c in zip(got, classes, strict=False)]
            if all(g >= n for g, n in zip(got, need, strict=False)):
                break  # every class has its first k: later inputs cannot change the choice
    model.train(was)
    seen = torch.cat(preds)
    correct = seen == yc[: len(seen)]
    chosen = []
    for c in classes:
        idx = torch.nonzero(correct & (yc[: len(seen)] == c)).flatten()[: int(k)]
        chosen.append(idx)
    idx = torch.cat(chosen)
    if len(idx) == 0:
        raise NNGeoError("the model classifies none of the held-out inputs correctly; train it first")
    return x[idx].cpu()
