"""Datasets of the user's own: read once from a file or folder, checked, stored as tensors under a
content hash, and loadable by name in any process (a worker) like a built-in dataset.

Sources (``add_dataset(PATH)``):

* an image folder, one subfolder per class (png, jpg, bmp, gif, webp; optionally ``train/`` and
  ``test/`` above the class folders), or a zip of one: images are converted to one mode (grey ``L``
  or ``RGB``, the majority's unless asked) and resized to one size (the most common unless asked);
* a tensor file, ``.npz`` (read with ``allow_pickle=False``) or ``.safetensors``, holding ``x`` and
  ``y``, optionally ``x_test``/``y_test`` or a ``split`` array, and ``class_names``;
* IDX files (the MNIST format), a folder of them or one images file, a test-only set (t10k) too;
* a CSV of points with a label column (``label``, ``y`` or ``class``, else the last column);
  labels that are not numbers become class indices, their texts the class names.

A source without a train/test split is split here, seeded and stratified. The examples of each
split are put in a canonical order (by label, then by their bytes) before anything is hashed, so the
same content gives the same dataset whatever its files are called or in which order they come.
The dataset is named ``user:<first 12 hex digits of the sha256>``, the name a run spec records;
``--name`` gives it an alias (``user_index.canonical`` maps it back). Nothing is ever unpickled,
and a bad source is one ``NNGeoError`` line with nothing stored.

Registering: ``register_user_datasets()`` adds every stored dataset to ``DATASETS`` (and its
declaration to ``DESCRIBERS``, so ``dataset_info`` reads the manifest, not the data);
``lookup(name)`` registers one on demand (a dataset added after this process looked).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import stat
import time
import uuid
import zipfile
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import safetensors.numpy
import torch
from PIL import Image

from .. import user_index
from ..errors import NNGeoError, one_line
from ..settings import get_settings
from ..user_index import DEFAULT_MAX_MB, HASH_CHARS, LOADER_DEFAULTS, MANIFEST, PREFIX, TENSORS, shape_text
from .base import DATASETS, Dataset
from .common import DESCRIBERS, DatasetInfo, Describer, as_float, as_int, check_param_names, make_dataset, subsample

MAX_ZIP_MEMBERS = 1_000_000
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"})
GREY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"})
DECODE_THREADS = 2  # PIL releases the GIL while decoding; bench/user_data.py measured 2 against 1
TEST_FRACTION = 0.2
SPLIT_SEED = 0


@dataclass
class Source:
    """What a reader gives: inputs and integer labels per split (test None: split here)."""

    kind: str
    x: np.ndarray
    y: np.ndarray
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    class_names: list[str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class AddResult:
    name: str  # user:<hash>
    created: bool  # False: this content was already stored
    manifest: dict[str, Any]


# ---------------------------------------------------------------- checks shared by the readers


def _amount(n: int) -> str:
    return f"{n / 2**20:.1f} MB" if n >= 2**20 // 10 else f"{n:,} bytes"


def _size_limit(path: Path, max_bytes: int) -> None:
    size = path.stat().st_size
    if size > max_bytes:
        raise NNGeoError(f"{path.name} is {_amount(size)}; the limit is {_amount(max_bytes)} (max_mb)")


def _as_inputs(x: Any, what: str) -> np.ndarray:
    """Inputs as uint8 (images, scaled by 1/255 when loaded) or finite float32, channels first."""
    x = np.asarray(x)
    if x.dtype.kind not in "buif":
        raise NNGeoError(f"{what} must hold numbers, not {x.dtype}")
    if x.ndim < 2 or x.ndim > 4:
        raise NNGeoError(f"{what} has shape {tuple(x.shape)}; expected N×D points or N×H×W / N×C×H×W images")
    if x.ndim == 3:
        x = x[:, None]  # N×H×W grey images
    elif x.ndim == 4 and x.shape[1] not in (1, 3) and x.shape[3] in (1, 3):
        x = x.transpose(0, 3, 1, 2)  # channels last -> channels first
    if x.dtype != np.uint8:
        with np.errstate(over="ignore", invalid="ignore"):
            x = x.astype(np.float32)
        bad = ~np.isfinite(x.reshape(len(x), -1)).all(axis=1)
        if bad.any():
            raise NNGeoError(f"{what} holds NaN or infinite values (first in example {int(np.argmax(bad))})")
    if len(x) == 0:
        raise NNGeoError(f"{what} holds no examples")
    return np.ascontiguousarray(x)


def _as_labels(y: Any, what: str, names: list[str] | None) -> tuple[np.ndarray, list[str] | None]:
    """Labels as int64 class indices (texts mapped to sorted class names), checked."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise NNGeoError(f"{what} has shape {tuple(y.shape)}; labels must be one number per example")
    if y.dtype.kind in "USO":
        texts = y.astype(str)
        if names is None:  # the class names in sorted order (np.unique sorts as sorted() does)
            uniq, inverse = np.unique(texts, return_inverse=True)
            return inverse.reshape(-1).astype(np.int64), [str(n) for n in uniq]
        known = np.array(names, dtype=str)
        by_name = np.argsort(known)
        pos = np.minimum(np.searchsorted(known[by_name], texts), len(known) - 1)
        unknown = known[by_name][pos] != texts
        if unknown.any():
            raise NNGeoError(f"{what} holds label {str(texts[np.argmax(unknown)])!r}, which is none of the class names")
        return by_name[pos].astype(np.int64), names
    if y.dtype.kind == "f":
        bad = ~(np.isfinite(y) & (y == np.round(y)))
        if bad.any():
            i = int(np.argmax(bad))
            raise NNGeoError(f"{what} must be whole numbers; example {i} has {y[i].item()}")
    elif y.dtype.kind not in "iub":
        raise NNGeoError(f"{what} must be class numbers, not {y.dtype}")
    if len(y) and y.min() < 0:
        i = int(np.argmin(y))
        raise NNGeoError(f"{what} must be 0 or more; example {i} has {y[i]}")
    if names is not None and len(y) and y.max() >= len(names):
        i = int(np.argmax(y))
        raise NNGeoError(f"{what}: label {int(y[i])} of example {i} is out of range 0..{len(names) - 1}")
    return y.astype(np.int64), names


