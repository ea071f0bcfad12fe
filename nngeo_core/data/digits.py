"""scikit-learn's bundled 8×8 handwritten digits (1797 images, no download needed).

``resize`` upsamples bilinearly (e.g. to 28×28) so that MNIST architectures run on it offline.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F

from .base import Dataset
from .common import as_float, as_optional_int, as_seed, dataset, make_dataset, subsample

DIGITS_SIZE = 8
DIGITS_MAX = 16.0  # load_digits stores pixel intensities as integers 0..16
MAX_RESIZE = 256


def _digits_shape(params: dict) -> tuple[int, int, int]:
    side = as_optional_int("resize", params.get("resize"), low=1, high=MAX_RESIZE)
    return (1, side or DIGITS_SIZE, side or DIGITS_SIZE)


@functools.lru_cache(maxsize=1)
def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The images scaled to [0, 1] as (N, 8, 8) float32, and the labels; read once per process
    (read-only, so no caller can change the cached copy)."""
    # lazy: scikit-learn adds ~1 s (measured) to every import of nngeo_core.data; only this dataset uses it
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.asarray(bunch.images, dtype=np.float32) / DIGITS_MAX
    labels = np.asarray(bunch.target, dtype=np.int64)
    images.flags.writeable = False
    labels.flags.writeable = False
    return images, labels


@dataset(
    "digits",
    input_shape=_digits_shape,
    num_classes=10,
    description="scikit-learn's 8×8 handwritten digits, offline (resize=28 for MNIST models)",
)
def digits(
    seed: int = 0,
    *,
    resize: int | None = None,
    test_fraction: float = 0.25,
    n_train: int | None = None,
    n_test: int | None = None,
) -> Dataset:
    """A seeded stratified train/test split; ``n_train``/``n_test`` subsample it further."""
    # lazy: scikit-learn adds ~1 s (measured) to every import of nngeo_core.data; only this dataset uses it
    from sklearn.model_selection import train_test_split

    seed = as_seed(seed)
    side = as_optional_int("resize", resize, low=1, high=MAX_RESIZE)
    test_fraction = as_float("test_fraction", test_fraction, low=0.0, high=1.0, low_open=True, high_open=True)
    n_train = as_optional_int("n_train", n_train, low=1)
    n_test = as_optional_int("n_test", n_test, low=1)

    images, labels = _digits_arrays()
    train_idx, test_idx = train_test_split(
        np.arange(len(labels)), test_size=test_fraction, stratify=labels, random_state=seed % 2**32
    )
    x = torch.tensor(images).unsqueeze(1)  # a copy: the cached arrays stay read-only
    if side is not None and side != DIGITS_SIZE:
        # bilinear weights are a convex combination, so values stay in [0, 1] up to rounding
        x = F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False).clamp_(0.0, 1.0)
    y = torch.tensor(labels)
    rng = np.random.default_rng(seed)
    x_train, y_train = subsample(x[train_idx], y[train_idx], n_train, rng, "n_train")
    x_test, y_test = subsample(x[test_idx], y[test_idx], n_test, rng, "n_test")
    return make_dataset(
        "digits",
        x_train,
        y_train,
        x_test,
        y_test,
        num_classes=10,
        meta={"class_names": [str(d) for d in range(10)], "source": "sklearn.datasets.load_digits"},
    )
