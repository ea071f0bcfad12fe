"""The index of the user's own datasets: their manifests, read without torch.

A dataset added with ``nngeo data add`` (``data.user``) lives in
``<data_dir>/user/<12 hex>/`` as ``data.safetensors`` (the tensors) and ``manifest.json`` (what it
is). Its registry name is ``user:<12 hex>``, the start of the sha256 of its canonical contents, so
a run spec naming it names exactly that data; a name the user gave is only an alias that
``canonical`` turns into that name before any spec is made.

This module imports nothing heavy, so listings and name checks (``nngeo data list``, the
catalogue) answer at once; ``data.user`` writes and loads the data.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from .errors import NNGeoError
from .settings import get_settings

PREFIX = "user:"
HASH_CHARS = 12  # hex digits of the sha256 in the name: 48 bits, checked against the full hash on add
MANIFEST = "manifest.json"
TENSORS = "data.safetensors"
FORMAT = 1  # manifest format version
DEFAULT_MAX_MB = 1024  # a source (or a zip's contents) larger than this is refused unless asked
ALIAS_RE = re.compile(r"[A-Za-z][A-Za-z0-9_.\-]{0,63}")
ID_RE = re.compile(rf"{re.escape(PREFIX)}[0-9a-f]{{{HASH_CHARS}}}")


def user_root(data_dir: Path | None = None) -> Path:
    return Path(data_dir if data_dir is not None else get_settings().data_dir) / "user"


def dataset_id(sha256: str) -> str:
    return PREFIX + sha256[:HASH_CHARS]


def folder_of(dataset: str, data_dir: Path | None = None) -> Path:
    """The folder of ``user:<hash>`` (whether or not it exists)."""
    if not ID_RE.fullmatch(dataset):
        raise NNGeoError(f"{dataset!r} is not a user dataset name (user:<{HASH_CHARS} hex digits>)")
    return user_root(data_dir) / dataset[len(PREFIX) :]


def read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise NNGeoError(
            f"cannot read {path} ({type(exc).__name__}); delete its folder and add the data again"
        ) from None
    if not isinstance(manifest, dict) or manifest.get("id") != PREFIX + folder.name:
        raise NNGeoError(f"{path} does not describe {PREFIX}{folder.name}; delete its folder and add the data again")
    return manifest


def read_manifests(data_dir: Path | None = None) -> list[dict[str, Any]]:
    """Every stored user dataset's manifest, oldest first (half-written folders are skipped:
    they start with a dot until they are complete)."""
    root = user_root(data_dir)
    if not root.is_dir():
        return []
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    manifests = [read_manifest(p) for p in folders if (p / MANIFEST).is_file()]
    return sorted(manifests, key=lambda m: (str(m.get("created", "")), m["id"]))


def find(name: str, data_dir: Path | None = None) -> dict[str, Any] | None:
    """The manifest of ``user:<hash>`` or of the dataset the user named ``name``; None if neither."""
    if not isinstance(name, str):
        return None
    if ID_RE.fullmatch(name):
        folder = folder_of(name, data_dir)
        return read_manifest(folder) if (folder / MANIFEST).is_file() else None
    if not ALIAS_RE.fullmatch(name):
        return None
    return next((m for m in read_manifests(data_dir) if m.get("name") == name), None)


def canonical(name: str, data_dir: Path | None = None) -> str:
    """``user:<hash>`` for a user dataset's alias; any other name unchanged (derived forms and
    names already of the form user:<hash> need no look-up, so nothing is read for them)."""
    if not isinstance(name, str) or not ALIAS_RE.fullmatch(name):
        return name
    manifest = find(name, data_dir)
    return str(manifest["id"]) if manifest is not None else name


def check(name: str, data_dir: Path | None = None) -> bool:
    """True when ``name`` is a stored user dataset (by hash or alias); a ``user:`` name that is
    not stored is a one-line error; False for any other name (left to the other checks)."""
    if find(name, data_dir) is not None:
        return True
    if isinstance(name, str) and name.startswith(PREFIX):
        raise NNGeoError(f"no user dataset {name!r}; add one with `nngeo data add PATH` (see `nngeo data list`)")
    return False


def shape_text(shape: Any) -> str:
    return "×".join(str(int(s)) for s in shape)


def describe(manifest: dict[str, Any]) -> str:
    """The one-line description listings show."""
    counts = manifest.get("counts", {})
    alias = f"{manifest['name']}: " if manifest.get("name") and manifest["name"] != manifest["id"] else ""
    return (
        f"{alias}your data from {manifest.get('source', '?')} ({manifest.get('source_kind', '?')}), "
        f"{shape_text(manifest.get('input_shape', ()))} inputs, {manifest.get('num_classes')} classes, "
        f"{counts.get('train', 0)} train / {counts.get('test', 0)} test"
    )


def catalogue_rows(data_dir: Path | None = None) -> list[dict[str, Any]]:
    """The user datasets as ``nngeo datasets --json`` rows (the catalogue's fields)."""
    return [
        {
            "name": m["id"],
            "input_shape": tuple(m["input_shape"]),
            "num_classes": int(m["num_classes"]),
            "description": describe(m),
            "needs_files": True,
            "defaults": dict(LOADER_DEFAULTS),
            "alias": m.get("name"),
        }
        for m in read_manifests(data_dir)
    ]


# the parameters every user dataset's loader takes (besides seed), and their defaults
LOADER_DEFAULTS: dict[str, Any] = {"n_train": None, "n_test": None, "normalize": False}
