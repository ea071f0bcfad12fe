"""Geometry of a 2-input model on a grid: volume element, Ricci scalar and predictions per point,
for one model (``grid_heatmap``) or each snapshot of a training run (``heatmaps_over_training``)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..errors import NNGeoError
from ..progress import Progress
from .features import feature_map
from .points import shape_hint
from .predictions import predictions
from .pullback import log_volume_of_map
from .ricci import ricci_of_features


def parse_bounds(bounds) -> tuple[float, float, float, float]:
    """(xmin, xmax, ymin, ymax) from that tuple, ((xmin, xmax), (ymin, ymax)) or a dict."""
    try:
        if isinstance(bounds, dict):
            values = [bounds["xmin"], bounds["xmax"], bounds["ymin"], bounds["ymax"]]
        else:
            values = list(np.asarray(bounds, dtype=float).reshape(-1))
            if len(values) != 4:
                raise ValueError
        xmin, xmax, ymin, ymax = (float(v) for v in values)
    except (KeyError, TypeError, ValueError):
        raise NNGeoError(
            f"bounds must be (xmin, xmax, ymin, ymax) or ((xmin, xmax), (ymin, ymax)), got {bounds!r}"
        ) from None
    b = (xmin, xmax, ymin, ymax)
    if not all(math.isfinite(v) for v in b) or xmin >= xmax or ymin >= ymax:
        raise NNGeoError(f"bounds must be finite with xmin < xmax and ymin < ymax, got {b}")
    return b


def _check_resolution(resolution) -> int:
    if isinstance(resolution, bool) or not isinstance(resolution, (int, np.integer)) or not 2 <= resolution <= 2000:
        raise NNGeoError(f"resolution must be an integer from 2 to 2000, got {resolution!r}")
    return int(resolution)


def grid_points(bounds, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    xmin, xmax, ymin, ymax = parse_bounds(bounds)
    res = _check_resolution(resolution)
    xs = np.linspace(xmin, xmax, res)
    ys = np.linspace(ymin, ymax, res)
    gx, gy = np.meshgrid(xs, ys, indexing="xy")  # row-major: y varies slowest
    return gx.reshape(-1), gy.reshape(-1)


def grid_heatmap(
    model: nn.Module,
    bounds,
    resolution: int = 100,
    *,
    layer: int | str = -1,
    ricci: bool = True,
    convention: str = "standard",
    device: str = "auto",
    progress: Progress | None = None,
) -> pd.DataFrame:
    """Geometry of a 2-input model on a resolution × resolution grid.

    Columns: x, y, log_volume (log10 √det g, −inf where g is singular), ricci (Ricci scalar R,
    NaN where g is singular), pred (predicted class), margin (binary: p1 − p0, so the contour at
    0 is the decision boundary; more classes: p_top1 − p_top2, zero on a boundary), p_max,
    entropy (nats).
    """
    progress = progress or Progress()
    gx, gy = grid_points(bounds, resolution)
    fmap = feature_map(model, layer, input_shape=shape_hint(model, np.zeros((1, 2))), device=device)
    if fmap.input_shape != (2,):
        raise NNGeoError(
            f"grid_heatmap needs a model with 2 inputs, this one takes {fmap.input_shape}; "
            "use image_plane for image models"
        )
    x = torch.as_tensor(np.stack([gx, gy], 1), dtype=torch.float64, device=fmap.device)
    volume_part = progress.sub(0.0, 0.25 if ricci else 0.95)
    logvol = log_volume_of_map(fmap, x, volume_part)
    frame = {"x": gx, "y": gy, "log_volume": logvol.numpy()}
    if ricci:
        frame["ricci"] = ricci_of_features(fmap, x, convention, progress.sub(0.25, 0.95)).numpy()
    pred = predictions(fmap.model, x)
    frame.update(pred=pred["pred"], margin=pred["margin"], p_max=pred["p_max"], entropy=pred["entropy"])
    progress.update(1.0, "done")
    return pd.DataFrame(frame)


def heatmaps_over_training(
    models_by_epoch: dict[int, nn.Module],
    bounds,
    resolution: int = 60,
    *,
    layer: int | str = -1,
    ricci: bool = True,
    convention: str = "standard",
    device: str = "auto",
    progress: Progress | None = None,
) -> pd.DataFrame:
    """``grid_heatmap`` of each training snapshot, stacked with an ``epoch`` column (for animation)."""
    if not models_by_epoch:
        raise NNGeoError("no training snapshots given")
    progress = progress or Progress()
    epochs = sorted(models_by_epoch)
    frames = []
    for i, epoch in enumerate(epochs):
        sub = progress.sub(i / len(epochs), (i + 1) / len(epochs))
        frame = grid_heatmap(
            models_by_epoch[epoch],
            bounds,
            resolution,
            layer=layer,
            ricci=ricci,
            convention=convention,
            device=device,
            progress=sub,
        )
        frame.insert(0, "epoch", int(epoch))
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)
