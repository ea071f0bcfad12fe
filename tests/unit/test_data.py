"""Unit tests of the dataset registry (nngeo_core.data).

Toy tasks are checked against their closed-form geometry, digits against scikit-learn's raw
array and scipy's bilinear zoom, and the image datasets against small real files written here
in the published formats (IDX for MNIST/Fashion-MNIST, pickled batches for CIFAR), read back
through the real loaders (torchvision's for IDX).
"""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch

from nngeo_core.data import DATASETS, dataset_info, list_datasets, load, unknown_dataset
from nngeo_core.errors import NNGeoError
from nngeo_core.specs import DataSpec

# ------------------------------------------------------------------ file writers (also used
# by tests/conformance/test_datasets.py)

IDX_IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions
IDX_LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension
IDX_FOLDERS = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}
CIFAR_LAYOUT = {  # name: folder, train files, test files, label key
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], b"labels"),
    "cifar100": ("cifar-100-python", ["train"], ["test"], b"fine_labels"),
}


def write_idx(path: Path, array: np.ndarray, magic: int, *, compress: bool = False) -> None:
    """An IDX file: big-endian magic, big-endian dimension sizes, then the raw bytes."""
    header = struct.pack(f">I{array.ndim}I", magic, *array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if compress:
        path.with_name(path.name + ".gz").write_bytes(gzip.compress(payload))
    else:
        path.write_bytes(payload)


def write_idx_dataset(
    root: Path, name: str, *, n_train: int = 30, n_test: int = 20, seed: int = 0, compress: bool = False
) -> dict[str, np.ndarray]:
    """Random 28×28 images and labels cycling through 0..9, as the four MNIST files."""
    rng = np.random.default_rng(seed)
    raw = root / IDX_FOLDERS[name] / "raw"
    arrays = {}
    for part, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.permutation(np.arange(n) % 10).astype(np.uint8)
        write_idx(raw / f"{part}-images-idx3-ubyte", images, IDX_IMAGES_MAGIC, compress=compress)
        write_idx(raw / f"{part}-labels-idx1-ubyte", labels, IDX_LABELS_MAGIC, compress=compress)
        arrays[f"{part}_images"], arrays[f"{part}_labels"] = images, labels
    return arrays


def write_cifar_dataset(
    root: Path, name: str, *, per_file: int = 12, seed: int = 0, protocol: int = pickle.DEFAULT_PROTOCOL
) -> dict[str, np.ndarray]:
    """CIFAR python batches: a pickled dict with b'data' (N×3072 uint8, the red plane, then
    green, then blue, each row-major) and the labels as a list of ints."""
    folder, train_files, test_files, label_key = CIFAR_LAYOUT[name]
    num_classes = 10 if name == "cifar10" else 100
    rng = np.random.default_rng(seed)
    (root / folder).mkdir(parents=True, exist_ok=True)
    out = {}
    for part, files in (("train", train_files), ("test", test_files)):
        datas, labels = [], []
        for file in files:
            data = rng.integers(0, 256, size=(per_file, 3072), dtype=np.uint8)
            y = [int(v) for v in rng.integers(0, num_classes, size=per_file)]
            batch = {b"data": data, label_key: y, b"batch_label": file.encode()}
            if name == "cifar100":
                batch[b"coarse_labels"] = [v // 5 for v in y]
            with open(root / folder / file, "wb") as f:
                pickle.dump(batch, f, protocol=protocol)
            datas.append(data)
            labels.extend(y)
        out[f"{part}_data"], out[f"{part}_labels"] = np.concatenate(datas), np.array(labels)
    if name == "cifar100":
        with open(root / folder / "meta", "wb") as f:
            pickle.dump({b"fine_label_names": [f"class{i}".encode() for i in range(100)]}, f, protocol=protocol)
    return out


def write_all_vision(root: Path) -> None:
    for name in IDX_FOLDERS:
        write_idx_dataset(root, name)
    for name in CIFAR_LAYOUT:
        write_cifar_dataset(root, name)


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "data"
    monkeypatch.setenv("NNGEO_DATA_DIR", str(root))
    monkeypatch.setenv("NNGEO_DOWNLOAD", "0")
    return root


def one_line_error(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message and message.strip() == message and message
    return message


# ------------------------------------------------------------------ registry and load()


def test_list_datasets_names_every_registered_loader():
    names = list_datasets()
    assert names == sorted(DATASETS)
    for expected in (
        "xor",
        "sinusoid",
        "moons",
        "circles",
        "spirals",
        "digits",
        "mnist",
        "fashion_mnist",
        "cifar10",
        "cifar100",
    ):
        assert expected in names


def test_load_by_spec_equals_load_by_name():
    spec = DataSpec(name="moons", seed=3, params={"n_train": 50, "n_test": 40, "noise": 0.2})
    a = load(spec)
    b = load("moons", seed=3, n_train=50, n_test=40, noise=0.2)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    assert a.meta["spec"] == spec and a.meta["spec"].hash == b.meta["spec"].hash


def test_integral_floats_load_like_ints_as_the_spec_hash_treats_them():
    a = load("xor", seed=2, n_train=100, n_test=10)
    b = load("xor", 2.0, n_train=100.0, n_test=10)
    assert torch.equal(a.x_train, b.x_train)
    assert a.meta["spec"].hash == b.meta["spec"].hash


def test_unknown_dataset_names_the_known_ones():
    with pytest.raises(NNGeoError) as e:
        load("nope")
    assert one_line_error(e) == str(unknown_dataset("nope"))
    with pytest.raises(NNGeoError) as e:
        dataset_info("nope")
    assert "'nope'" in one_line_error(e) and "digits" in str(e.value)


@pytest.mark.parametrize(
    "call, fragment",
    [
        (lambda: load("xor", n_train=0), "n_train"),
        (lambda: load("xor", n_train=1.5), "n_train"),
        (lambda: load("xor", n_train="10"), "n_train"),
        (lambda: load("xor", n_test=True), "n_test"),
        (lambda: load("xor", noise=-0.1), "noise"),
        (lambda: load("xor", noise=float("nan")), "noise"),
        (lambda: load("xor", seed=-1), "seed"),
        (lambda: load("xor", seed="a"), "seed"),
        (lambda: load("xor", widths=3), "widths"),
        (lambda: load("circles", factor=1.0), "factor"),
        (lambda: load("spirals", turns=0), "turns"),
        (lambda: load("digits", resize=0), "resize"),
        (lambda: load("digits", test_fraction=1.0), "test_fraction"),
        (lambda: load("digits", n_train=5000), "n_train"),
        (lambda: load(DataSpec(name="xor"), seed=1), "DataSpec"),
        (lambda: load(3), "int"),
        (lambda: dataset_info("digits", resize=-3), "resize"),
        (lambda: dataset_info("xor", colour=1), "colour"),
    ],
)
def test_bad_parameters_give_one_line_errors(call, fragment):
    with pytest.raises(NNGeoError) as e:
        call()
    assert fragment in one_line_error(e)


def test_unknown_parameter_error_lists_the_real_ones():
    with pytest.raises(NNGeoError) as e:
        load("moons", widths=3)
    assert "n_train" in str(e.value) and "noise" in str(e.value)


def test_dataset_info_reads_no_data(monkeypatch, data_dir):
    import sklearn.datasets

    import nngeo_core.data.digits

    def refuse(*a, **k):
        raise AssertionError("dataset_info must not load data")

    monkeypatch.setattr(sklearn.datasets, "load_digits", refuse)
    monkeypatch.setattr(nngeo_core.data.digits, "_digits_arrays", refuse)  # the in-process cache
    assert dataset_info("digits").input_shape == (1, 8, 8)
    assert dataset_info("digits", resize=28).input_shape == (1, 28, 28)
    info = dataset_info("split:permuted:digits:3:0-2,7", resize=28)
    assert info.input_shape == (1, 28, 28) and info.num_classes == 4
    assert dataset_info("mnist").input_shape == (1, 28, 28)  # no files in data_dir
    assert dataset_info("cifar100").num_classes == 100 and dataset_info("cifar100").needs_files
    xor = dataset_info("xor")
    assert xor.is_2d and xor.num_classes == 2 and xor.defaults["n_train"] == 1000 and xor.description


def test_dataset_info_matches_the_loaded_data():
    for name, params in (("xor", {}), ("digits", {"resize": 12}), ("split:digits:1,5,9", {})):
        info, ds = dataset_info(name, **params), load(name, **params)
        assert info.input_shape == ds.input_shape == tuple(ds.x_train.shape[1:])
        assert info.num_classes == ds.num_classes


def test_loader_registered_elsewhere_is_loaded_and_checked():
    from nngeo_core.data import register_dataset

    @register_dataset("_test_float64")
    def bad(seed=0, *, n=4):
        ds = load("xor", seed=seed, n_train=n, n_test=n)
        ds.x_train = ds.x_train.double()
        return ds

    try:
        with pytest.raises(NNGeoError) as e:
            load("_test_float64")
        assert "float32" in one_line_error(e)
        with pytest.raises(NNGeoError):
            load("_test_float64", m=1)
    finally:
        DATASETS.pop("_test_float64")


# ------------------------------------------------------------------ 2-D toy tasks

TOY = ("xor", "sinusoid", "moons", "circles", "spirals")


@pytest.mark.parametrize("name", TOY)
def test_toy_sizes_dtypes_and_bounds(name):
    ds = load(name, seed=1, n_train=300, n_test=200)
    assert ds.x_train.shape == (300, 2) and ds.x_test.shape == (200, 2)
    assert ds.x_train.dtype == torch.float32 and ds.y_train.dtype == torch.int64
    xmin, xmax, ymin, ymax = ds.meta["bounds"]
    x = torch.cat([ds.x_train, ds.x_test])
    assert (x[:, 0] >= xmin).all() and (x[:, 0] <= xmax).all()
    assert (x[:, 1] >= ymin).all() and (x[:, 1] <= ymax).all()
    # both classes present and roughly balanced
    share = torch.cat([ds.y_train, ds.y_test]).float().mean().item()
    assert 0.35 < share < 0.65


def test_xor_labels_are_the_sign_product_and_blobs_have_the_requested_spread():
    ds = load("xor", seed=4, n_train=4000, n_test=10, noise=0.1)
    x = ds.x_train.double()
    assert torch.equal(ds.y_train, (x[:, 0] * x[:, 1] > 0).long())
    # at noise 0.1 no point crosses an axis, so |x| - 1 is the blob noise itself
    offsets = (x.abs() - 1.0).flatten()
    assert abs(offsets.mean().item()) < 0.01
    assert abs(offsets.std().item() - 0.1) < 0.01
    # with wider blobs points cross the axes, and still take the label of where they lie
    wide = load("xor", seed=4, n_train=2000, n_test=10, noise=0.6)
    assert torch.equal(wide.y_train, (wide.x_train[:, 0] * wide.x_train[:, 1] > 0).long())
    # the four quadrants are (about) equally used
    quadrant = (x[:, 0] > 0).long() * 2 + (x[:, 1] > 0).long()
    counts = torch.bincount(quadrant, minlength=4).double() / len(x)
    assert (counts - 0.25).abs().max() < 0.04


def test_sinusoid_labels_follow_the_curve():
    ds = load("sinusoid", seed=5, n_train=3000, n_test=500)
    x = ds.x_train.double()
    assert x.min() >= -1 and x.max() <= 1
    above = (x[:, 1] > 0.6 * torch.sin(7 * x[:, 0] - 1)).long()
    assert torch.equal(ds.y_train, above)
    noisy = load("sinusoid", seed=5, n_train=3000, n_test=500, noise=0.2)
    assert torch.equal(noisy.x_train, ds.x_train)  # the jitter moves labels, not points
    flipped = (noisy.y_train != ds.y_train).float().mean().item()
    assert 0.01 < flipped < 0.3


def test_moons_without_noise_lie_on_their_half_circles():
    ds = load("moons", seed=0, n_train=400, n_test=10, noise=0.0)
    x, y = ds.x_train.double(), ds.y_train
    upper, lower = x[y == 0], x[y == 1]
    # class 0: unit circle about (0, 0), upper half; class 1: unit circle about (1, 0.5), lower half
    assert torch.allclose(upper.norm(dim=1), torch.ones(len(upper), dtype=torch.float64), atol=1e-6)
    assert (upper[:, 1] >= -1e-6).all()
    centred = lower - torch.tensor([1.0, 0.5], dtype=torch.float64)
    assert torch.allclose(centred.norm(dim=1), torch.ones(len(lower), dtype=torch.float64), atol=1e-6)
    assert (centred[:, 1] <= 1e-6).all()


def test_circles_without_noise_have_radius_one_and_factor():
    ds = load("circles", seed=0, n_train=400, n_test=10, noise=0.0, factor=0.3)
    r = ds.x_train.double().norm(dim=1)
    assert torch.allclose(r[ds.y_train == 0], torch.tensor(1.0, dtype=torch.float64), atol=1e-6)
    assert torch.allclose(r[ds.y_train == 1], torch.tensor(0.3, dtype=torch.float64), atol=1e-6)


def test_spirals_without_noise_lie_on_their_arms():
    turns = 2.0
    ds = load("spirals", seed=0, n_train=500, n_test=10, noise=0.0, turns=turns)
    x, y = ds.x_train.double(), ds.y_train.double()
    r = x.norm(dim=1)
    assert r.max() <= 1 + 1e-6
    angle = torch.atan2(x[:, 1], x[:, 0])
    # r = t and θ = 2π·turns·t + π·class, so the angle left over is a multiple of 2π
    residual = torch.remainder(angle - 2 * np.pi * turns * r - np.pi * y + np.pi, 2 * np.pi) - np.pi
    assert residual.abs().max() < 1e-4
    assert ds.y_train.float().mean().item() == pytest.approx(0.5, abs=0.05)


@pytest.mark.parametrize("name", TOY)
def test_toy_train_and_test_are_different_points(name):
    ds = load(name, seed=0, n_train=200, n_test=200)
    assert not torch.equal(ds.x_train, ds.x_test)


# ------------------------------------------------------------------ digits


def _sklearn_digits():
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.images.astype(np.float64) / 16.0, bunch.target


def _sorted_rows(a: np.ndarray) -> np.ndarray:
    flat = a.reshape(len(a), -1)
    return flat[np.lexsort(flat.T[::-1])]


def test_digits_split_is_a_stratified_partition_of_sklearn_digits():
    images, labels = _sklearn_digits()
    ds = load("digits", seed=7)
    assert ds.x_train.shape[1:] == (1, 8, 8) and ds.num_classes == 10
    assert len(ds.y_train) + len(ds.y_test) == len(labels)
    assert abs(len(ds.y_test) - 0.25 * len(labels)) <= 1
    assert ds.x_train.min() >= 0 and ds.x_train.max() == 1.0
    # the two parts together are exactly the 1797 images (as a multiset of image+label rows)
    ours = np.concatenate(
        [
            np.concatenate([ds.x_train.flatten(1).double().numpy(), ds.y_train[:, None].numpy()], axis=1),
            np.concatenate([ds.x_test.flatten(1).double().numpy(), ds.y_test[:, None].numpy()], axis=1),
        ]
    )
    theirs = np.concatenate([images.reshape(len(images), -1), labels[:, None]], axis=1)
    np.testing.assert_allclose(_sorted_rows(ours), _sorted_rows(theirs), atol=1e-7)
    # stratified: each class's test count is within one of its share
    total = np.bincount(labels, minlength=10)
    test = np.bincount(ds.y_test.numpy(), minlength=10)
    assert np.all(np.abs(test - 0.25 * total) <= 1)


def test_digits_seed_changes_the_split():
    a, b = load("digits", seed=0), load("digits", seed=1)
    assert not torch.equal(a.y_test, b.y_test)


def test_digits_resize_is_bilinear_with_half_pixel_centres():
    from scipy import ndimage

    small, big = load("digits", seed=3), load("digits", seed=3, resize=28)
    assert big.input_shape == (1, 28, 28) and torch.equal(small.y_train, big.y_train)
    for i in range(5):
        # scipy's zoom with grid_mode=True and edge replication is the same convention
        expected = ndimage.zoom(small.x_train[i, 0].double().numpy(), 28 / 8, order=1, grid_mode=True, mode="nearest")
        np.testing.assert_allclose(big.x_train[i, 0].numpy(), expected, atol=1e-6)
    assert big.x_train.min() >= 0 and big.x_train.max() <= 1


def test_digits_subsample_is_seeded_subset():
    full = load("digits", seed=2)
    sub = load("digits", seed=2, n_train=100, n_test=30)
    again = load("digits", seed=2, n_train=100, n_test=30)
    assert sub.x_train.shape == (100, 1, 8, 8) and sub.x_test.shape == (30, 1, 8, 8)
    assert torch.equal(sub.x_train, again.x_train)
    rows = {tuple(r) for r in full.x_train.flatten(1).tolist()}
    assert all(tuple(r) in rows for r in sub.x_train.flatten(1).tolist())


# ------------------------------------------------------------------ derived tasks


def test_permuted_moves_pixels_the_same_way_everywhere():
    base = load("digits", seed=1, resize=12)
    perm = load("permuted:digits:5", seed=1, resize=12)
    assert perm.input_shape == (1, 12, 12) and torch.equal(perm.y_train, base.y_train)
    # every image keeps its pixel values, only their places change
    assert torch.equal(perm.x_train.flatten(1).sort(dim=1).values, base.x_train.flatten(1).sort(dim=1).values)
    p = perm.meta["permutation"]
    assert sorted(p.tolist()) == list(range(144)) and not torch.equal(p, torch.arange(144))
    assert torch.equal(perm.x_train.flatten(1), base.x_train.flatten(1)[:, p])
    assert torch.equal(perm.x_test.flatten(1), base.x_test.flatten(1)[:, p])
    other = load("permuted:digits:6", seed=1, resize=12)
    assert not torch.equal(other.meta["permutation"], p)
    again = load("permuted:digits:5", seed=1, resize=12)
    assert torch.equal(again.meta["permutation"], p)


def test_permuted_colour_images_move_whole_pixels(data_dir):
    write_cifar_dataset(data_dir, "cifar10")
    base, perm = load("cifar10"), load("permuted:cifar10:2")
    p = perm.meta["permutation"]
    assert len(p) == 32 * 32
    assert torch.equal(perm.x_train.flatten(2), base.x_train.flatten(2)[:, :, p])


def test_permuted_2d_swaps_bounds_with_the_axes():
    base = load("xor", noise=0.1)
    for seed in range(6):
        perm = load(f"permuted:xor:{seed}", noise=0.1)
        p = perm.meta["permutation"].tolist()
        pairs = (base.meta["bounds"][0:2], base.meta["bounds"][2:4])
        assert perm.meta["bounds"] == pairs[p[0]] + pairs[p[1]]


def test_split_keeps_and_relabels_the_listed_classes():
    base = load("digits", seed=0)
    ds = load("split:digits:7,2-3", seed=0)
    assert ds.meta["classes"] == (7, 2, 3) and ds.num_classes == 3
    assert ds.meta["class_names"] == ["7", "2", "3"]
    original = torch.tensor([7, 2, 3])
    for x, y, bx, by in (
        (ds.x_train, ds.y_train, base.x_train, base.y_train),
        (ds.x_test, ds.y_test, base.x_test, base.y_test),
    ):
        mask = (by == 7) | (by == 2) | (by == 3)
        assert torch.equal(x, bx[mask])
        assert torch.equal(original[y], by[mask])
    assert set(ds.y_train.tolist()) == {0, 1, 2}


def test_split_range_and_nesting():
    ds = load("split:digits:0-4", resize=28)
    assert ds.meta["classes"] == (0, 1, 2, 3, 4) and ds.input_shape == (1, 28, 28)
    nested = load("split:permuted:digits:3:5-9")
    perm = load("permuted:digits:3")
    assert torch.equal(nested.x_train, perm.x_train[perm.y_train >= 5])
    assert torch.equal(nested.y_train, perm.y_train[perm.y_train >= 5] - 5)


@pytest.mark.parametrize(
    "name, fragment",
    [
        ("split:digits:0-10", "do not exist"),
        ("split:digits:4-2", "backwards"),
        ("split:digits:a", "cannot read class"),
        ("split:digits:1,1", "more than once"),
        ("split:digits:3", "at least two"),
        ("split:digits:", "split:<base>:<classes>"),
        ("split:digits", "split:<base>:<classes>"),
        ("permuted:digits:x", "permutation seed"),
        ("permuted:digits:-1", "permutation seed"),
        ("permuted:nope:1", "unknown dataset 'nope'"),
        ("split:nope:0-1", "unknown dataset 'nope'"),
        ("digits:0-1", "unknown dataset 'digits:0-1'"),
    ],
)
def test_bad_derived_names(name, fragment):
    with pytest.raises(NNGeoError) as e:
        load(name)
    assert fragment in one_line_error(e)
    with pytest.raises(NNGeoError):
        dataset_info(name)


def test_split_with_no_examples_left_says_so():
    only = load("digits", n_test=1).y_test.item()
    others = [c for c in range(10) if c != only][:2]
    with pytest.raises(NNGeoError) as e:
        load(f"split:digits:{others[0]},{others[1]}", n_test=1)
    assert "no test examples" in one_line_error(e)


# ------------------------------------------------------------------ MNIST-format files


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_idx_files_load_through_torchvision(data_dir, name):
    arrays = write_idx_dataset(data_dir, name, n_train=30, n_test=20)
    ds = load(name)
    assert ds.input_shape == (1, 28, 28) and ds.num_classes == 10
    assert ds.x_train.dtype == torch.float32 and ds.y_train.dtype == torch.int64
    np.testing.assert_array_equal(ds.x_train[:, 0].numpy(), arrays["train_images"] / np.float32(255))
    np.testing.assert_array_equal(ds.x_test[:, 0].numpy(), arrays["t10k_images"] / np.float32(255))
    np.testing.assert_array_equal(ds.y_train.numpy(), arrays["train_labels"])
    np.testing.assert_array_equal(ds.y_test.numpy(), arrays["t10k_labels"])
    assert len(ds.meta["class_names"]) == 10


def test_idx_subsample_is_seeded_and_ordered(data_dir):
    arrays = write_idx_dataset(data_dir, "mnist", n_train=40, n_test=20)
    a = load("mnist", seed=1, n_train=10, n_test=5)
    b = load("mnist", seed=1, n_train=10, n_test=5)
    c = load("mnist", seed=2, n_train=10, n_test=5)
    assert a.x_train.shape == (10, 1, 28, 28) and a.x_test.shape == (5, 1, 28, 28)
    assert torch.equal(a.x_train, b.x_train) and not torch.equal(a.x_train, c.x_train)
    flat = arrays["train_images"].reshape(40, -1)
    found = [
        int(np.flatnonzero((flat == (r * 255).round()).all(axis=1))[0]) for r in a.x_train.flatten(1).double().numpy()
    ]
    assert found == sorted(found) and len(set(found)) == 10
    np.testing.assert_array_equal(a.y_train.numpy(), arrays["train_labels"][found])
    with pytest.raises(NNGeoError) as e:
        load("mnist", n_train=41)
    assert "n_train=41" in one_line_error(e)


def test_gzipped_idx_files_are_decompressed(data_dir):
    arrays = write_idx_dataset(data_dir, "mnist", compress=True)
    raw = data_dir / "MNIST" / "raw"
    assert not (raw / "train-images-idx3-ubyte").exists()
    ds = load("mnist")
    np.testing.assert_array_equal(ds.y_test.numpy(), arrays["t10k_labels"])
    assert (raw / "train-images-idx3-ubyte").is_file()


@pytest.mark.parametrize("name, folder", [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_missing_idx_files_with_downloads_off_say_where_to_put_them(data_dir, name, folder):
    with pytest.raises(NNGeoError) as e:
        load(name)
    message = one_line_error(e)
    assert str(data_dir / folder / "raw") in message
    assert "train-images-idx3-ubyte" in message and "t10k-labels-idx1-ubyte" in message
    assert "NNGEO_DOWNLOAD=1" in message


def test_partly_missing_idx_files_name_only_the_missing_ones(data_dir):
    write_idx_dataset(data_dir, "mnist")
    (data_dir / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(NNGeoError) as e:
        load("mnist")
    message = one_line_error(e)
    assert "t10k-labels-idx1-ubyte" in message and "train-images-idx3-ubyte" not in message


def test_failed_download_is_one_line(data_dir, monkeypatch):
    import torchvision.datasets

    def no_network(self):
        raise RuntimeError(
            "Error downloading train-images-idx3-ubyte.gz:\nTried https://x, got:\n"
            "<urlopen error [Errno -3] Temporary failure in name resolution>\n"
        )

    monkeypatch.setattr(torchvision.datasets.MNIST, "download", no_network)
    monkeypatch.setenv("NNGEO_DOWNLOAD", "1")
    with pytest.raises(NNGeoError) as e:
        load("mnist")
    message = one_line_error(e)
    assert "download failed" in message and "name resolution" in message
    assert str(data_dir / "MNIST" / "raw") in message


def test_download_is_used_when_allowed(data_dir, monkeypatch):
    import torchvision.datasets

    calls = []

    def fake_download(self):  # stands in for the network: writes the files torchvision would
        calls.append(self.raw_folder)
        write_idx_dataset(data_dir, "fashion_mnist")

    monkeypatch.setattr(torchvision.datasets.FashionMNIST, "download", fake_download)
    monkeypatch.setenv("NNGEO_DOWNLOAD", "1")
    assert load("fashion_mnist").x_train.shape == (30, 1, 28, 28)
    assert calls == [str(data_dir / "FashionMNIST" / "raw")]


def test_corrupt_idx_file_is_one_line(data_dir):
    write_idx_dataset(data_dir, "mnist")
    (data_dir / "MNIST" / "raw" / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x00\x00garbage")
    with pytest.raises(NNGeoError) as e:
        load("mnist")
    assert "could not be read" in one_line_error(e)


def test_idx_images_of_the_wrong_size_are_refused(data_dir):
    write_idx_dataset(data_dir, "mnist")
    raw = data_dir / "MNIST" / "raw"
    write_idx(raw / "train-images-idx3-ubyte", np.zeros((30, 20, 20), np.uint8), IDX_IMAGES_MAGIC)
    with pytest.raises(NNGeoError) as e:
        load("mnist")
    assert "28×28" in one_line_error(e)


# ------------------------------------------------------------------ CIFAR batches


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_batches_load_in_channel_plane_order(data_dir, name, protocol):
    arrays = write_cifar_dataset(data_dir, name, protocol=protocol)
    ds = load(name)
    assert ds.input_shape == (3, 32, 32) and ds.num_classes == (10 if name == "cifar10" else 100)
    n_train = len(arrays["train_labels"])
    assert ds.x_train.shape == (n_train, 3, 32, 32) and ds.x_test.shape == (12, 3, 32, 32)
    rng = np.random.default_rng(0)
    for _ in range(50):  # pixel (c, i, j) of image n is byte c·1024 + i·32 + j of row n
        n, c, i, j = rng.integers(0, n_train), rng.integers(0, 3), rng.integers(0, 32), rng.integers(0, 32)
        assert ds.x_train[n, c, i, j].item() == pytest.approx(arrays["train_data"][n, c * 1024 + i * 32 + j] / 255)
    np.testing.assert_array_equal(ds.y_train.numpy(), arrays["train_labels"])
    np.testing.assert_array_equal(ds.y_test.numpy(), arrays["test_labels"])
    assert ds.x_train.min() >= 0 and ds.x_train.max() <= 1
    names = ds.meta["class_names"]
    assert len(names) == ds.num_classes and (name == "cifar10" or names[3] == "class3")


@pytest.mark.parametrize("name, folder", [("cifar10", "cifar-10-batches-py"), ("cifar100", "cifar-100-python")])
def test_missing_cifar_says_where_to_put_it(data_dir, name, folder):
    with pytest.raises(NNGeoError) as e:
        load(name)
    message = one_line_error(e)
    assert str(data_dir / folder) in message and "NNGEO_DOWNLOAD=1" in message


def test_failed_cifar_download_is_one_line(data_dir, monkeypatch):
    import torchvision.datasets

    def no_network(self):
        raise URLError("[Errno 101] Network is unreachable")

    monkeypatch.setattr(torchvision.datasets.CIFAR10, "download", no_network)
    monkeypatch.setenv("NNGEO_DOWNLOAD", "1")
    with pytest.raises(NNGeoError) as e:
        load("cifar10")
    message = one_line_error(e)
    assert "download failed" in message and "URLError" in message and "unreachable" in message


class _Planted:
    """A pickle that would create a file when loaded by an unrestricted unpickler."""

    def __init__(self, target: Path):
        self.target = target

    def __reduce__(self):
        return (Path.touch, (self.target,))


def test_cifar_pickle_cannot_run_code(data_dir):
    write_cifar_dataset(data_dir, "cifar10")
    marker = data_dir / "planted"
    with open(data_dir / "cifar-10-batches-py" / "data_batch_3", "wb") as f:
        pickle.dump({b"data": _Planted(marker), b"labels": []}, f)
    with pytest.raises(NNGeoError) as e:
        load("cifar10")
    assert "refusing" in one_line_error(e) and "data_batch_3" in str(e.value)
    assert not marker.exists()


def test_cifar_batch_with_wrong_layout_is_refused(data_dir):
    write_cifar_dataset(data_dir, "cifar10")
    with open(data_dir / "cifar-10-batches-py" / "test_batch", "wb") as f:
        pickle.dump({b"data": np.zeros((4, 100), np.uint8), b"labels": [0, 1, 2, 3]}, f)
    with pytest.raises(NNGeoError) as e:
        load("cifar10")
    assert "test_batch" in one_line_error(e)
    with open(data_dir / "cifar-10-batches-py" / "test_batch", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, f)
    with pytest.raises(NNGeoError) as e:
        load("cifar10")
    assert "0..9" in one_line_error(e)
