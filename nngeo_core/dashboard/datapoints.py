"""Small samples of a run's data for overlays and thumbnails (generated or read, never trained on)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..data import load
from ..errors import NNGeoError
from ..specs import DataSpec


def training_points(data: DataSpec, n: int = 400, seed: int = 0) -> pd.DataFrame:
    """Up to ``n`` training points of a 2-D dataset: columns x, y, label."""
    ds = load(data)
    if tuple(ds.input_shape) != (2,):
        raise NNGeoError(f"{data.name} is not a 2-D dataset (inputs {tuple(ds.input_shape)})")
    x, y = ds.x_train.numpy(), ds.y_train.numpy()
    if len(x) > n:
        idx = np.random.default_rng(seed).choice(len(x), size=n, replace=False)
        x, y = x[idx], y[idx]
    return pd.DataFrame({"x": x[:, 0], "y": x[:, 1], "label": y.astype(int)})


def chosen_inputs(data: DataSpec, indices: list[int]) -> list[tuple[np.ndarray, int]]:
    """(input array, label) of the given test-set indices (for thumbnails of image inputs)."""
    ds = load(data)
    n = len(ds.x_test)
    bad = [i for i in indices if not 0 <= int(i) < n]
    if bad:
        raise NNGeoError(f"test index {bad[0]} is out of range: {data.name} has {n} test inputs (0..{n - 1})")
    return [(ds.x_test[int(i)].numpy(), int(ds.y_test[int(i)])) for i in indices]


def thumbnail(pixels: np.ndarray, scale: int = 4) -> np.ndarray:
    """A (C, H, W) or (H, W) input as a uint8 image, values stretched to 0..255, upscaled."""
    img = np.asarray(pixels, dtype=float)
    if img.ndim == 3:
        img = img[0] if img.shape[0] == 1 else np.moveaxis(img, 0, -1)
    lo, hi = float(img.min()), float(img.max())
    img = (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)
    img = np.repeat(np.repeat(img, scale, axis=0), scale, axis=1)
    return (img * 255).round().astype(np.uint8)
