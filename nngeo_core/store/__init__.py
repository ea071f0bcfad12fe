"""Content-addressed Parquet store: every result is one Parquet file named by its spec hash.

Layout under the root (a local folder or any fsspec URL such as ``s3://bucket/nngeo``)::

    results/<kind>/<key>.parquet     the result table; its schema metadata carries the spec JSON,
                                     the kind and the package version, so old results stay readable
    artifacts/<key>/<name>           binary artefacts of a result (checkpoints, snapshots)
    catalog/<key>.parquet            one row describing the result (model, data, method, ...)

Writes are atomic: each file is written under a temporary name in the same folder and renamed
into place, and the catalog row is written last, so a result is visible only once complete. A
writer killed half-way leaves at most a ``.tmp-*`` file, which readers never look at and
``Store.clean_temp`` removes. Several processes may write at once: names are content hashes and
each catalog row is its own file, so writers never touch the same file unless they compute the
same result, in which case either complete copy is correct.
"""

from __future__ import annotations

import io
import json
import os
import time
import uuid
from collections.abc import Mapping
from typing import Any

import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from .. import __version__
from ..errors import NNGeoError
from ..settings import get_settings
from ..specs import spec_hash, to_dict

# catalog columns with fixed types, so every catalog file has the same schema
CATALOG_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("kind", pa.string()),
        ("created", pa.float64()),
        ("version", pa.string()),
        ("model", pa.string()),
        ("data", pa.string()),
        ("method", pa.string()),
        ("strategy", pa.string()),
        ("sparsity", pa.float64()),
        ("seed", pa.int64()),
        ("run", pa.string()),
        ("label", pa.string()),
        ("metric", pa.float64()),
        ("n_rows", pa.int64()),
        ("attrs", pa.string()),
        ("spec", pa.string()),
    ]
)
CATALOG_COLUMNS = [f.name for f in CATALOG_SCHEMA]
TEMP_PREFIX = ".tmp-"


MODEL_KINDS = ("train", "upload", "prune")  # the result kinds whose artifacts hold a model


def filter_catalog(catalog: pd.DataFrame, **filters: Any) -> pd.DataFrame:
    """Catalog rows whose columns equal the filters (a list means 'any of'; None: no filter), in
    their order: what ``Store.catalog(**filters)`` selects, applied to a catalog already read."""
    df = catalog
    for col, want in filters.items():
        if want is None:
            continue
        if col not in df.columns:
            raise NNGeoError(f"the catalog has no column {col!r}; columns: {', '.join(CATALOG_COLUMNS)}")
        df = df[df[col].isin(want if isinstance(want, (list, tuple, set)) else [want])]
    return df.reset_index(drop=True)