def _checked(src: Source) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None, list[str]]:
    x = _as_inputs(src.x, "x")
    y, names = _as_labels(src.y, "y", src.class_names)
    if len(x) != len(y):
        raise NNGeoError(f"x has {len(x)} examples but y has {len(y)} labels")
    x_test = y_test = None
    if src.x_test is not None or src.y_test is not None:
        if src.x_test is None or src.y_test is None:
            raise NNGeoError("a test set needs both x_test and y_test")
        x_test = _as_inputs(src.x_test, "x_test")
        y_test, names = _as_labels(src.y_test, "y_test", names)
        if len(x_test) != len(y_test):
            raise NNGeoError(f"x_test has {len(x_test)} examples but y_test has {len(y_test)} labels")
        if x_test.shape[1:] != x.shape[1:] or x_test.dtype != x.dtype:
            raise NNGeoError(
                f"x_test has {shape_text(x_test.shape[1:])} {x_test.dtype} inputs; "
                f"x has {shape_text(x.shape[1:])} {x.dtype}"
            )
    if names is None:
        labels = np.unique(np.concatenate([y, y_test]) if y_test is not None else y)
        k = int(labels.max()) + 1
        missing = sorted(set(range(k)) - set(labels.tolist()))
        if missing:
            raise NNGeoError(
                f"labels run to {k - 1} but no example has label {', '.join(map(str, missing[:5]))}: "
                "number the classes 0..K-1 without gaps"
            )
        names = [str(i) for i in range(k)]
    if len(names) < 2:
        raise NNGeoError(f"the data has only one class ({names[0]!r}); a classifier needs at least two")
    return x, y, x_test, y_test, [str(n) for n in names]


