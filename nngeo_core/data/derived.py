"""Tasks derived from a registered dataset, for continual learning.

``permuted:<base>:<seed>``  the base inputs under one fixed permutation of pixel positions
                            (the same for every channel; of the features for vector inputs),
                            drawn from ``<seed>``; labels unchanged.
``split:<base>:<classes>``  only the listed classes of the base, relabelled 0..k-1 in the order
                            listed; ``<classes>`` is e.g. ``0-4``, ``0,1,2`` or ``0-2,7``.
                            ``meta["classes"][i]`` is the original label of new label i.

The base may itself be derived (``split:permuted:digits:3:0-4``): the last ``:`` field is the
argument, the rest is the base. Loader parameters pass through to the base.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable

import numpy as np
import torch

from ..errors import NNGeoError
from .base import Dataset
from .common import DatasetInfo

PREFIXES = ("permuted", "split")
FORMS = ("permuted:<base>:<seed>", "split:<base>:<classes>")
_CLASS_ITEM = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")


def is_derived(name: str) -> bool:
    return name.split(":", 1)[0] in PREFIXES and ":" in name


def parse(name: str) -> tuple[str, str, str]:
    """``(kind, base, argument)`` of a derived name."""
    kind, _, rest = name.partition(":")
    base, sep, arg = rest.rpartition(":")
    if not sep or not base or not arg:
        form = FORMS[PREFIXES.index(kind)]
        raise NNGeoError(f"cannot read dataset name {name!r}; write it as {form}")
    return kind, base, arg


def permutation_seed(name: str, arg: str) -> int:
    if not arg.strip().isdigit():
        raise NNGeoError(f"in {name!r} the permutation seed {arg!r} must be a non-negative integer")
    return int(arg)


def parse_classes(name: str, arg: str, num_classes: int) -> tuple[int, ...]:
    """Class list of a split name: comma-separated labels or inclusive ranges a-b."""
    classes: list[int] = []
    for item in arg.split(","):
        m = _CLASS_ITEM.match(item)
        if m is None:
            raise NNGeoError(f"in {name!r} cannot read class {item!r}; list classes like 0-4 or 0,1,2 or 0-2,7")
        low = int(m.group(1))
        high = int(m.group(2)) if m.group(2) is not None else low
        if high < low:
            raise NNGeoError(f"in {name!r} the class range {item.strip()!r} runs backwards; write {high}-{low}")
        classes.extend(range(low, high + 1))
    repeated = sorted({c for c in classes if classes.count(c) > 1})
    if repeated:
        raise NNGeoError(f"in {name!r} classes {repeated} are listed more than once")
    outside = [c for c in classes if c >= num_classes]
    if outside:
        raise NNGeoError(f"in {name!r} classes {outside} do not exist; the base has classes 0..{num_classes - 1}")
    if len(classes) < 2:
        raise NNGeoError(f"{name!r} keeps {len(classes)} class; a classification task needs at least two")
    return tuple(classes)


def describe(name: str, params: dict, describe_base: Callable[..., DatasetInfo]) -> DatasetInfo:
    kind, base_name, arg = parse(name)
    base = describe_base(base_name, **params)
    if kind == "permuted":
        seed = permutation_seed(name, arg)
        return dataclasses.replace(
            base, name=name, description=f"{base_name} with its pixels in a fixed order drawn from seed {seed}"
        )
    classes = parse_classes(name, arg, base.num_classes)
    return dataclasses.replace(
        base,
        name=name,
        num_classes=len(classes),
        description=f"{base_name} restricted to classes {list(classes)}, relabelled 0..{len(classes) - 1}",
    )


def load(name: str, seed: int, params: dict, load_base: Callable[..., Dataset]) -> Dataset:
    kind, base_name, arg = parse(name)
    if kind == "permuted":
        perm_seed = permutation_seed(name, arg)  # check the name before loading the base
        return _permuted(name, load_base(base_name, seed=seed, **params), perm_seed)
    return _split(name, arg, load_base(base_name, seed=seed, **params))


def pixel_permutation(input_shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """The permutation of positions: the last two axes for images, the features for vectors."""
    positions = input_shape[0] if len(input_shape) == 1 else math.prod(input_shape[-2:])
    return torch.from_numpy(np.random.default_rng(seed).permutation(positions))


def _permute(x: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    if x.dim() == 2:
        return x[:, perm].contiguous()
    n, shape = x.shape[0], x.shape[1:]
    channels = math.prod(shape[:-2])
    return x.reshape(n, channels, -1)[:, :, perm].reshape(n, *shape).contiguous()


def _permuted(name: str, base: Dataset, perm_seed: int) -> Dataset:
    perm = pixel_permutation(base.input_shape, perm_seed)
    meta = {**base.meta, "base": base.name, "permutation": perm, "permutation_seed": perm_seed}
    if base.input_shape == (2,) and "bounds" in meta:
        # the plotting window follows the axes when the two coordinates swap
        pairs = (meta["bounds"][0:2], meta["bounds"][2:4])
        meta["bounds"] = tuple(pairs[int(perm[0])]) + tuple(pairs[int(perm[1])])
    return Dataset(
        name=name,
        x_train=_permute(base.x_train, perm),
        y_train=base.y_train,
        x_test=_permute(base.x_test, perm),
        y_test=base.y_test,
        input_shape=base.input_shape,
        num_classes=base.num_classes,
        meta=meta,
    )


def _split(name: str, arg: str, base: Dataset) -> Dataset:
    classes = parse_classes(name, arg, base.num_classes)
    relabel = torch.full((base.num_classes,), -1, dtype=torch.int64)
    relabel[list(classes)] = torch.arange(len(classes))

    def keep(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        new = relabel[y]
        mask = new >= 0
        return x[mask], new[mask]

    x_train, y_train = keep(base.x_train, base.y_train)
    x_test, y_test = keep(base.x_test, base.y_test)
    if len(y_train) == 0 or len(y_test) == 0:
        raise NNGeoError(
            f"{name!r} has no {'training' if len(y_train) == 0 else 'test'} examples "
            f"of classes {list(classes)}; load more of {base.name!r} (n_train/n_test)"
        )
    meta = {**base.meta, "base": base.name, "classes": classes}
    if isinstance(base.meta.get("class_names"), (list, tuple)):
        meta["class_names"] = [base.meta["class_names"][c] for c in classes]
    return Dataset(
        name=name,
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        input_shape=base.input_shape,
        num_classes=len(classes),
        meta=meta,
    )
