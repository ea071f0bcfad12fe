"""Two-dimensional toy classification tasks, generated in code from a seed.

Each loader draws ``n_train + n_test`` independent points with ``numpy.random.default_rng(seed)``
(or scikit-learn with ``random_state=seed``) and splits them, so a seed fixes the data exactly.
``meta["bounds"] = (xmin, xmax, ymin, ymax)`` is a fixed plotting window per dataset and noise
level (not fitted to the sample, so plots of different seeds line up); it leaves a margin of
``0.25 + 4 * noise`` around the noise-free shape.
"""

from __future__ import annotations

import numpy as np

from .base import Dataset
from .common import as_float, as_int, as_seed, dataset, make_dataset

MAX_POINTS = 10_000_000


def _sizes(n_train, n_test) -> tuple[int, int]:
    return (as_int("n_train", n_train, low=1, high=MAX_POINTS), as_int("n_test", n_test, low=1, high=MAX_POINTS))


def _margin(noise: float) -> float:
    return 0.25 + 4.0 * noise


def _finish(name: str, x: np.ndarray, y: np.ndarray, n_train: int, bounds, **meta) -> Dataset:
    return make_dataset(
        name,
        x[:n_train],
        y[:n_train],
        x[n_train:],
        y[n_train:],
        num_classes=2,
        meta={"bounds": tuple(float(b) for b in bounds), **meta},
    )


@dataset("xor", input_shape=(2,), num_classes=2, description="four Gaussian blobs at (±1, ±1); class 1 where x1·x2 > 0")
def xor(seed: int = 0, *, n_train: int = 1000, n_test: int = 1000, noise: float = 0.3) -> Dataset:
    """Blob centres are drawn uniformly; ``noise`` is the blobs' standard deviation. Labels come
    from the drawn point (x1·x2 > 0), not its blob, so the true boundary is exactly the axes."""
    seed = as_seed(seed)
    n_train, n_test = _sizes(n_train, n_test)
    noise = as_float("noise", noise, low=0.0)
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    centres = rng.choice(np.array([-1.0, 1.0]), size=(n, 2))
    x = centres + noise * rng.standard_normal((n, 2))
    y = (x[:, 0] * x[:, 1] > 0).astype(np.int64)
    r = 1.0 + _margin(noise)
    return _finish("xor", x, y, n_train, (-r, r, -r, r), noise=noise)


@dataset(
    "sinusoid",
    input_shape=(2,),
    num_classes=2,
    description="uniform on [-1, 1]²; class 1 above the curve x2 = 0.6·sin(7·x1 − 1)",
)
def sinusoid(seed: int = 0, *, n_train: int = 1000, n_test: int = 1000, noise: float = 0.0) -> Dataset:
    """``noise`` is the standard deviation of a per-point vertical jitter of the boundary, so
    points near the curve get noisy labels while the inputs stay uniform."""
    seed = as_seed(seed)
    n_train, n_test = _sizes(n_train, n_test)
    noise = as_float("noise", noise, low=0.0)
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    x = rng.uniform(-1.0, 1.0, size=(n, 2))
    boundary = 0.6 * np.sin(7.0 * x[:, 0] - 1.0) + noise * rng.standard_normal(n)
    y = (x[:, 1] > boundary).astype(np.int64)
    return _finish("sinusoid", x, y, n_train, (-1.0, 1.0, -1.0, 1.0), noise=noise)


@dataset("moons", input_shape=(2,), num_classes=2, description="two interleaved half circles (scikit-learn make_moons)")
def moons(seed: int = 0, *, n_train: int = 1000, n_test: int = 1000, noise: float = 0.1) -> Dataset:
    # lazy: scikit-learn adds ~1 s (measured) to every import of nngeo_core.data; only this dataset uses it
    from sklearn.datasets import make_moons

    seed = as_seed(seed)
    n_train, n_test = _sizes(n_train, n_test)
    noise = as_float("noise", noise, low=0.0)
    # make_moons shuffles, so the first n_train points are a random half-and-half sample
    x, y = make_moons(n_samples=n_train + n_test, noise=noise, random_state=seed % 2**32)
    m = _margin(noise)
    return _finish("moons", x, y, n_train, (-1.0 - m, 2.0 + m, -0.5 - m, 1.0 + m), noise=noise)


@dataset(
    "circles",
    input_shape=(2,),
    num_classes=2,
    description="a small circle inside a large one (scikit-learn make_circles)",
)
def circles(
    seed: int = 0, *, n_train: int = 1000, n_test: int = 1000, noise: float = 0.05, factor: float = 0.5
) -> Dataset:
    """``factor`` is the inner circle's radius relative to the outer one (radius 1)."""
    # lazy: scikit-learn adds ~1 s (measured) to every import of nngeo_core.data; only this dataset uses it
    from sklearn.datasets import make_circles

    seed = as_seed(seed)
    n_train, n_test = _sizes(n_train, n_test)
    noise = as_float("noise", noise, low=0.0)
    factor = as_float("factor", factor, low=0.0, high=1.0, low_open=True, high_open=True)
    x, y = make_circles(n_samples=n_train + n_test, noise=noise, factor=factor, random_state=seed % 2**32)
    r = 1.0 + _margin(noise)
    return _finish("circles", x, y, n_train, (-r, r, -r, r), noise=noise, factor=factor)


@dataset("spirals", input_shape=(2,), num_classes=2, description="two interleaved Archimedean spirals")
def spirals(
    seed: int = 0, *, n_train: int = 1000, n_test: int = 1000, noise: float = 0.05, turns: float = 1.5
) -> Dataset:
    """Class k lies on r = t, θ = 2π·turns·t + kπ for t in [0, 1]; t = sqrt(u) with u uniform
    spreads points evenly along the arms. ``noise`` is isotropic Gaussian jitter."""
    seed = as_seed(seed)
    n_train, n_test = _sizes(n_train, n_test)
    noise = as_float("noise", noise, low=0.0)
    turns = as_float("turns", turns, low=0.0, high=20.0, low_open=True)
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    y = rng.permutation(np.arange(n) % 2)  # balanced classes
    t = np.sqrt(rng.uniform(0.0, 1.0, size=n))
    angle = 2.0 * np.pi * turns * t + np.pi * y
    x = np.stack([t * np.cos(angle), t * np.sin(angle)], axis=1)
    x += noise * rng.standard_normal((n, 2))
    r = 1.0 + _margin(noise)
    return _finish("spirals", x, y.astype(np.int64), n_train, (-r, r, -r, r), noise=noise, turns=turns)
