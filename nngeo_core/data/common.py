"""Shared pieces of the dataset loaders: what a dataset declares before it is loaded
(``DatasetInfo``), the decorator that registers a loader together with that declaration, and
the checks that turn bad parameters into one-line ``NNGeoError``s."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..errors import NNGeoError
from .base import Dataset, register_dataset


@dataclass(frozen=True)
class DatasetInfo:
    """What a picker needs to know about a dataset without loading it."""

    name: str
    input_shape: tuple[int, ...]
    num_classes: int
    description: str
    needs_files: bool = False  # True: read from the data directory (or downloaded)
    defaults: dict[str, Any] = field(default_factory=dict)  # loader parameters and defaults

    @property
    def is_2d(self) -> bool:
        return self.input_shape == (2,)


@dataclass(frozen=True)
class Describer:
    """A loader registered with ``@dataset`` and its declaration: ``describer(params)`` is its DatasetInfo."""

    loader: Callable  # the registered function (lets dataset_info notice a later re-registration)
    describe: Callable[[dict], DatasetInfo]

    def __call__(self, params: dict) -> DatasetInfo:
        return self.describe(params)


# name -> Describer (called with params, gives a DatasetInfo); filled by @dataset
DESCRIBERS: dict[str, Describer] = {}


_NAMED = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def loader_defaults(fn: Callable) -> dict[str, Any]:
    """The named parameters a loader accepts besides ``seed``, and their defaults."""
    return {
        p.name: (None if p.default is inspect.Parameter.empty else p.default)
        for p in inspect.signature(fn).parameters.values()
        if p.name != "seed" and p.kind in _NAMED
    }


def dataset(
    name: str,
    *,
    input_shape: tuple[int, ...] | Callable[[dict], tuple[int, ...]],
    num_classes: int,
    description: str,
    needs_files: bool = False,
):
    """Register ``fn(seed, *, **params) -> Dataset`` under ``name`` and declare its shape.

    ``input_shape`` may be a function of the (defaults-filled) params, for loaders such as
    ``digits`` whose shape depends on ``resize``.
    """

    def deco(fn):
        defaults = loader_defaults(fn)

        def describe(params: dict) -> DatasetInfo:
            check_param_names(name, fn, params)
            full = {**defaults, **params}
            shape = input_shape(full) if callable(input_shape) else input_shape
            return DatasetInfo(
                name=name,
                input_shape=tuple(shape),
                num_classes=num_classes,
                description=description,
                needs_files=needs_files,
                defaults=dict(defaults),
            )

        DESCRIBERS[name] = Describer(loader=fn, describe=describe)
        register_dataset(name)(fn)
        return fn

    return deco


def check_param_names(dataset_name: str, fn: Callable, params: dict) -> None:
    """Refuse parameters the loader does not take (a loader with ``**kwargs`` takes any)."""
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in inspect.signature(fn).parameters.values()):
        return
    allowed = loader_defaults(fn)
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        known = ", ".join(sorted(allowed)) or "none"
        raise NNGeoError(
            f"dataset {dataset_name!r} has no parameter {', '.join(map(repr, unknown))}; its parameters are: {known}"
        )


# ---- parameter checks: spec hashing treats 1.0 and 1 as the same request, so integral
# floats are accepted wherever an int is expected.


def as_int(what: str, value: Any, *, low: int | None = None, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise NNGeoError(f"{what} must be an integer, got {value!r}")
    if isinstance(value, (float, np.floating)) and not (math.isfinite(value) and float(value).is_integer()):
        raise NNGeoError(f"{what} must be an integer, got {value!r}")
    value = int(value)
    if low is not None and value < low:
        raise NNGeoError(f"{what} must be at least {low}, got {value}")
    if high is not None and value > high:
        raise NNGeoError(f"{what} must be at most {high}, got {value}")
    return value


def as_optional_int(what: str, value: Any, *, low: int | None = None, high: int | None = None) -> int | None:
    return None if value is None else as_int(what, value, low=low, high=high)


def as_float(
    what: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise NNGeoError(f"{what} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise NNGeoError(f"{what} must be a finite number, got {value!r}")
    if low is not None and (value < low or (low_open and value == low)):
        raise NNGeoError(f"{what} must be {'>' if low_open else '>='} {low}, got {value}")
    if high is not None and (value > high or (high_open and value == high)):
        raise NNGeoError(f"{what} must be {'<' if high_open else '<='} {high}, got {value}")
    return value


def as_seed(value: Any) -> int:
    return as_int("seed", value, low=0, high=2**63 - 1)


def subsample(
    x: torch.Tensor, y: torch.Tensor, n: int | None, rng: np.random.Generator, what: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded random subset of ``n`` rows kept in their original order (all rows if ``n`` is None)."""
    if n is None:
        return x, y
    if n > len(y):
        raise NNGeoError(f"{what}={n} is more than the {len(y)} examples available")
    keep = torch.from_numpy(np.sort(rng.choice(len(y), size=n, replace=False)))
    return x[keep], y[keep]


def make_dataset(name: str, x_train, y_train, x_test, y_test, *, num_classes: int, meta: dict | None = None) -> Dataset:
    """Wrap arrays as a ``Dataset`` with float32 inputs and int64 labels."""
    x_train = torch.as_tensor(x_train).to(torch.float32).contiguous()
    x_test = torch.as_tensor(x_test).to(torch.float32).contiguous()
    y_train = torch.as_tensor(y_train).to(torch.int64).contiguous()
    y_test = torch.as_tensor(y_test).to(torch.int64).contiguous()
    return Dataset(
        name=name,
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        input_shape=tuple(x_train.shape[1:]),
        num_classes=int(num_classes),
        meta=dict(meta or {}),
    )