def canonical_order(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The permutation that sorts examples by label, then by their bytes: independent of the
    order (and the file names) the source gave them in."""
    rows = np.ascontiguousarray(x.reshape(len(x), -1)).view(np.dtype((np.void, x[0].nbytes)))[:, 0]
    by_bytes = np.argsort(rows, kind="stable")
    return by_bytes[np.argsort(y[by_bytes], kind="stable")]


def stratified_split(y: np.ndarray, test_fraction: float, seed: int) -> np.ndarray:
    """A boolean test mask: about ``test_fraction`` of every class (at least one example of each
    class with two or more, and never all of one), chosen by ``seed``."""
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(len(y)), y))  # classes in turn, each in a random order
    counts = np.bincount(y)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    n_test = np.where(counts >= 2, np.clip(np.round(counts * test_fraction), 1, counts - 1), 0)
    rank = np.arange(len(y)) - starts[y[order]]
    mask = np.zeros(len(y), dtype=bool)
    mask[order] = rank < n_test[y[order]]
    return mask


def content_hash(x: np.ndarray, y: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, names: list[str]) -> str:
    """sha256 of the canonical contents: dtype, shapes, class names, then the arrays' bytes."""
    header = {
        "format": user_index.FORMAT,
        "dtype": str(x.dtype),
        "shapes": [list(a.shape) for a in (x, y, x_test, y_test)],
        "class_names": names,
    }
    h = hashlib.sha256(json.dumps(header, sort_keys=True).encode())
    for a in (x, y, x_test, y_test):  # little-endian whatever the machine, so a hash means one content
        h.update(np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<")).tobytes())
    return h.hexdigest()


def _stats(x: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel (images) or per-feature (points) mean and std of the inputs as loaded."""
    scale = 1 / 255 if x.dtype == np.uint8 else 1.0
    axes = (0, 2, 3) if x.ndim == 4 else (0,)
    mean = x.mean(axis=axes, dtype=np.float64) * scale
    std = x.std(axis=axes, dtype=np.float64) * scale
    return [float(v) for v in mean], [float(v) for v in std]


# ---------------------------------------------------------------- image folders and zips


def _hidden(parts: tuple[str, ...]) -> bool:
    return any(s.startswith(".") or s == "__MACOSX" for s in parts)


def _image_entries(
    paths: list[PurePosixPath], where: str, dirs: Sequence[PurePosixPath] = ()
) -> tuple[list[tuple[str | None, str, int]], int]:
    """``(split, class, index into paths)`` of every image by its place in the tree, and the
    number of other files skipped. Layout: CLASS/IMAGE or {train,test}/CLASS/IMAGE. ``dirs``
    (the folders) lets an empty class folder be told rather than silently dropped."""
    kept = [i for i, p in enumerate(paths) if not _hidden(p.parts)]
    parts = [paths[i].parts for i in kept]
    if not parts:
        raise NNGeoError(f"{where} is empty: put the images in one subfolder per class")
    tops = {p[0] for p in parts if len(p) > 1}
    strip = 0
    # a zip of a folder (or a folder around the class folders) has one top entry: look inside it
    while len(tops) == 1 and all(len(p) > 2 for p in parts) and next(iter(tops)).lower() not in ("train", "test"):
        parts = [p[1:] for p in parts]
        tops = {p[0] for p in parts if len(p) > 1}
        strip += 1
    split_layout = (
        bool(tops) and {t.lower() for t in tops} <= {"train", "test"} and "train" in {t.lower() for t in tops}
    )
    entries: list[tuple[str | None, str, int]] = []
    skipped, loose = 0, []
    for i, p in zip(kept, parts, strict=True):
        if PurePosixPath(p[-1]).suffix.lower() not in IMAGE_SUFFIXES:
            skipped += 1
            continue
        if split_layout and len(p) == 3:
            entries.append((p[0].lower(), p[1], i))
        elif not split_layout and len(p) == 2:
            entries.append((None, p[0], i))
        else:
            loose.append("/".join(p))
    if loose:
        layout = "train/CLASS/IMAGE and test/CLASS/IMAGE" if split_layout else "CLASS/IMAGE"
        raise NNGeoError(f"{where}: {loose[0]} is not in the layout {layout} (one subfolder per class)")
    if not entries:
        raise NNGeoError(f"{where} holds no images (png, jpg, bmp, gif, webp) in class subfolders")
    seen = {c for split, c, _ in entries if split in (None, "train")}
    for d in dirs:
        q = d.parts[strip:]
        is_class = len(q) == 2 and q[0].lower() == "train" if split_layout else len(q) == 1
        if is_class and not _hidden(d.parts) and q[-1] not in seen:
            raise NNGeoError(f"{where}: class folder {'/'.join(q)!r} holds no images (png, jpg, bmp, gif, webp)")
    return entries, skipped


def _open(src: Any, label: str) -> Image.Image:
    try:
        return Image.open(io.BytesIO(src) if isinstance(src, bytes) else src)
    except Exception as exc:  # PIL raises UnidentifiedImageError, OSError, SyntaxError, ...
        raise NNGeoError(f"cannot read image {label} ({one_line(exc, typed=True, limit=120)})") from None


def _decode_all(sources: list[Any], labels: list[str], mode: str, size: tuple[int, int], threads: int) -> np.ndarray:
    """Every image converted to ``mode`` and resized (bilinear) to ``size`` (width, height), as uint8 N×H×W[×3]."""
    w, h = size
    out = np.empty((len(sources), h, w, 3) if mode == "RGB" else (len(sources), h, w), dtype=np.uint8)

    def decode(i: int) -> None:
        try:
            with _open(sources[i], labels[i]) as im:
                im = im.convert(mode)
                if im.size != size:
                    im = im.resize(size, Image.Resampling.BILINEAR)
                out[i] = np.asarray(im)
        except NNGeoError:
            raise
        except Exception as exc:  # a truncated or corrupt image fails only when decoded
            raise NNGeoError(f"cannot decode image {labels[i]} ({one_line(exc, typed=True, limit=120)})") from None

    _each(decode, len(sources), threads)
    return out


def _each(fn: Callable[[int], Any], n: int, threads: int) -> list[Any]:
    """``[fn(0), ..., fn(n - 1)]``, on ``threads`` threads (PIL decodes without the GIL); the
    first failure in index order is the one raised, whatever thread met it first."""
    if threads > 1 and n > 64:
        with ThreadPoolExecutor(threads) as pool:
            return list(pool.map(fn, range(n), chunksize=256))
    return [fn(i) for i in range(n)]


def _read_images(
    sources: list[Any],
    paths: list[PurePosixPath],
    found: tuple[list[tuple[str | None, str, int]], int],
    kind: str,
    mode: str,
    size: Any,
    threads: int,
) -> Source:
    entries, skipped = found
    labels = ["/".join(paths[i].parts) for _, _, i in entries]
    srcs = [sources[i] for _, _, i in entries]

    def header(i: int) -> tuple[tuple[int, int], str]:
        with _open(srcs[i], labels[i]) as im:  # the header only: no pixels decoded yet
            return im.size, im.mode

    headers = _each(header, len(srcs), 1)  # parsing headers holds the GIL: threads only add overhead (measured)
    if mode == "auto":
        grey = sum(m in GREY_MODES for _, m in headers)
        mode = "L" if grey * 2 > len(headers) else "RGB"
    elif mode not in ("L", "RGB"):
        raise NNGeoError(f"mode must be auto, L or RGB, got {mode!r}")
    if size is None:
        counts = Counter(s for s, _ in headers)
        # the most common size; ties go to the larger, then the wider, so file order cannot decide
        size = max(counts, key=lambda s: (counts[s], s[0] * s[1], s))
    else:
        size = (size, size) if isinstance(size, int) else tuple(size) if isinstance(size, (tuple, list)) else (size,)
        if len(size) != 2:
            raise NNGeoError(f"size must be one side or (width, height), got {size!r}")
        size = (as_int("image width", size[0], low=1, high=4096), as_int("image height", size[1], low=1, high=4096))
    pixels = _decode_all(srcs, labels, mode, size, threads)
    x = pixels[:, None] if mode == "L" else pixels.transpose(0, 3, 1, 2)
    classes = sorted({c for _, c, _ in entries})
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[c] for _, c, _ in entries], dtype=np.int64)
    test = np.array([s == "test" for s, _, _ in entries])
    extra = {"mode": mode, "size": list(size), "skipped_files": skipped}
    if test.any():
        return Source(kind, x[~test], y[~test], x[test], y[test], classes, extra)
    return Source(kind, x, y, class_names=classes, extra=extra)


def _read_image_folder(path: Path, mode: str, size: Any, max_bytes: int, threads: int) -> Source:
    tree = sorted(path.rglob("*"))
    files = [p for p in tree if p.is_file() and not p.is_symlink()]
    total = sum(p.stat().st_size for p in files)
    if total > max_bytes:
        raise NNGeoError(f"{path.name} holds {_amount(total)}; the limit is {_amount(max_bytes)} (max_mb)")
    rel = [PurePosixPath(p.relative_to(path).as_posix()) for p in files]
    dirs = [PurePosixPath(p.relative_to(path).as_posix()) for p in tree if p.is_dir()]
    found = _image_entries(rel, path.name, dirs)
    return _read_images([str(p) for p in files], rel, found, "image-folder", mode, size, threads)


def _safe_member(info: zipfile.ZipInfo, where: str) -> PurePosixPath:
    """The member's path, refused when it could escape (absolute, ``..``, a drive) or is a link."""
    name = info.filename
    path = PurePosixPath(name.replace("\\", "/"))
    if name.startswith(("/", "\\")) or ".." in path.parts or (path.parts and ":" in path.parts[0]):
        raise NNGeoError(f"{where} holds the unsafe path {name!r}; nothing was extracted")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise NNGeoError(f"{where} holds the symbolic link {name!r}; put the files themselves in the zip")
    if info.flag_bits & 0x1:
        raise NNGeoError(f"{where} is encrypted ({name!r}); zip it without a password")
    return path


def _read_image_zip(path: Path, mode: str, size: Any, max_bytes: int, threads: int) -> Source:
    _size_limit(path, max_bytes)
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            if len(infos) > MAX_ZIP_MEMBERS:
                raise NNGeoError(f"{path.name} holds {len(infos)} files; the limit is {MAX_ZIP_MEMBERS}")
            checked = [(info, _safe_member(info, path.name)) for info in infos]
            members = [(info, p) for info, p in checked if not info.is_dir()]
            dirs = [p for info, p in checked if info.is_dir()]
            total = sum(info.file_size for info, _ in members)
            if total > max_bytes:
                raise NNGeoError(f"{path.name} unpacks to {_amount(total)}; the limit is {_amount(max_bytes)} (max_mb)")
            members.sort(key=lambda m: m[1].as_posix())
            found = _image_entries([p for _, p in members], path.name, dirs)
            wanted = {i for _, _, i in found[0]}
            # read in memory, never written out: nothing from the zip reaches the file system
            data: list[Any] = [zf.read(info) if i in wanted else b"" for i, (info, _) in enumerate(members)]
    except zipfile.BadZipFile as exc:
        raise NNGeoError(f"{path.name} is not a readable zip file ({one_line(exc, limit=120)})") from None
    return _read_images(data, [p for _, p in members], found, "zip", mode, size, threads)


# ---------------------------------------------------------------- tensor files, IDX, CSV


def _read_tensors(path: Path, max_bytes: int) -> Source:
    _size_limit(path, max_bytes)
    try:
        if path.suffix.lower() == ".npz":
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        else:
            arrays = safetensors.numpy.load_file(str(path))
    except Exception as exc:  # BadZipFile, "Object arrays cannot be loaded", SafetensorError, ...
        raise NNGeoError(f"cannot read {path.name} as tensors ({one_line(exc, typed=True, limit=160)})") from None
    if "x" not in arrays or "y" not in arrays:
        raise NNGeoError(
            f"{path.name} holds {', '.join(sorted(arrays)) or 'nothing'}; it needs arrays 'x' and 'y' "
            "(optionally 'x_test' and 'y_test', or 'split')"
        )
    names = arrays.get("class_names")
    class_names = [str(n) for n in np.asarray(names).tolist()] if names is not None else None
    x, y = arrays["x"], arrays["y"]
    if "split" in arrays:
        split = np.asarray(arrays["split"])
        if split.shape != (len(x),):
            raise NNGeoError(f"'split' has shape {tuple(split.shape)}; it needs one entry per example of x")
        test = split.astype(str) == "test" if split.dtype.kind in "US" else split.astype(bool)
        if test.any():  # else no test set: split here
            return Source("tensors", x[~test], y[~test], x[test], y[test], class_names)
        return Source("tensors", x, y, class_names=class_names)
    return Source("tensors", x, y, arrays.get("x_test"), arrays.get("y_test"), class_names)


IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path, max_bytes: int) -> np.ndarray:
    """An IDX file (``.gz`` too): magic 0, 0, type code, number of dimensions; big-endian uint32
    sizes; the values, big-endian."""
    _size_limit(path, max_bytes)
    try:
        if path.suffix.lower() == ".gz":
            with gzip.open(path, "rb") as f:
                raw = f.read(max_bytes + 1)
            if len(raw) > max_bytes:
                raise NNGeoError(f"{path.name} unpacks to more than {_amount(max_bytes)}, the limit (max_mb)")
        else:
            raw = path.read_bytes()
    except (OSError, EOFError) as exc:
        raise NNGeoError(f"cannot read {path.name} ({one_line(exc, typed=True, limit=120)})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_TYPES or raw[3] == 0:
        raise NNGeoError(f"{path.name} is not an IDX file (bad magic number)")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise NNGeoError(f"{path.name} is cut short in its header")
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, 4))
    dtype = np.dtype(IDX_TYPES[raw[2]])
    body = len(raw) - 4 - 4 * ndim
    if body != int(np.prod(dims)) * dtype.itemsize:
        raise NNGeoError(f"{path.name} declares {shape_text(dims)} values but holds {body} bytes of data")
    return np.frombuffer(raw, dtype, offset=4 + 4 * ndim).reshape(dims).astype(dtype.newbyteorder("="))


def _idx_pairs(path: Path) -> dict[str, tuple[Path, Path]]:
    """``{"train"|"test": (images, labels)}`` from a folder of IDX files or one images file."""
    files = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.is_file())
    pairs: dict[str, tuple[Path, Path]] = {}
    for images in (p for p in files if "idx3" in p.name or "images-idx" in p.name):
        labels = images.with_name(images.name.replace("images-idx3", "labels-idx1").replace("idx3", "idx1"))
        if not labels.is_file() and labels.suffix != ".gz" and labels.with_name(labels.name + ".gz").is_file():
            labels = labels.with_name(labels.name + ".gz")
        if not labels.is_file():
            raise NNGeoError(f"{images.name} has no labels file {labels.name} next to it")
        split = "test" if any(w in images.name.lower() for w in ("t10k", "test")) else "train"
        if split in pairs and pairs[split][0].name.removesuffix(".gz") != images.name.removesuffix(".gz"):
            raise NNGeoError(f"{path.name} holds two {split} image files: {pairs[split][0].name} and {images.name}")
        pairs.setdefault(split, (images, labels))
    return pairs