class Store:
    def __init__(self, root: str | os.PathLike | None = None):
        self.root = str(root if root is not None else get_settings().store)
        self.fs, self.path = fsspec.core.url_to_fs(self.root)
        self.local = "file" in _protocols(self.fs)
        if self.local:
            self.path = os.path.abspath(self.path)
        self.fs.makedirs(self.path, exist_ok=True)

    def __repr__(self) -> str:
        return f"Store({self.root!r})"

    # -- paths -----------------------------------------------------------------------------
    def _join(self, *parts: str) -> str:
        return "/".join([self.path.rstrip("/"), *parts])

    def result_path(self, kind: str, key: str) -> str:
        return self._join("results", _safe(kind), f"{_safe(key)}.parquet")

    def catalog_path(self, key: str) -> str:
        return self._join("catalog", f"{_safe(key)}.parquet")

    def artifact_path(self, key: str, name: str) -> str:
        return self._join("artifacts", _safe(key), _safe(name))

    # -- atomic write ----------------------------------------------------------------------
    def write_bytes(self, path: str, data: bytes) -> None:
        folder = path.rsplit("/", 1)[0]
        self.fs.makedirs(folder, exist_ok=True)
        if self.local:
            tmp = f"{folder}/{TEMP_PREFIX}{uuid.uuid4().hex}"
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)  # atomic on POSIX: readers see the old file or the new one
        else:
            # object stores make an object visible only when its upload completes
            self.fs.pipe_file(path, data)

    # -- results ---------------------------------------------------------------------------
    def put(
        self,
        kind: str,
        spec: Any,
        table: pd.DataFrame | pa.Table | None = None,
        *,
        artifacts: Mapping[str, bytes] | None = None,
        attrs: Mapping[str, Any] | None = None,
        key: str | None = None,
    ) -> str:
        """Store a result under the hash of ``spec``; returns its key."""
        key = key or spec_hash(spec)
        spec_json = json.dumps(to_dict(spec), sort_keys=True) if not isinstance(spec, str) else spec
        if table is None:
            table = pd.DataFrame()
        arrow = table if isinstance(table, pa.Table) else pa.Table.from_pandas(table, preserve_index=False)
        meta = dict(arrow.schema.metadata or {})
        meta.update(
            {
                b"nngeo.spec": spec_json.encode(),
                b"nngeo.kind": kind.encode(),
                b"nngeo.version": __version__.encode(),
                b"nngeo.key": key.encode(),
            }
        )
        arrow = arrow.replace_schema_metadata(meta)
        for name, data in (artifacts or {}).items():
            self.write_bytes(self.artifact_path(key, name), bytes(data))
        self.write_bytes(self.result_path(kind, key), parquet_bytes(arrow))
        row = _catalog_row(key, kind, spec_json, arrow.num_rows, attrs or {})
        self.write_bytes(self.catalog_path(key), parquet_bytes(pa.Table.from_pylist([row], schema=CATALOG_SCHEMA)))
        return key

    def exists(self, key: str) -> bool:
        return self.fs.exists(self.catalog_path(key))

    def entry(self, key: str) -> dict:
        """The catalog row of one result (accepts a unique key prefix)."""
        return self._read_table(self.catalog_path(self.resolve(key))).to_pylist()[0]

    def model_entry(self, key: str) -> dict:
        """``entry(key)`` of a result that holds a model (kind in ``MODEL_KINDS``), else a one-line error."""
        entry = self.entry(key)
        if entry["kind"] not in MODEL_KINDS:
            raise NNGeoError(
                f"result {entry['key']} is a {entry['kind']} result, not a model; "
                "give a trained, uploaded or pruned model"
            )
        return entry

    def resolve(self, key: str) -> str:
        """Full key for a key or unique prefix (as printed by ``nngeo list``)."""
        key = str(key).strip()
        if not key or any(c not in "0123456789abcdef" for c in key):
            raise NNGeoError(f"{key!r} is not a result key (expected hex digits, as `nngeo list` prints)")
        if self.exists(key):
            return key
        matches = [k for k in self.keys() if k.startswith(key)]
        if not matches:
            raise NNGeoError(f"no result {key!r} in the store at {self.root}")
        if len(matches) > 1:
            raise NNGeoError(f"{key!r} matches {len(matches)} results; give more digits")
        return matches[0]

    def keys(self) -> list[str]:
        folder = self._join("catalog")
        if not self.fs.exists(folder):
            return []
        names = [p.rsplit("/", 1)[-1] for p in self.fs.ls(folder, detail=False)]
        return sorted(n[:-8] for n in names if n.endswith(".parquet") and not n.startswith(TEMP_PREFIX))

    def get(self, key: str) -> pd.DataFrame:
        """The result table."""
        e = self.entry(key)
        return self._read_table(self.result_path(e["kind"], e["key"])).to_pandas()

    def get_arrow(self, key: str) -> pa.Table:
        e = self.entry(key)
        return self._read_table(self.result_path(e["kind"], e["key"]))

    def spec(self, key: str) -> dict:
        return json.loads(self.entry(key)["spec"])

    def _read_table(self, path: str) -> pa.Table:
        try:
            if self.local:
                return pq.read_table(path)
            with self.fs.open(path, "rb") as fh:
                return pq.read_table(fh)
        except FileNotFoundError:
            raise NNGeoError(f"result file {path} is missing from the store") from None

    def read_artifact(self, key: str, name: str, start: int | None = None, end: int | None = None) -> bytes:
        """The artefact's bytes (``start``/``end``: only that range, e.g. a file header)."""
        path = self.artifact_path(self.resolve(key), name)
        try:
            return self.fs.cat_file(path, start=start, end=end)
        except FileNotFoundError:
            raise NNGeoError(f"result {key} has no artefact {name!r}") from None

    def artifacts(self, key: str) -> list[str]:
        folder = self._join("artifacts", _safe(self.resolve(key)))
        if not self.fs.exists(folder):
            return []
        return sorted(
            p.rsplit("/", 1)[-1]
            for p in self.fs.ls(folder, detail=False)
            if not p.rsplit("/", 1)[-1].startswith(TEMP_PREFIX)
        )

    # -- catalog ---------------------------------------------------------------------------
    def catalog(self, **filters: Any) -> pd.DataFrame:
        """All catalog rows, newest first, filtered by column equality (a list means 'any of')."""
        folder = self._join("catalog")
        files = []
        if self.fs.exists(folder):
            files = [
                p
                for p in self.fs.ls(folder, detail=False)
                if p.endswith(".parquet") and not p.rsplit("/", 1)[-1].startswith(TEMP_PREFIX)
            ]
        if not files:
            return pd.DataFrame(
                {
                    c: pd.Series(dtype=t.to_pandas_dtype())
                    for c, t in zip(CATALOG_COLUMNS, CATALOG_SCHEMA.types, strict=False)
                }
            )
        dataset = ds.dataset(files, format="parquet", schema=CATALOG_SCHEMA, filesystem=None if self.local else self.fs)
        df = dataset.to_table().to_pandas()
        return filter_catalog(df, **filters).sort_values("created", ascending=False).reset_index(drop=True)

    def delete(self, key: str) -> None:
        """Remove a result: catalog row first (so it disappears at once), then its files."""
        e = self.entry(key)
        self.fs.rm(self.catalog_path(e["key"]))
        for path in (self.result_path(e["kind"], e["key"]), self._join("artifacts", _safe(e["key"]))):
            if self.fs.exists(path):
                self.fs.rm(path, recursive=True)

    def export(self, key: str, fmt: str = "csv", dest: str | None = None) -> str:
        """Write a result table as CSV or Parquet to ``dest`` (default ./<key>.<fmt>)."""
        if fmt not in ("csv", "parquet"):
            raise NNGeoError(f"unknown export format {fmt!r}; use csv or parquet")
        e = self.entry(key)
        dest = dest or f"{e['key']}.{fmt}"
        if fmt == "csv":
            self.get(e["key"]).to_csv(dest, index=False)
        else:
            pq.write_table(self.get_arrow(e["key"]), dest)
        return dest

    def clean_temp(self, older_than: float = 3600.0) -> int:
        """Remove temporary files left by killed writers; returns how many."""
        if not self.local:
            return 0
        removed = 0
        now = time.time()
        for dirpath, _, files in os.walk(self.path):
            for f in files:
                p = os.path.join(dirpath, f)
                if f.startswith(TEMP_PREFIX) and now - os.path.getmtime(p) >= older_than:
                    os.remove(p)
                    removed += 1
        return removed

    def temp_files(self) -> list[str]:
        """Leftover temporary files (for crash tests and `nngeo doctor`)."""
        if not self.local:
            return []
        return [os.path.join(d, f) for d, _, fs in os.walk(self.path) for f in fs if f.startswith(TEMP_PREFIX)]


