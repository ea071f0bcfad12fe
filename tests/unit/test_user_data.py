"""Datasets of the user's own (``data.user``, ``nngeo data add/list``): real files written here
(PNG folders with PIL, zips, npz, safetensors, IDX with struct, CSV), the loaded tensors compared
with the source values recomputed independently, content hashing, a fresh-process load, and every
bad input refused in one line with nothing stored."""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import stat
import struct
import subprocess
import sys
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import safetensors.numpy
import torch
from PIL import Image

from nngeo_core import cli, user_index
from nngeo_core.data import dataset_info, list_datasets, load
from nngeo_core.data.base import DATASETS
from nngeo_core.data.common import DatasetInfo
from nngeo_core.data.user import add_bytes, add_dataset, check_fits, load_user, lookup, register_user_datasets
from nngeo_core.errors import NNGeoError

ROOT = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------- helpers


def write_png_folder(root: Path, images: dict[str, list[np.ndarray]], *, names=None) -> dict[str, list[Path]]:
    """One subfolder per class; ``names(cls, i)`` chooses each file's name."""
    paths: dict[str, list[Path]] = {}
    for cls, arrays in images.items():
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i, a in enumerate(arrays):
            p = root / cls / (names(cls, i) if names else f"{i:03d}.png")
            Image.fromarray(a).save(p)
            paths.setdefault(cls, []).append(p)
    return paths


def grey_images(rng, n, h=8, w=8):
    return [rng.integers(0, 256, (h, w), dtype=np.uint8) for _ in range(n)]


def stored_entries() -> list[str]:
    root = user_index.user_root()
    return sorted(p.name for p in root.iterdir()) if root.is_dir() else []


def multiset(x: torch.Tensor, y: torch.Tensor) -> Counter:
    """(label, example bytes) counts: compares contents whatever their order."""
    xs = x.numpy().reshape(len(x), -1)
    return Counter((int(label), row.tobytes()) for label, row in zip(y.tolist(), xs, strict=True))


def as_float_images(a: np.ndarray) -> np.ndarray:
    """uint8 H×W[×C] -> float32 C×H×W in [0, 1], as the built-in image loaders give them."""
    a = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)
    return (a.astype(np.float32) / np.float32(255)).astype(np.float32)


def expected_multiset(rows: list[tuple[int, np.ndarray]]) -> Counter:
    return Counter((label, np.ascontiguousarray(a, dtype=np.float32).reshape(-1).tobytes()) for label, a in rows)


def both_splits(ds) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.cat([ds.x_train, ds.x_test]), torch.cat([ds.y_train, ds.y_test])