def _read_idx_source(path: Path, max_bytes: int) -> Source:
    pairs = _idx_pairs(path)
    if not pairs:
        raise NNGeoError(f"{path.name} holds no IDX images file (*-images-idx3-ubyte)")
    read = {s: (read_idx(i, max_bytes), read_idx(lab, max_bytes)) for s, (i, lab) in pairs.items()}
    if "train" not in read:  # a test-only set (t10k): split it here
        return Source("idx", *read["test"])
    x, y = read["train"]
    x_test, y_test = read.get("test", (None, None))
    return Source("idx", x, y, x_test, y_test)


LABEL_COLUMNS = ("label", "y", "class")


def _read_csv(path: Path, max_bytes: int) -> Source:
    # lazy: pandas costs ~0.4 s (measured) and only CSV sources need it
    import pandas as pd

    _size_limit(path, max_bytes)
    try:
        df = pd.read_csv(path)
    except Exception as exc:  # ParserError, UnicodeDecodeError, EmptyDataError
        raise NNGeoError(f"cannot read {path.name} as CSV ({one_line(exc, typed=True, limit=160)})") from None
    lower = {str(c).strip().lower(): c for c in df.columns}
    label = next((lower[n] for n in LABEL_COLUMNS if n in lower), df.columns[-1] if len(df.columns) else None)
    split = lower.get("split")
    features = [c for c in df.columns if c not in (label, split)]
    if label is None or not features or len(df) == 0:
        raise NNGeoError(f"{path.name} needs a header, feature columns and a label column (label, y or class)")
    y = df[label]
    if y.isna().any():
        raise NNGeoError(
            f"{path.name}: the label column {label!r} is empty in row {int(y.isna().to_numpy().argmax()) + 2}"
        )
    if pd.api.types.is_float_dtype(y) and not (y == y.round()).all():
        raise NNGeoError(
            f"{path.name}: column {label!r} holds fractions, so it is no usable label column; "
            "name the label column label, y or class"
        )
    bad = [c for c in features if not pd.api.types.is_numeric_dtype(df[c])]
    if bad:
        raise NNGeoError(
            f"{path.name}: feature column {bad[0]!r} is not numeric (is the label column named label, y or class?)"
        )
    x = df[features].to_numpy(np.float32)
    y_arr = y.to_numpy() if pd.api.types.is_numeric_dtype(y) else y.astype(str).to_numpy()
    extra = {"features": [str(c) for c in features], "label_column": str(label)}
    test = df[split].astype(str).str.strip().str.lower().eq("test").to_numpy() if split is not None else None
    if test is not None and test.any():
        return Source("csv", x[~test], y_arr[~test], x[test], y_arr[test], extra=extra)
    return Source("csv", x, y_arr, extra=extra)


