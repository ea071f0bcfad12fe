"""The dataset registry: ``load`` a dataset by spec or name, ``list_datasets`` and
``dataset_info`` (shape and classes without loading any data) for pickers.

Registered: xor, sinusoid, moons, circles, spirals (2-D, generated from the seed), digits
(scikit-learn's 8×8 digits, offline), mnist, fashion_mnist, cifar10, cifar100 (data directory,
see ``vision``), and the derived forms ``permuted:<base>:<seed>`` and ``split:<base>:<classes>``.
Every loader returns float32 inputs and int64 labels, and the same data for the same seed.
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import NNGeoError
from ..specs import DataSpec
from . import derived, digits, toy2d, user, vision
from .base import DATASETS, Dataset, register_dataset, unknown_dataset
from .common import DESCRIBERS, DatasetInfo, as_seed, check_param_names, loader_defaults

DERIVED_FORMS = derived.FORMS
# the loader modules: each registers its datasets in DATASETS when imported (here, so imports run
# one way: this package -> loaders -> base)
LOADER_MODULES = (digits, toy2d, vision)
# the user's own datasets (``nngeo data add``): registered from their manifests when first asked for
DATASETS.missing = user.find_missing

__all__ = [
    "DATASETS",
    "DERIVED_FORMS",
    "Dataset",
    "DatasetInfo",
    "dataset_info",
    "list_datasets",
    "load",
    "register_dataset",
    "unknown_dataset",
]


def load(spec: DataSpec | str, seed: Any = None, **params: Any) -> Dataset:
    """Load a dataset from a ``DataSpec``, or from a name with ``seed`` (default 0) and params.

    ``meta["spec"]`` of the result is the ``DataSpec`` that names exactly this data.
    """
    if isinstance(spec, DataSpec):
        if seed is not None or params:
            raise NNGeoError("load() takes either a DataSpec or a name with seed and params, not both")
        name, seed, params = spec.name, spec.seed, dict(spec.params)
    elif isinstance(spec, str):
        name, seed = spec, 0 if seed is None else seed
    else:
        raise NNGeoError(f"load() needs a DataSpec or a dataset name, got a {type(spec).__name__}")
    seed = as_seed(seed)
    ds = _load_name(name, seed=seed, **params)
    ds.meta["spec"] = DataSpec(name=name, seed=seed, params=dict(params))
    return ds


def _load_name(name: str, *, seed: int, **params: Any) -> Dataset:
    if derived.is_derived(name):
        ds = derived.load(name, seed, params, _load_name)
    else:
        fn = DATASETS.find(name)
        if fn is None:
            raise unknown_dataset(name)
        check_param_names(name, fn, params)
        ds = fn(seed=seed, **params)
    _check_loaded(name, ds)
    return ds


def _check_loaded(name: str, ds: Dataset) -> None:
    """Hold every loader (including ones registered elsewhere) to the Dataset contract."""
    problems = []
    for part, x, y in (("train", ds.x_train, ds.y_train), ("test", ds.x_test, ds.y_test)):
        if x.dtype != torch.float32 or y.dtype != torch.int64:
            problems.append(f"{part} dtypes are {x.dtype}/{y.dtype}, not float32/int64")
        elif tuple(x.shape[1:]) != tuple(ds.input_shape) or y.shape != (x.shape[0],):
            problems.append(
                f"{part} shapes {tuple(x.shape)}/{tuple(y.shape)} do not match input_shape {tuple(ds.input_shape)}"
            )
        elif len(y) and (int(y.min()) < 0 or int(y.max()) >= ds.num_classes):
            problems.append(f"{part} labels lie outside 0..{ds.num_classes - 1}")
    if problems:
        raise NNGeoError(f"dataset {name!r} is malformed: {'; '.join(problems)}")


def list_datasets() -> list[str]:
    """Registered dataset names, the user's own included (the derived forms are in ``DERIVED_FORMS``)."""
    user.register_user_datasets()
    return sorted(DATASETS)


def dataset_info(name: str, **params: Any) -> DatasetInfo:
    """Input shape, number of classes and description of a dataset, without loading its data.

    ``params`` matter where they change the shape (``digits`` with ``resize``). A loader
    registered elsewhere with plain ``register_dataset`` declares nothing, so for those the
    dataset is loaded once (seed 0) to read its shape.
    """
    if not isinstance(name, str):
        raise NNGeoError(f"a dataset name must be a string, got a {type(name).__name__}")
    if derived.is_derived(name):
        return derived.describe(name, params, dataset_info)
    fn = DATASETS.find(name)
    if fn is None:
        raise unknown_dataset(name)
    describe = DESCRIBERS.get(name)
    if describe is not None and describe.loader is fn:
        return describe(params)
    ds = _load_name(name, seed=0, **params)
    return DatasetInfo(
        name=name,
        input_shape=tuple(ds.input_shape),
        num_classes=ds.num_classes,
        description=str(ds.meta.get("description", (fn.__doc__ or name).strip().splitlines()[0])),
        needs_files=False,
        defaults=loader_defaults(fn),
    )