def write_idx(path: Path, array: np.ndarray) -> None:
    """IDX as the MNIST files are: magic (0, 0, 0x08 ubyte, ndim), big-endian sizes, the bytes."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if path.suffix == ".gz":
        data = gzip.compress(data)
    path.write_bytes(data)


def _clear_stored() -> None:
    shutil.rmtree(user_index.user_root())


def refused(path, match: str, **kwargs) -> str:
    """The one-line error ``add_dataset`` gives, checking nothing was stored."""
    with pytest.raises(NNGeoError, match=match) as err:
        add_dataset(path, **kwargs)
    message = str(err.value)
    assert "\n" not in message and len(message) <= 300
    assert stored_entries() == []
    return message


# ---------------------------------------------------------------- image folders and zips


def test_an_image_folder_loads_as_pil_converts_and_resizes_it(tmp_path):
    rng = np.random.default_rng(0)
    # mostly 8×8 grey: one colour image becomes grey, one 10×6 image is resized to 8×8
    images = {"cat": grey_images(rng, 5), "dog": grey_images(rng, 5)}
    images["cat"].append(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    images["dog"].append(rng.integers(0, 256, (6, 10), dtype=np.uint8))  # H×W = 6×10, i.e. size (10, 6)
    paths = write_png_folder(tmp_path / "pets", images)
    (tmp_path / "pets" / "cat" / "notes.txt").write_text("not an image")

    result = add_dataset(tmp_path / "pets", name="pets")
    m = result.manifest
    assert result.created and result.name.startswith("user:") and len(result.name) == len("user:") + 12
    assert m["sha256"].startswith(result.name[5:]) and m["name"] == "pets"
    assert (m["mode"], m["size"], m["skipped_files"]) == ("L", [8, 8], 1)
    assert m["input_shape"] == [1, 8, 8] and m["class_names"] == ["cat", "dog"] and m["num_classes"] == 2
    assert m["counts"] == {"train": 10, "test": 2} and m["class_counts"] == {"train": [5, 5], "test": [1, 1]}

    # the expected pixels, from PIL directly
    rows = []
    for label, cls in enumerate(["cat", "dog"]):
        for p in paths[cls]:
            im = Image.open(p).convert("L")
            if im.size != (8, 8):
                im = im.resize((8, 8), Image.Resampling.BILINEAR)
            rows.append((label, as_float_images(np.asarray(im))))
    ds = load(result.name)
    assert ds.input_shape == (1, 8, 8) and ds.num_classes == 2 and ds.meta["class_names"] == ["cat", "dog"]
    assert ds.x_train.dtype == torch.float32 and ds.y_train.dtype == torch.int64
    assert multiset(*both_splits(ds)) == expected_multiset(rows)
    # train and test are disjoint and stratified
    assert ds.y_test.tolist() == [0, 1] and not (
        set(multiset(ds.x_test, ds.y_test)) & set(multiset(ds.x_train, ds.y_train))
    )
    # normalisation statistics are those of the training inputs
    x = ds.x_train.numpy().astype(np.float64)
    assert m["mean"] == pytest.approx([x.mean()], abs=1e-6) and m["std"] == pytest.approx([x.std()], abs=1e-6)
    normed = load(result.name, normalize=True).x_train
    assert float(normed.mean()) == pytest.approx(0.0, abs=1e-5) and float(normed.std(unbiased=False)) == pytest.approx(
        1.0, abs=1e-4
    )


def test_colour_majority_gives_rgb_and_a_given_size_resizes_every_image(tmp_path):
    rng = np.random.default_rng(1)
    images = {
        "a": [rng.integers(0, 256, (12, 12, 3), dtype=np.uint8) for _ in range(3)] + grey_images(rng, 1, 12, 12),
        "b": [rng.integers(0, 256, (12, 12, 3), dtype=np.uint8) for _ in range(3)],
    }
    paths = write_png_folder(tmp_path / "colour", images)
    result = add_dataset(tmp_path / "colour", size=5)
    assert result.manifest["mode"] == "RGB" and result.manifest["input_shape"] == [3, 5, 5]
    rows = [
        (label, as_float_images(np.asarray(Image.open(p).convert("RGB").resize((5, 5), Image.Resampling.BILINEAR))))
        for label, cls in enumerate(["a", "b"])
        for p in paths[cls]
    ]
    ds = load(result.name)
    assert multiset(*both_splits(ds)) == expected_multiset(rows)


def test_other_formats_and_a_train_test_layout(tmp_path):
    rng = np.random.default_rng(2)
    root = tmp_path / "split"
    arrays = {}
    for split in ("train", "test"):
        for cls, fmt in (("w", "jpg"), ("x", "bmp"), ("y", "webp"), ("z", "gif")):
            (root / split / cls).mkdir(parents=True)
            a = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
            path = root / split / cls / f"im.{fmt}"
            Image.fromarray(a).save(path, **({"lossless": True} if fmt == "webp" else {}))
            arrays[split, cls] = np.asarray(Image.open(path).convert("RGB"))  # jpg lossy, gif a palette: via PIL
    ds = load(add_dataset(root).name)
    assert ds.meta["class_names"] == ["w", "x", "y", "z"] and ds.input_shape == (3, 6, 6)
    for split, x, y in (("train", ds.x_train, ds.y_train), ("test", ds.x_test, ds.y_test)):
        want = [(i, as_float_images(arrays[split, c])) for i, c in enumerate("wxyz")]
        assert multiset(x, y) == expected_multiset(want)


def test_the_hash_names_the_content_not_the_files(tmp_path):
    rng = np.random.default_rng(3)
    images = {"cat": grey_images(rng, 4), "dog": grey_images(rng, 4)}
    write_png_folder(tmp_path / "one", images)
    # the same pixels under other file names, written in the reverse order
    reversed_images = {c: v[::-1] for c, v in images.items()}
    write_png_folder(tmp_path / "two", reversed_images, names=lambda c, i: f"img_{c}_{100 - i}.png")
    first = add_dataset(tmp_path / "one", name="first")
    again = add_dataset(tmp_path / "two")
    assert again.name == first.name and not again.created and stored_entries() == [first.name[5:]]

    # a zip of the folder (with a top folder and macOS junk) is the same content too
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for p in sorted((tmp_path / "one").rglob("*.png")):
            zf.write(p, f"pets/{p.relative_to(tmp_path / 'one').as_posix()}")
        zf.writestr("__MACOSX/pets/cat/._000.png", b"junk")
    (tmp_path / "pets.zip").write_bytes(buf.getvalue())
    assert add_dataset(tmp_path / "pets.zip").name == first.name
    assert add_bytes(buf.getvalue(), "C:\\Users\\me\\pets.zip").name == first.name

    # one pixel changed: another dataset
    changed = {c: [a.copy() for a in v] for c, v in images.items()}
    changed["dog"][2][3, 4] ^= 1
    write_png_folder(tmp_path / "three", changed)
    other = add_dataset(tmp_path / "three")
    assert other.created and other.name != first.name and len(stored_entries()) == 2


def test_an_alias_maps_to_the_hash_and_cannot_be_taken_twice(tmp_path):
    rng = np.random.default_rng(4)
    write_png_folder(tmp_path / "a", {"p": grey_images(rng, 3), "q": grey_images(rng, 3)})
    write_png_folder(tmp_path / "b", {"p": grey_images(rng, 3), "q": grey_images(rng, 3)})
    a = add_dataset(tmp_path / "a", name="mine")
    assert user_index.canonical("mine") == a.name and user_index.canonical("xor") == "xor"
    # an alias is no registry name: a spec always records the hash
    assert load_user("mine").name == a.name and "mine" not in DATASETS and load(a.name).name == a.name
    with pytest.raises(NNGeoError, match="taken by"):
        add_dataset(tmp_path / "b", name="mine")
    with pytest.raises(NNGeoError, match="built-in"):
        add_dataset(tmp_path / "b", name="mnist")
    with pytest.raises(NNGeoError, match="must start with a letter"):
        add_dataset(tmp_path / "b", name="../x")
    assert add_dataset(tmp_path / "a", name="renamed").manifest["name"] == "renamed"
    assert user_index.find("renamed")["id"] == a.name and user_index.find("mine") is None


# ---------------------------------------------------------------- tensor files, IDX, CSV


def test_npz_and_safetensors_sources(tmp_path):
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(30, 2)).astype(np.float32), rng.integers(0, 3, 30)
    x_test, y_test = rng.normal(size=(9, 2)).astype(np.float32), np.arange(9) % 3
    np.savez(tmp_path / "points.npz", x=x, y=y, x_test=x_test, y_test=y_test)
    ds = load(add_dataset(tmp_path / "points.npz").name)
    assert ds.input_shape == (2,) and ds.num_classes == 3
    assert multiset(ds.x_train, ds.y_train) == expected_multiset(list(zip(y.tolist(), x, strict=True)))
    assert multiset(ds.x_test, ds.y_test) == expected_multiset(list(zip(y_test.tolist(), x_test, strict=True)))

    # a split array and text labels: class names in sorted order
    words = np.array(["red", "blue", "green"])[y]
    split = np.where(np.arange(30) < 24, "train", "test")
    np.savez(tmp_path / "words.npz", x=x, y=words, split=split)
    ds = load(add_dataset(tmp_path / "words.npz").name)
    assert ds.meta["class_names"] == ["blue", "green", "red"]
    index = {"blue": 0, "green": 1, "red": 2}
    want_test = [(index[w], a) for w, a in zip(words[24:], x[24:], strict=True)]
    assert multiset(ds.x_test, ds.y_test) == expected_multiset(want_test)

    # text labels with the class names given: indices follow the given order, not sorted order
    given = np.array(["zebra", "ant"])
    np.savez(tmp_path / "named.npz", x=x[:4], y=np.array(["ant", "zebra", "ant", "zebra"]), class_names=given)
    result = add_dataset(tmp_path / "named.npz", test_fraction=0.5)
    ds = load(result.name)
    assert result.manifest["class_names"] == ["zebra", "ant"]
    want = [(1, x[0]), (0, x[1]), (1, x[2]), (0, x[3])]
    assert multiset(*both_splits(ds)) == expected_multiset(want)
    np.savez(tmp_path / "stray.npz", x=x[:3], y=np.array(["ant", "bee", "ant"]), class_names=given)
    with pytest.raises(NNGeoError, match="holds label 'bee', which is none of the class names"):
        add_dataset(tmp_path / "stray.npz")

    # safetensors: uint8 N×H×W images become N×1×H×W in [0, 1]
    imgs, labels = rng.integers(0, 256, (20, 5, 5), dtype=np.uint8), np.arange(20) % 2
    safetensors.numpy.save_file({"x": imgs, "y": labels}, str(tmp_path / "imgs.safetensors"))
    result = add_dataset(tmp_path / "imgs.safetensors", test_fraction=0.5)
    ds = load(result.name)
    assert ds.input_shape == (1, 5, 5) and result.manifest["counts"] == {"train": 10, "test": 10}
    assert multiset(*both_splits(ds)) == expected_multiset(
        [(int(c), as_float_images(a)) for c, a in zip(labels, imgs, strict=True)]
    )


def test_idx_files_with_a_test_set_and_a_test_only_set(tmp_path):
    rng = np.random.default_rng(6)
    folder = tmp_path / "idx"
    folder.mkdir()
    train_x, train_y = rng.integers(0, 256, (12, 4, 4), dtype=np.uint8), np.arange(12) % 3
    test_x, test_y = rng.integers(0, 256, (6, 4, 4), dtype=np.uint8), np.arange(6) % 3
    write_idx(folder / "train-images-idx3-ubyte", train_x)
    write_idx(folder / "train-labels-idx1-ubyte", train_y)
    write_idx(folder / "t10k-images-idx3-ubyte.gz", test_x)
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", test_y)
    result = add_dataset(folder)
    ds = load(result.name)
    assert (
        result.manifest["source_kind"] == "idx" and ds.input_shape == (1, 4, 4) and result.manifest["split"] == "given"
    )
    assert multiset(ds.x_train, ds.y_train) == expected_multiset(
        [(int(c), as_float_images(a)) for c, a in zip(train_y, train_x, strict=True)]
    )
    assert multiset(ds.x_test, ds.y_test) == expected_multiset(
        [(int(c), as_float_images(a)) for c, a in zip(test_y, test_x, strict=True)]
    )

    # only the t10k files (given as the images file): split here, all examples kept
    only = tmp_path / "t10k"
    only.mkdir()
    write_idx(only / "t10k-images-idx3-ubyte", test_x)
    write_idx(only / "t10k-labels-idx1-ubyte", test_y)
    ds = load(add_dataset(only / "t10k-images-idx3-ubyte", test_fraction=0.34).name)
    assert (len(ds.y_train), len(ds.y_test)) == (3, 3) and sorted(ds.y_test.tolist()) == [0, 1, 2]
    assert multiset(*both_splits(ds)) == expected_multiset(
        [(int(c), as_float_images(a)) for c, a in zip(test_y, test_x, strict=True)]
    )


def test_csv_points_with_text_labels_or_a_last_label_column(tmp_path):
    rng = np.random.default_rng(7)
    x = rng.normal(size=(20, 2)).astype(np.float32)
    names = np.array(["up", "down"])[np.arange(20) % 2]
    lines = ["x1,x2,Class"] + [f"{a!r},{b!r},{n}" for (a, b), n in zip(x.tolist(), names, strict=True)]
    (tmp_path / "pts.csv").write_text("\n".join(lines) + "\n")
    ds = load(add_dataset(tmp_path / "pts.csv").name)
    assert ds.meta["class_names"] == ["down", "up"] and ds.input_shape == (2,)
    want = [(0 if n == "down" else 1, a) for n, a in zip(names, x, strict=True)]
    assert multiset(*both_splits(ds)) == expected_multiset(want)

    # a split column says which rows are the test set
    lines = ["x1,x2,label,split"] + [
        f"{a!r},{b!r},{i % 2},{'test' if i >= 16 else 'train'}" for i, (a, b) in enumerate(x.tolist())
    ]
    (tmp_path / "split.csv").write_text("\n".join(lines) + "\n")
    result = add_dataset(tmp_path / "split.csv")
    ds = load(result.name)
    assert result.manifest["split"] == "given" and result.manifest["features"] == ["x1", "x2"]
    assert multiset(ds.x_test, ds.y_test) == expected_multiset([(i % 2, x[i]) for i in range(16, 20)])

    # no label/y/class column: the last one is the label
    lines = ["a,b,kind"] + [f"{a!r},{b!r},{i % 3}" for i, (a, b) in enumerate(x.tolist())]
    (tmp_path / "last.csv").write_text("\n".join(lines) + "\n")
    ds = load(add_dataset(tmp_path / "last.csv").name)
    assert ds.num_classes == 3
    assert multiset(*both_splits(ds)) == expected_multiset([(i % 3, a) for i, a in enumerate(x)])


# ---------------------------------------------------------------- the registry and other processes


def test_a_fresh_process_loads_it_by_name(tmp_path):
    rng = np.random.default_rng(8)
    write_png_folder(tmp_path / "pets", {"cat": grey_images(rng, 5), "dog": grey_images(rng, 5)})
    name = add_dataset(tmp_path / "pets", name="pets").name
    here = load(name, seed=3, n_train=6)
    code = (
        "import json, sys\n"
        "from nngeo_core.data import load, dataset_info, user\n"
        "from nngeo_core import user_index\n"
        "assert sys.argv[1] in user.register_user_datasets()\n"
        "ds = load(user_index.canonical('pets'), seed=3, n_train=6)\n"
        "print(json.dumps({'name': ds.name, 'spec': ds.meta['spec'].name, 'x': ds.x_train.tolist(),\n"
        "                  'y': ds.y_train.tolist(), 'xt': ds.x_test.tolist(),\n"
        "                  'shape': list(dataset_info(sys.argv[1]).input_shape)}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, name], capture_output=True, text=True, env=dict(os.environ), cwd=ROOT, timeout=120
    )
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["name"] == got["spec"] == name and got["shape"] == [1, 8, 8]
    assert torch.equal(torch.tensor(got["x"]), here.x_train) and got["y"] == here.y_train.tolist()
    assert torch.equal(torch.tensor(got["xt"]), here.x_test)


def test_registering_reads_manifests_and_loading_checks_the_content(tmp_path):
    rng = np.random.default_rng(9)
    write_png_folder(tmp_path / "pets", {"cat": grey_images(rng, 3), "dog": grey_images(rng, 3)})
    name = add_dataset(tmp_path / "pets").name
    DATASETS.remove(name)
    assert name not in DATASETS.names() and lookup(name) is not None and name in DATASETS.names()  # on demand
    assert lookup("xor") is None and lookup("user:000000000000") is None
    folder = user_index.folder_of(name)
    tensors = folder / user_index.TENSORS
    saved = tensors.read_bytes()
    tensors.unlink()
    # the declaration comes from the manifest alone
    assert dataset_info(name).input_shape == (1, 8, 8) and dataset_info(name).num_classes == 2
    assert register_user_datasets() == [name]
    with pytest.raises(NNGeoError, match="cannot read the data"):
        load(name)
    arrays = safetensors.numpy.load(saved)
    arrays["x_train"][0, 0, 0, 0] ^= 1
    safetensors.numpy.save_file(arrays, str(tensors))
    with pytest.raises(NNGeoError, match="changed since it was added"):
        load(name)
    with pytest.raises(NNGeoError, match="has no parameter 'resize'"):
        dataset_info(name, resize=28)


def test_check_fits_compares_shapes_and_classes():
    info = DatasetInfo(name="user:ab12cd34ef56", input_shape=(1, 28, 28), num_classes=2, description="")
    with pytest.raises(NNGeoError) as err:
        check_fits(info, (3, 32, 32), 10)
    assert str(err.value).startswith(
        "the model takes 3×32×32 inputs with 10 classes; dataset 'user:ab12cd34ef56' has 1×28×28 inputs and 2 classes"
    )
    check_fits(info, (1, 28, 28), 2)
    check_fits(info, (784,), 2)  # a flat input takes the flattened image
    with pytest.raises(NNGeoError, match="2 classes"):
        check_fits(info, (1, 28, 28), 10)
    with pytest.raises(NNGeoError, match="has 1×28×28 inputs"):
        check_fits({"id": info.name, "input_shape": [1, 28, 28], "num_classes": 2}, (783,), 2)


# ---------------------------------------------------------------- the command line


@pytest.fixture
def data_main(monkeypatch):
    if "nngeo_core.data_cli" not in cli.COMMAND_MODULES:  # until nngeo_core.cli lists it
        monkeypatch.setattr(cli, "COMMAND_MODULES", [*cli.COMMAND_MODULES, "nngeo_core.data_cli"])
    return cli.main


def test_nngeo_data_add_and_list(tmp_path, capsys, data_main):
    rng = np.random.default_rng(10)
    write_png_folder(tmp_path / "pets", {"cat": grey_images(rng, 4), "dog": grey_images(rng, 4)})
    assert data_main(["data", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert data_main(["data", "add", str(tmp_path / "pets"), "--name", "pets", "--size", "4"]) == 0
    out = capsys.readouterr()
    name = out.out.strip()
    assert name.startswith("user:") and "stored" in out.err and "4" in out.err
    assert data_main(["data", "add", str(tmp_path / "pets"), "--size", "4,4", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["name"] == name and record["created"] is False and record["manifest"]["input_shape"] == [1, 4, 4]
    assert data_main(["data", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["name"], r["alias"], r["counts"]) for r in rows] == [(name, "pets", {"train": 6, "test": 2})]
    assert data_main(["data", "list"]) == 0
    assert name in capsys.readouterr().out
    # a bad source: one line, exit 2, nothing more stored
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    assert data_main(["data", "add", str(tmp_path / "bad.npz")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("nngeo: error: cannot read bad.npz") and "\n" not in err
    assert stored_entries() == [name[5:]]


# ---------------------------------------------------------------- bad input: one line, nothing stored


def _zip(path: Path, members: dict[str, bytes], links: tuple[str, ...] = ()) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        for name in links:
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "/etc/passwd")
    return path


def _png(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "PNG")
    return buf.getvalue()


def test_bad_zips(tmp_path):
    rng = np.random.default_rng(11)
    good = {f"{c}/{i}.png": _png(a) for c in "ab" for i, a in enumerate(grey_images(rng, 2))}
    (tmp_path / "corrupt.zip").write_bytes(b"PK\x03\x04 this is no zip at all")
    refused(tmp_path / "corrupt.zip", "not a readable zip")
    refused(_zip(tmp_path / "up.zip", {**good, "../evil.png": good["a/0.png"]}), "unsafe path '../evil.png'")
    refused(_zip(tmp_path / "abs.zip", {**good, "/etc/evil.png": good["a/0.png"]}), "unsafe path")
    refused(_zip(tmp_path / "link.zip", good, links=("a/link.png",)), "symbolic link")
    with zipfile.ZipFile(tmp_path / "bomb.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in good.items():
            zf.writestr(name, data)
        zf.writestr("a/huge.png", bytes(2**20))  # a MB of zeros packs into a kB
    assert (tmp_path / "bomb.zip").stat().st_size < 2**14
    refused(tmp_path / "bomb.zip", "unpacks to 1.0 MB; the limit is 16,384 bytes", max_bytes=2**14)
    assert not (tmp_path / "evil.png").exists() and not Path("/etc/evil.png").exists()


def test_bad_images_and_folders(tmp_path):
    rng = np.random.default_rng(12)
    write_png_folder(tmp_path / "garbage", {"a": grey_images(rng, 2), "b": grey_images(rng, 2)})
    (tmp_path / "garbage" / "b" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    assert "b/broken.png" in refused(tmp_path / "garbage", "cannot read image b/broken.png")
    write_png_folder(tmp_path / "cut", {"a": grey_images(rng, 2, 32, 32), "b": grey_images(rng, 2, 32, 32)})
    full = (tmp_path / "cut" / "a" / "000.png").read_bytes()
    (tmp_path / "cut" / "a" / "000.png").write_bytes(full[: len(full) // 2])  # header intact, pixels cut
    refused(tmp_path / "cut", "a/000.png")
    (tmp_path / "empty").mkdir()
    refused(tmp_path / "empty", "empty")
    write_png_folder(tmp_path / "one", {"only": grey_images(rng, 3)})
    refused(tmp_path / "one", "only one class")
    write_png_folder(tmp_path / "hollow", {"a": grey_images(rng, 2), "b": grey_images(rng, 2)})
    (tmp_path / "hollow" / "c").mkdir()
    refused(tmp_path / "hollow", "class folder 'c' holds no images")
    write_png_folder(tmp_path / "wrapped" / "inner", {"a": grey_images(rng, 2), "b": grey_images(rng, 2)})
    (tmp_path / "wrapped" / "inner" / "c").mkdir()  # an empty class under a folder around the classes
    refused(tmp_path / "wrapped", "class folder 'c' holds no images")
    (tmp_path / "wrapped" / "inner" / "c").rmdir()
    assert add_dataset(tmp_path / "wrapped").manifest["class_names"] == ["a", "b"]  # the wrapper is looked through
    _clear_stored()
    members = {f"top/{c}/{i}.png": _png(a) for c in "ab" for i, a in enumerate(grey_images(rng, 2))}
    with zipfile.ZipFile(tmp_path / "hollow.zip", "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        zf.writestr(zipfile.ZipInfo("top/c/"), b"")  # an empty class folder, as zip tools store one
    refused(tmp_path / "hollow.zip", "class folder 'c' holds no images")
    write_png_folder(tmp_path / "loose", {"a": grey_images(rng, 2), "b": grey_images(rng, 2)})
    Image.fromarray(grey_images(rng, 1)[0]).save(tmp_path / "loose" / "stray.png")
    refused(tmp_path / "loose", "stray.png is not in the layout")
    write_png_folder(tmp_path / "huge", {"a": grey_images(rng, 2), "b": grey_images(rng, 2)})
    refused(tmp_path / "huge", "the limit is", max_bytes=100)
    refused(tmp_path / "missing", "no such file or folder")
    refused(tmp_path / "huge", "size must be one side or", size="big")
    refused(tmp_path / "huge", "image height must be at least 1", size=(4, 0))
    refused(tmp_path / "huge", "mode must be auto, L or RGB", mode="CMYK")


@pytest.mark.parametrize(
    ("arrays", "match"),
    [
        (
            {"x": np.zeros((4, 2)), "y": np.array([0, 1, 2, 1]), "class_names": np.array(["a", "b"])},
            "out of range 0..1",
        ),
        ({"x": np.zeros((4, 2)), "y": np.array([0, 1, -1, 1])}, "must be 0 or more; example 2 has -1"),
        ({"x": np.zeros((4, 2)), "y": np.array([0, 1, 0.5, 1])}, "whole numbers; example 2 has 0.5"),
        ({"x": np.zeros((4, 2)), "y": np.array([0, 2, 0, 2])}, "no example has label 1"),
        ({"x": np.zeros((4, 2)), "y": np.zeros(4, dtype=int)}, "only one class"),
        ({"x": np.zeros((5, 2)), "y": np.array([0, 1, 0, 1])}, "x has 5 examples but y has 4 labels"),
        ({"x": np.array([[0, 1], [np.nan, 0], [1, 1], [2, 2]]), "y": np.array([0, 1, 0, 1])}, "NaN or infinite values"),
        ({"x": np.zeros((4, 2)), "labels": np.array([0, 1, 0, 1])}, "needs arrays 'x' and 'y'"),
        (
            {
                "x": np.zeros((4, 2)),
                "y": np.array([0, 1, 0, 1]),
                "x_test": np.zeros((2, 3)),
                "y_test": np.array([0, 1]),
            },
            "x_test has 3",
        ),
        (
            {
                "x": np.zeros((4, 2)),
                "y": np.array([0, 1, 0, 1]),
                "x_test": np.zeros((2, 2)),
                "y_test": np.array([0, 0]),
            },
            None,
        ),
    ],
)
def test_bad_tensor_files(tmp_path, arrays, match):
    np.savez(tmp_path / "t.npz", **arrays)
    if match is None:  # the control: a test set without class 1 is fine, so the others fail for their reason
        assert add_dataset(tmp_path / "t.npz").manifest["counts"] == {"train": 4, "test": 2}
        return
    refused(tmp_path / "t.npz", match)


def test_pickled_npz_and_oversized_and_bad_idx_files_are_refused(tmp_path):
    np.savez(tmp_path / "obj.npz", x=np.array([{"a": 1}, {"b": 2}], dtype=object), y=np.array([0, 1]))
    refused(tmp_path / "obj.npz", "allow_pickle")  # never unpickled
    np.savez(tmp_path / "big.npz", x=np.zeros((100, 2)), y=np.arange(100) % 2)
    refused(tmp_path / "big.npz", "the limit is", max_bytes=1000)
    (tmp_path / "x.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    refused(tmp_path / "x.safetensors", "cannot read x.safetensors as tensors")
    idx = tmp_path / "idx"
    idx.mkdir()
    write_idx(idx / "train-images-idx3-ubyte", np.zeros((3, 2, 2), dtype=np.uint8))
    refused(idx, "no labels file train-labels-idx1-ubyte")
    write_idx(idx / "train-labels-idx1-ubyte", np.array([0, 1, 0, 1]))
    refused(idx, "x has 3 examples but y has 4 labels")
    (idx / "train-images-idx3-ubyte").write_bytes((idx / "train-images-idx3-ubyte").read_bytes()[:-1])
    refused(idx, "declares 3×2×2 values but holds 11 bytes")
    (idx / "train-images-idx3-ubyte").write_bytes(b"\x01\x02\x03\x04")
    refused(idx, "bad magic number")


def test_bad_csv_files(tmp_path):
    (tmp_path / "frac.csv").write_text("a,b,score\n0,1,0.25\n1,0,0.5\n1,1,0.75\n")
    refused(tmp_path / "frac.csv", "no usable label column")
    (tmp_path / "text.csv").write_text("a,colour,label\n0,red,0\n1,blue,1\n1,red,1\n")
    refused(tmp_path / "text.csv", "feature column 'colour' is not numeric")
    (tmp_path / "nan.csv").write_text("a,b,label\n0,1,0\n1,,1\n1,1,1\n0,0,0\n")
    refused(tmp_path / "nan.csv", "NaN")
    (tmp_path / "one.csv").write_text("label\n0\n1\n")
    refused(tmp_path / "one.csv", "feature columns")
    (tmp_path / "hole.csv").write_text("a,y\n0,0\n1,\n2,1\n")
    refused(tmp_path / "hole.csv", "label column 'y' is empty in row 3")
    (tmp_path / "unknown.txt").write_text("hello")
    refused(tmp_path / "unknown.txt", "not a dataset nngeo reads")


def test_the_index_checks_names_without_loading_anything(tmp_path):
    rng = np.random.default_rng(13)
    write_png_folder(tmp_path / "pets", {"cat": grey_images(rng, 3), "dog": grey_images(rng, 3)})
    name = add_dataset(tmp_path / "pets", name="pets").name
    assert user_index.check(name) and user_index.check("pets") and not user_index.check("xor")
    with pytest.raises(NNGeoError, match="no user dataset 'user:000000000000'"):
        user_index.check("user:000000000000")
    with pytest.raises(NNGeoError, match="no user dataset"):
        load_user("user:000000000000")
    rows = user_index.catalogue_rows()
    assert [(r["name"], r["alias"], r["input_shape"], r["num_classes"]) for r in rows] == [(name, "pets", (1, 8, 8), 2)]
    info = dataset_info(name)
    assert rows[0]["description"] == info.description and rows[0]["defaults"] == info.defaults
    # the index reads manifests with the standard library only: no torch, PIL or NumPy
    code = (
        "import sys\n"
        "from nngeo_core import user_index\n"
        "assert user_index.canonical('pets') == sys.argv[1] and user_index.check(sys.argv[1])\n"
        "heavy = sorted(m for m in ('torch', 'PIL', 'numpy', 'pandas') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    out = subprocess.run([sys.executable, "-c", code, name], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr


def test_hooked_a_fresh_process_finds_a_dataset_stored_after_it_started(tmp_path):
    rng = np.random.default_rng(20)
    write_png_folder(tmp_path / "pets", {"cat": grey_images(rng, 4), "dog": grey_images(rng, 4)})
    name = add_dataset(tmp_path / "pets").name
    DATASETS.remove(name)  # as in a process that has not seen it: the registry's fallback finds it
    assert name in DATASETS and name in list_datasets()
    code = "import sys\nfrom nngeo_core.data import load\nprint(load(sys.argv[1]).x_train.sum().item())\n"
    out = subprocess.run([sys.executable, "-c", code, name], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert float(out.stdout) == pytest.approx(float(load(name).x_train.sum()))


def test_hooked_train_on_an_alias_records_the_hash(tmp_path, capsys):
    rng = np.random.default_rng(21)
    x = rng.normal(size=(60, 2))
    lines = ["a,b,label"] + [f"{p!r},{q!r},{int(p * q > 0)}" for p, q in x.tolist()]
    (tmp_path / "quad.csv").write_text("\n".join(lines) + "\n")
    assert cli.main(["data", "add", str(tmp_path / "quad.csv"), "--name", "quad"]) == 0
    name = capsys.readouterr().out.strip()
    assert cli.main(["datasets", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows[name]["input_shape"] == [2] and rows[name]["alias"] == "quad" and "xor" in rows
    assert cli.main(["train", "--model", "mlp", "--data", "quad", "--epochs", "1", "--json", "--quiet"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["data"] == name  # the alias was resolved before the spec was made
    from nngeo_core.store import default_store

    spec = json.loads(default_store().entry(info["run"])["spec"])
    assert spec["data"]["name"] == name
    assert cli.main(["train", "--data", "user:000000000000", "--epochs", "1"]) == 2
    assert "no user dataset 'user:000000000000'" in capsys.readouterr().err