# ---------------------------------------------------------------- adding and storing


def read_source(
    path: str | os.PathLike[str],
    *,
    mode: str = "auto",
    size: Any = None,
    max_bytes: int = DEFAULT_MAX_MB * 2**20,
    threads: int = DECODE_THREADS,
) -> Source:
    """Read ``path`` by its kind (folder of images or IDX files, zip, npz, safetensors, IDX, CSV)."""
    p = Path(path)
    if not p.exists():
        raise NNGeoError(f"no such file or folder: {path}")
    suffix = "".join(p.suffixes[-2:]).lower() if p.suffix.lower() == ".gz" else p.suffix.lower()
    if p.is_dir():
        if any("idx3" in f.name for f in p.iterdir() if f.is_file()):
            return _read_idx_source(p, max_bytes)
        return _read_image_folder(p, mode, size, max_bytes, threads)
    if suffix == ".zip":
        return _read_image_zip(p, mode, size, max_bytes, threads)
    if suffix in (".npz", ".safetensors"):
        return _read_tensors(p, max_bytes)
    if suffix == ".csv":
        return _read_csv(p, max_bytes)
    if "idx3" in p.name or "-ubyte" in p.name:
        return _read_idx_source(p, max_bytes)
    raise NNGeoError(
        f"{p.name}: not a dataset nngeo reads; give an image folder (one subfolder per class) or its .zip, "
        "a .npz/.safetensors with x and y, IDX files, or a .csv with a label column"
    )


