"""The dataset record every loader returns, and the registry of loaders."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import NNGeoError
from ..registry import Registry


@dataclass
class Dataset:
    name: str
    x_train: torch.Tensor  # float32, shape (N, *input_shape)
    y_train: torch.Tensor  # int64 class labels, shape (N,)
    x_test: torch.Tensor
    y_test: torch.Tensor
    input_shape: tuple[int, ...]  # without batch dimension: (2,) or (C, H, W)
    num_classes: int
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def is_2d(self) -> bool:
        return self.input_shape == (2,)


# name -> loader(seed: int, **params) -> Dataset
DATASETS: Registry[Callable[..., Dataset]] = Registry("dataset")


def register_dataset(name: str) -> Callable[[Callable[..., Dataset]], Callable[..., Dataset]]:
    def deco(fn: Callable[..., Dataset]) -> Callable[..., Dataset]:
        DATASETS.add(name, fn)
        return fn

    return deco


def unknown_dataset(name: str) -> NNGeoError:
    return NNGeoError(
        f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))}, "
        "permuted:<base>:<seed>, split:<base>:<classes>"
    )