def _protocols(fs) -> tuple:
    p = fs.protocol
    return tuple(p) if isinstance(p, (tuple, list)) else (p,)


def _safe(name: str) -> str:
    """Refuse path tricks in keys and names (they come from specs and uploads)."""
    name = str(name)
    if not name or "/" in name or "\\" in name or name in (".", "..") or name.startswith(TEMP_PREFIX) or "\x00" in name:
        raise NNGeoError(f"invalid name {name!r} for the store")
    return name


def parquet_bytes(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def _catalog_row(key: str, kind: str, spec_json: str, n_rows: int, attrs: Mapping[str, Any]) -> dict:
    known = {c for c in CATALOG_COLUMNS}
    row: dict[str, Any] = {c: None for c in CATALOG_COLUMNS}
    extra: dict[str, Any] = {}
    for k, v in attrs.items():
        if k in known and k not in ("key", "kind", "created", "version", "spec", "attrs", "n_rows"):
            row[k] = v
        else:
            extra[k] = v
    for num in ("sparsity", "metric"):
        row[num] = None if row[num] is None else float(row[num])
    row["seed"] = None if row["seed"] is None else int(row["seed"])
    for s in ("model", "data", "method", "strategy", "run", "label"):
        row[s] = None if row[s] is None else str(row[s])
    row.update(
        key=key,
        kind=kind,
        created=time.time(),
        version=__version__,
        spec=spec_json,
        n_rows=int(n_rows),
        attrs=json.dumps(extra, sort_keys=True, default=str),
    )
    return row


def default_store() -> Store:
    return Store(get_settings().store)
