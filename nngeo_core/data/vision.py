"""Image datasets read from the data directory (``get_settings().data_dir``, env NNGEO_DATA_DIR).

Layout (the one torchvision uses, so a torchvision download can be pointed at directly):

    <data_dir>/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte          mnist
    <data_dir>/FashionMNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte   fashion_mnist
    <data_dir>/cifar-10-batches-py/{data_batch_1..5,test_batch}                 cifar10
    <data_dir>/cifar-100-python/{train,test}                                    cifar100

MNIST-style IDX files are read by torchvision's own loaders; ``.gz`` files are decompressed in
place when the plain file is missing. Missing files are downloaded only when
``get_settings().download`` is true (NNGEO_DOWNLOAD); every failure becomes one ``NNGeoError``
line that starts with what to do (which files to put where), whole, and ends with the underlying
error, cut at a word to fit the one line the app shows (``errors.MAX_LINE``).

CIFAR batches are read here rather than through torchvision, because torchvision refuses any
file whose md5 differs from the official release (so a subset or a re-packed copy would not
load). The batches are Python pickles; they are only read from the data directory the user
configured, and with an unpickler that can build nothing but NumPy arrays, lists, dicts and
strings, so a planted file cannot run code.
"""

from __future__ import annotations

import gzip
import os
import pickle
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import MAX_LINE, NNGeoError, one_line
from ..settings import get_settings
from .base import Dataset
from .common import as_optional_int, as_seed, dataset, make_dataset, subsample

MIN_REASON = 60  # characters of an underlying error kept even when the hint before it is long
ALLOW_DOWNLOAD = "or set NNGEO_DOWNLOAD=1 to download (needs network access)"


def _reason(exc: BaseException, room: int = MAX_LINE, *, last: bool = False) -> str:
    """``Type: message`` of an underlying error, its lines joined (``last``: only its last line,
    where torchvision's download errors put the cause), cut at a word to at most ``room`` characters."""
    if not str(exc).strip():
        return f"{type(exc).__name__}: no details"
    lines = [line for line in str(exc).splitlines() if line.strip()]
    text = (
        f"{type(exc).__name__}: {one_line(lines[-1])}" if last else one_line(exc, typed=True, join=True, limit=10_000)
    )
    if len(text) <= room:
        return text
    return text[: room - 1].rsplit(" ", 1)[0].rstrip(" ,;:(") + "…"


def _failed(hint: str, what: str, exc: BaseException, *, last: bool = False) -> NNGeoError:
    """``HINT; WHAT: REASON``: what to do first and whole, then the underlying error in the room left."""
    head = f"{hint}; {what}: "
    return NNGeoError(head + _reason(exc, max(MAX_LINE - len(head), MIN_REASON), last=last))


# ---------------------------------------------------------------- MNIST and Fashion-MNIST

IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def _gunzip_missing(raw: Path, names: tuple[str, ...]) -> None:
    """Decompress ``name.gz`` to ``name`` where only the archive is present."""
    for name in names:
        target, archive = raw / name, raw / f"{name}.gz"
        if target.is_file() or not archive.is_file():
            continue
        partial = raw / f".{name}.{os.getpid()}.partial"  # per process: loaders may race
        try:
            with gzip.open(archive, "rb") as src, open(partial, "wb") as dst:
                shutil.copyfileobj(src, dst)
            partial.replace(target)  # atomic: never leave a half-written file behind
        except (OSError, EOFError) as exc:
            partial.unlink(missing_ok=True)
            raise _failed(f"replace {archive} with the original file", "it could not be decompressed", exc) from None