def add_dataset(
    path: str | os.PathLike[str],
    *,
    name: str | None = None,
    mode: str = "auto",
    size: Any = None,
    test_fraction: float = TEST_FRACTION,
    seed: int = SPLIT_SEED,
    max_bytes: int = DEFAULT_MAX_MB * 2**20,
    threads: int = DECODE_THREADS,
    data_dir: Path | None = None,
) -> AddResult:
    """Read, check and store a dataset of the user's own; returns its ``user:<hash>`` name. The
    same content again gives the same name and stores nothing new (``name`` then renames it)."""
    if name is not None:
        _check_alias(name, data_dir)
    test_fraction = as_float("test_fraction", test_fraction, low=0.0, high=1.0, low_open=True, high_open=True)
    seed = as_int("seed", seed, low=0)
    src = read_source(path, mode=mode, size=size, max_bytes=max_bytes, threads=threads)
    x, y, x_test, y_test, names = _checked(src)
    order = canonical_order(x, y)
    x, y = x[order], y[order]
    split = "given"
    if x_test is None or y_test is None:
        test = stratified_split(y, test_fraction, seed)
        x, y, x_test, y_test = x[~test], y[~test], x[test], y[test]
        split = f"stratified, seeded ({seed}), test fraction {test_fraction:g}"
    else:
        order = canonical_order(x_test, y_test)
        x_test, y_test = x_test[order], y_test[order]
    missing = sorted(set(range(len(names))) - set(np.unique(y).tolist()))
    if missing:
        raise NNGeoError(f"class {names[missing[0]]!r} has no training examples")
    sha = content_hash(x, y, x_test, y_test, names)
    ident = user_index.dataset_id(sha)
    named = user_index.find(name, data_dir) if name is not None else None
    if named is not None and named["sha256"] != sha:
        raise NNGeoError(f"the name {name!r} is taken by {named['id']} (other data); choose another")
    folder = user_index.folder_of(ident, data_dir)
    if (folder / MANIFEST).is_file():
        manifest = user_index.read_manifest(folder)
        if manifest.get("sha256") != sha:
            raise NNGeoError(f"{ident} is taken by other data (a {HASH_CHARS}-digit hash collision); delete {folder}")
        if name is not None and manifest.get("name") != name:
            manifest["name"] = name
            _write_json(folder / MANIFEST, manifest)
        register(manifest)
        return AddResult(ident, False, manifest)
    mean, std = _stats(x)
    manifest = {
        "id": ident,
        "name": name or ident,
        "sha256": sha,
        "format": user_index.FORMAT,
        "source_kind": src.kind,
        "source": Path(path).name,
        "input_shape": list(x.shape[1:]),
        "dtype": str(x.dtype),
        "scale": 1 / 255 if x.dtype == np.uint8 else 1.0,
        "num_classes": len(names),
        "class_names": names,
        "counts": {"train": len(y), "test": len(y_test)},
        "class_counts": {
            "train": np.bincount(y, minlength=len(names)).tolist(),
            "test": np.bincount(y_test, minlength=len(names)).tolist(),
        },
        "split": split,
        "mean": mean,
        "std": std,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **src.extra,
    }
    folder.parent.mkdir(parents=True, exist_ok=True)
    partial = folder.parent / f".{folder.name}.{uuid.uuid4().hex}"  # dot: readers skip it until complete
    try:
        partial.mkdir()
        safetensors.numpy.save_file(
            {"x_train": x, "y_train": y, "x_test": x_test, "y_test": y_test}, str(partial / TENSORS)
        )
        _write_json(partial / MANIFEST, manifest)
        try:
            partial.rename(folder)  # atomic: a dataset is whole or absent
        except OSError:
            if not (folder / MANIFEST).is_file():
                raise
            return AddResult(ident, False, user_index.read_manifest(folder))  # another process stored it first
    finally:
        if partial.exists():
            shutil.rmtree(partial, ignore_errors=True)
    register(manifest)
    return AddResult(ident, True, manifest)


