"""Every registered dataset keeps the Dataset contract.

The cases are built from ``DATASETS``, so a newly registered loader is covered without editing
this file. Datasets that read files (``dataset_info(name).needs_files``) are loaded from small
real files in the published formats, written once per module into a temporary data directory;
a file-based dataset without a writer here fails ``test_every_file_based_dataset_has_fixture_files``.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
import torch

from nngeo_core.data import DATASETS, dataset_info, load


def _file_writers():
    # the format writers live with the unit tests of the loaders (tests/unit/test_data.py)
    path = Path(__file__).resolve().parents[1] / "unit" / "test_data.py"
    spec = importlib.util.spec_from_file_location("_nngeo_dataset_file_writers", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_writers = _file_writers()
FIXTURE_WRITERS = {
    "mnist": lambda root: _writers.write_idx_dataset(root, "mnist"),
    "fashion_mnist": lambda root: _writers.write_idx_dataset(root, "fashion_mnist"),
    "cifar10": lambda root: _writers.write_cifar_dataset(root, "cifar10"),
    "cifar100": lambda root: _writers.write_cifar_dataset(root, "cifar100"),
}

# derived forms and shape-changing parameters on top of every registered name
EXTRA_CASES = [
    ("digits", {"resize": 28}),
    ("permuted:digits:1", {}),
    ("split:digits:0-4", {}),
    ("split:permuted:digits:2:5,7,9", {"resize": 16}),
    ("permuted:xor:1", {}),
    ("permuted:mnist:4", {}),
    ("split:cifar10:0-4", {}),
]
CASES = [(name, {}) for name in sorted(DATASETS)] + EXTRA_CASES


@pytest.fixture(scope="module")
def fixture_data_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("nngeo_data")
    for write in FIXTURE_WRITERS.values():
        write(root)
    return root


@pytest.fixture
def offline(fixture_data_dir, monkeypatch) -> Path:
    monkeypatch.setenv("NNGEO_DATA_DIR", str(fixture_data_dir))
    monkeypatch.setenv("NNGEO_DOWNLOAD", "0")
    return fixture_data_dir


def _case_id(case) -> str:
    name, params = case
    return name + "".join(f"-{k}={v}" for k, v in params.items())


def test_every_file_based_dataset_has_fixture_files():
    file_based = {name for name in DATASETS if dataset_info(name).needs_files}
    assert file_based <= set(FIXTURE_WRITERS), f"write fixture files for {sorted(file_based - set(FIXTURE_WRITERS))}"


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_dataset_contract(case, offline):
    name, params = case
    info = dataset_info(name, **params)
    ds = load(name, seed=0, **params)

    assert ds.name == name
    assert ds.input_shape == info.input_shape and ds.num_classes == info.num_classes >= 2
    for x, y in ((ds.x_train, ds.y_train), (ds.x_test, ds.y_test)):
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert tuple(x.shape[1:]) == info.input_shape and len(x) > 0
        assert y.shape == (len(x),)
        assert int(y.min()) >= 0 and int(y.max()) < info.num_classes
        assert torch.isfinite(x).all()
        if not info.is_2d:  # images are intensities in [0, 1]
            assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0

    if info.is_2d:
        xmin, xmax, ymin, ymax = ds.meta["bounds"]
        assert all(math.isfinite(b) for b in (xmin, xmax, ymin, ymax)) and xmin < xmax and ymin < ymax

    again = load(name, seed=0, **params)
    for a, b in (
        (ds.x_train, again.x_train),
        (ds.y_train, again.y_train),
        (ds.x_test, again.x_test),
        (ds.y_test, again.y_test),
    ):
        assert torch.equal(a, b)

    if not info.needs_files:
        # generated or split by the seed: another seed gives other data
        other = load(name, seed=1, **params)
        assert not (
            torch.equal(ds.x_train, other.x_train)
            and torch.equal(ds.x_test, other.x_test)
            and torch.equal(ds.y_train, other.y_train)
        )