def _load_idx_dataset(name: str, tv_name: str, seed: int, n_train, n_test) -> Dataset:
    # lazy: torchvision.datasets adds ~1.7 s (measured) after torch; only the MNIST-style loaders use it
    import torchvision.datasets as tvd

    seed = as_seed(seed)
    n_train = as_optional_int("n_train", n_train, low=1)
    n_test = as_optional_int("n_test", n_test, low=1)
    settings = get_settings()
    root = settings.data_dir
    cls = getattr(tvd, tv_name)
    raw = root / tv_name / "raw"  # torchvision's raw_folder: <root>/<ClassName>/raw
    _gunzip_missing(raw, IDX_FILES)
    missing = [f for f in IDX_FILES if not (raw / f).is_file()]
    processed = root / tv_name / "processed"
    legacy = (processed / "training.pt").is_file() and (processed / "test.pt").is_file()

    if missing and not legacy:
        put = f"{name}: put {', '.join(missing)} (or .gz) in {raw}"
        if not settings.download:
            raise NNGeoError(f"{put}, {ALLOW_DOWNLOAD}")
        try:
            cls(str(root), train=True, download=True)  # fetches all four files
        except Exception as exc:  # torchvision raises RuntimeError, URLError, OSError, ...
            raise _failed(put, "the download failed", exc, last=True) from None

    try:
        train = cls(str(root), train=True, download=False)
        test = cls(str(root), train=False, download=False)
    except Exception as exc:  # malformed files trip asserts and TypeErrors deep in the reader
        raise _failed(f"{name}: replace the files in {raw} with the originals", "they could not be read", exc) from None
    for part, images, labels in (("train", train.data, train.targets), ("t10k", test.data, test.targets)):
        if tuple(images.shape[1:]) != (28, 28) or len(images) != len(labels) or len(labels) == 0:
            raise NNGeoError(
                f"{name} {part} files in {raw} hold {tuple(images.shape)} images and "
                f"{len(labels)} labels; expected N×28×28 images with N labels"
            )
        if int(labels.min()) < 0 or int(labels.max()) >= 10:
            raise NNGeoError(f"{name} {part} labels in {raw} must lie in 0..9")

    rng = np.random.default_rng(seed)
    x_train, y_train = subsample(train.data, train.targets, n_train, rng, "n_train")
    x_test, y_test = subsample(test.data, test.targets, n_test, rng, "n_test")
    return make_dataset(
        name,
        _to_unit(x_train).unsqueeze(1),
        y_train,
        _to_unit(x_test).unsqueeze(1),
        y_test,
        num_classes=10,
        meta={"class_names": list(cls.classes), "source": str(raw)},
    )


def _to_unit(images_uint8: torch.Tensor) -> torch.Tensor:
    return images_uint8.to(torch.float32).div_(255.0)


@dataset(
    "mnist",
    input_shape=(1, 28, 28),
    num_classes=10,
    needs_files=True,
    description="MNIST handwritten digits, 28×28 grey (data directory or download)",
)
def mnist(seed: int = 0, *, n_train: int | None = None, n_test: int | None = None) -> Dataset:
    """``n_train``/``n_test`` take a seeded random subset (all 60000/10000 when None)."""
    return _load_idx_dataset("mnist", "MNIST", seed, n_train, n_test)


@dataset(
    "fashion_mnist",
    input_shape=(1, 28, 28),
    num_classes=10,
    needs_files=True,
    description="Fashion-MNIST clothing images, 28×28 grey (data directory or download)",
)
def fashion_mnist(seed: int = 0, *, n_train: int | None = None, n_test: int | None = None) -> Dataset:
    """``n_train``/``n_test`` take a seeded random subset (all 60000/10000 when None)."""
    return _load_idx_dataset("fashion_mnist", "FashionMNIST", seed, n_train, n_test)


# ---------------------------------------------------------------- CIFAR-10 and CIFAR-100

CIFAR_SIDE = 32
CIFAR_PIXELS = 3 * CIFAR_SIDE * CIFAR_SIDE
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
CIFAR = {
    # name: torchvision class (for downloads), folder, train files, test files, label key,
    #       number of classes, meta file and its class-name key
    "cifar10": (
        "CIFAR10",
        "cifar-10-batches-py",
        tuple(f"data_batch_{i}" for i in range(1, 6)),
        ("test_batch",),
        "labels",
        10,
        "batches.meta",
        "label_names",
        "cifar-10-python.tar.gz",
    ),
    "cifar100": (
        "CIFAR100",
        "cifar-100-python",
        ("train",),
        ("test",),
        "fine_labels",
        100,
        "meta",
        "fine_label_names",
        "cifar-100-python.tar.gz",
    ),
}

# The globals a CIFAR batch pickle needs: NumPy's array reconstruction (old and new module
# paths, pickle protocols 2-5) and _codecs.encode, which Python 3 pickles use for bytes.
_SAFE_GLOBALS = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),
}