def add_bytes(data: bytes, filename: str, **kwargs: Any) -> AddResult:
    """``add_dataset`` for an uploaded file's bytes (the dashboard); ``filename`` gives its kind."""
    clean = Path(str(filename).replace("\\", "/")).name or "upload"
    tmp = get_settings().home / "tmp" / uuid.uuid4().hex
    tmp.mkdir(parents=True)
    try:
        (tmp / clean).write_bytes(data)
        return add_dataset(tmp / clean, **kwargs)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _check_alias(name: str, data_dir: Path | None) -> None:
    if not isinstance(name, str) or not user_index.ALIAS_RE.fullmatch(name):
        raise NNGeoError(
            f"dataset name {name!r} must start with a letter and hold only letters, digits, '_', '.' "
            "and '-' (64 at most)"
        )
    if name in DATASETS:
        raise NNGeoError(f"{name!r} is the name of a built-in dataset; choose another")


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True), encoding="utf-8")
    tmp.replace(path)


# ---------------------------------------------------------------- loading and the registry


def load_user(
    name: str, seed: int = 0, *, n_train: int | None = None, n_test: int | None = None, normalize: bool = False
) -> Dataset:
    """A stored user dataset by ``user:<hash>`` or alias, its content checked against its hash.
    ``n_train``/``n_test`` take a seeded subset; ``normalize`` subtracts the stored mean and
    divides by the stored std (per channel or feature)."""
    manifest = user_index.find(name)
    if manifest is None:
        raise NNGeoError(f"no user dataset {name!r}; add one with `nngeo data add PATH` (see `nngeo data list`)")
    ident = str(manifest["id"])
    folder = user_index.folder_of(ident)
    try:
        t = safetensors.numpy.load_file(str(folder / TENSORS))
        arrays = [t["x_train"], t["y_train"], t["x_test"], t["y_test"]]
    except Exception as exc:  # missing or damaged file
        raise NNGeoError(
            f"cannot read the data of {ident} in {folder} ({one_line(exc, typed=True, limit=120)})"
        ) from None
    if content_hash(arrays[0], arrays[1], arrays[2], arrays[3], list(manifest["class_names"])) != manifest["sha256"]:
        raise NNGeoError(f"the stored data of {ident} in {folder} changed since it was added; add it again")
    rng = np.random.default_rng(seed)
    xs = []
    for x in (arrays[0], arrays[2]):
        v = torch.from_numpy(x).to(torch.float32)
        if x.dtype == np.uint8:
            v = v.div_(255.0)
        if normalize:
            shape = (1, -1, 1, 1) if v.ndim == 4 else (1, -1)
            mean = torch.tensor(manifest["mean"], dtype=torch.float32).reshape(shape)
            std = torch.tensor(manifest["std"], dtype=torch.float32).reshape(shape)
            v = (v - mean) / torch.where(std > 0, std, torch.ones_like(std))
        xs.append(v)
    x_train, y_train = subsample(xs[0], torch.from_numpy(arrays[1]), n_train, rng, "n_train")
    x_test, y_test = subsample(xs[1], torch.from_numpy(arrays[3]), n_test, rng, "n_test")
    meta = {
        "class_names": list(manifest["class_names"]),
        "source": str(folder),
        "description": user_index.describe(manifest),
        "user": {k: manifest[k] for k in ("name", "sha256", "source_kind", "source", "mean", "std", "split")},
    }
    return make_dataset(ident, x_train, y_train, x_test, y_test, num_classes=int(manifest["num_classes"]), meta=meta)