class _ArrayOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _SAFE_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _read_pickle(path: Path) -> dict:
    """Read a CIFAR pickle (Python 2 or 3) into a dict with str keys."""
    try:
        with open(path, "rb") as f:
            obj = _ArrayOnlyUnpickler(f, encoding="latin1").load()
    except Exception as exc:
        raise _failed(f"replace {path} with the original CIFAR batch", "it could not be read", exc) from None
    if not isinstance(obj, dict):
        raise NNGeoError(f"{path} is not a CIFAR batch (holds a {type(obj).__name__}, not a dict)")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _read_cifar_batches(
    folder: Path, files: tuple[str, ...], label_key: str, num_classes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = [], []
    for file in files:
        path = folder / file
        batch = _read_pickle(path)
        data, y = batch.get("data"), batch.get(label_key)
        if (
            not isinstance(data, np.ndarray)
            or data.dtype != np.uint8
            or data.ndim != 2
            or data.shape[1] != CIFAR_PIXELS
            or y is None
            or len(y) != len(data)
        ):
            raise NNGeoError(
                f"{path} is not a CIFAR batch: expected 'data' uint8 N×{CIFAR_PIXELS} and {label_key!r} with N labels"
            )
        y = np.asarray(y)
        if y.dtype.kind not in "iu" or (len(y) and (y.min() < 0 or y.max() >= num_classes)):
            raise NNGeoError(f"{path}: {label_key!r} must be integers in 0..{num_classes - 1}")
        images.append(data)
        labels.append(y.astype(np.int64))
    # rows hold the red plane, then green, then blue, each 32×32 row-major
    x = np.concatenate(images).reshape(-1, 3, CIFAR_SIDE, CIFAR_SIDE)
    return torch.from_numpy(x), torch.from_numpy(np.concatenate(labels))


def _class_names(folder: Path, meta_file: str, key: str) -> list[str] | None:
    path = folder / meta_file
    if not path.is_file():
        return None
    names = _read_pickle(path).get(key)
    if not isinstance(names, (list, tuple)):
        raise NNGeoError(f"{path} has no {key!r} list; replace it with the original file")
    return [n.decode("latin1") if isinstance(n, bytes) else str(n) for n in names]


def _load_cifar(name: str, seed: int, n_train, n_test) -> Dataset:
    tv_name, folder_name, train_files, test_files, label_key, num_classes, meta_file, meta_key, archive = CIFAR[name]
    seed = as_seed(seed)
    n_train = as_optional_int("n_train", n_train, low=1)
    n_test = as_optional_int("n_test", n_test, low=1)
    settings = get_settings()
    root = settings.data_dir
    folder = root / folder_name
    missing = [f for f in train_files + test_files if not (folder / f).is_file()]
    if missing:
        put = f"{name}: put {', '.join(missing)} in {folder} (extract {archive} in the folder above it)"
        if not settings.download:
            raise NNGeoError(f"{put}, {ALLOW_DOWNLOAD}")
        try:
            import torchvision.datasets as tvd  # only here: importing it takes seconds

            # torchvision downloads the archive, checks its md5 and extracts it into root
            getattr(tvd, tv_name)(str(root), train=True, download=True)
        except Exception as exc:
            raise _failed(put, "the download failed", exc, last=True) from None

    x_train, y_train = _read_cifar_batches(folder, train_files, label_key, num_classes)
    x_test, y_test = _read_cifar_batches(folder, test_files, label_key, num_classes)
    class_names = CIFAR10_CLASSES if name == "cifar10" else _class_names(folder, meta_file, meta_key)
    rng = np.random.default_rng(seed)
    x_train, y_train = subsample(x_train, y_train, n_train, rng, "n_train")
    x_test, y_test = subsample(x_test, y_test, n_test, rng, "n_test")
    meta: dict[str, Any] = {"source": str(folder)}
    if class_names is not None:
        meta["class_names"] = class_names
    return make_dataset(name, _to_unit(x_train), y_train, _to_unit(x_test), y_test, num_classes=num_classes, meta=meta)


@dataset(
    "cifar10",
    input_shape=(3, CIFAR_SIDE, CIFAR_SIDE),
    num_classes=10,
    needs_files=True,
    description="CIFAR-10 colour images in 10 classes, 32×32 (data directory or download)",
)
def cifar10(seed: int = 0, *, n_train: int | None = None, n_test: int | None = None) -> Dataset:
    """``n_train``/``n_test`` take a seeded random subset (all 50000/10000 when None)."""
    return _load_cifar("cifar10", seed, n_train, n_test)


@dataset(
    "cifar100",
    input_shape=(3, CIFAR_SIDE, CIFAR_SIDE),
    num_classes=100,
    needs_files=True,
    description="CIFAR-100 colour images in 100 fine classes, 32×32 (data directory or download)",
)
def cifar100(seed: int = 0, *, n_train: int | None = None, n_test: int | None = None) -> Dataset:
    """``n_train``/``n_test`` take a seeded random subset (all 50000/10000 when None)."""
    return _load_cifar("cifar100", seed, n_train, n_test)