def info_of(manifest: dict[str, Any]) -> DatasetInfo:
    return DatasetInfo(
        name=str(manifest["id"]),
        input_shape=tuple(int(s) for s in manifest["input_shape"]),
        num_classes=int(manifest["num_classes"]),
        description=user_index.describe(manifest),
        needs_files=True,
        defaults=dict(LOADER_DEFAULTS),
    )


def register(manifest: dict[str, Any]) -> Callable[..., Dataset]:
    """Register one stored dataset in ``DATASETS`` and ``DESCRIBERS`` under its ``user:<hash>``."""
    ident = str(manifest["id"])

    def loader(
        seed: int = 0, *, n_train: int | None = None, n_test: int | None = None, normalize: bool = False
    ) -> Dataset:
        return load_user(ident, seed, n_train=n_train, n_test=n_test, normalize=normalize)

    loader.__doc__ = user_index.describe(manifest)
    info = info_of(manifest)

    def describe(params: dict) -> DatasetInfo:
        check_param_names(ident, loader, params)
        return info

    DATASETS.add(ident, loader)
    DESCRIBERS[ident] = Describer(loader=loader, describe=describe)
    return loader


def register_user_datasets() -> list[str]:
    """Register every stored user dataset (reads the manifests only); their names."""
    manifests = user_index.read_manifests()
    for manifest in manifests:
        register(manifest)
    return [str(m["id"]) for m in manifests]


def find_missing(name: str) -> Callable[..., Dataset] | None:
    """Register and return the loader of ``user:<hash>`` when it is stored but not registered (it
    was added after this process looked); None otherwise. Made to be a registry's fallback for
    names it does not hold, so it never asks ``DATASETS`` itself."""
    if not isinstance(name, str) or not user_index.ID_RE.fullmatch(name):
        return None
    manifest = user_index.find(name)
    return register(manifest) if manifest is not None else None


def lookup(name: str) -> Callable[..., Dataset] | None:
    """The loader of a user dataset by ``user:<hash>``, registered or not yet; None for any other name."""
    if not isinstance(name, str) or not name.startswith(PREFIX):
        return None
    return DATASETS.find(name) or find_missing(name)


def check_fits(dataset_info: Any, input_shape: Any, num_classes: int) -> None:
    """Refuse a dataset a model cannot take, before anything is queued: the same input shape (a
    flat input takes images of as many values) and the same number of classes."""
    if isinstance(dataset_info, dict):  # a manifest
        name, shape, classes = dataset_info["id"], dataset_info["input_shape"], dataset_info["num_classes"]
    else:  # a DatasetInfo or Dataset
        name, shape, classes = dataset_info.name, dataset_info.input_shape, dataset_info.num_classes
    have, classes = tuple(int(s) for s in shape), int(classes)
    want = tuple(int(s) for s in input_shape)
    flat_ok = (len(want) == 1 or len(have) == 1) and int(np.prod(want)) == int(np.prod(have))
    if (want == have or flat_ok) and classes == int(num_classes):
        return
    raise NNGeoError(
        f"the model takes {shape_text(want)} inputs with {int(num_classes)} classes; dataset {name!r} has "
        f"{shape_text(have)} inputs and {classes} classes; pick a matching dataset or model"
    )
