"""Re-key a store written under the old hash rule (nngeo 0.1.0 hashed every spec field) to the
current one (only values that differ from their defaults), losing nothing.

Each result whose key is its spec's old hash is rewritten under the key the current code computes
for the same request: its spec with the declared defaults filled in (``complete``, passed in by the
caller so the store does not import the registries above it), and with the keys it names (an
analysis's ``run``, a forgetting path's ``run_b``, a sweep table's ``run`` column) replaced by their
new keys. Results are rewritten before the results that name them. The new copy is complete
before the old one is removed, so a migration killed half-way leaves every result readable under
at least one key, and running it again finishes the job. Keys that are not a spec's hash (none in
0.1.0) are kept as they are.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from ..specs import SPEC_TYPES, AnalysisSpec, spec_from_dict, spec_hash, to_dict
from . import CATALOG_SCHEMA, Store, parquet_bytes

KIND_ORDER = ("train", "upload", "health", "prune-sweep", "analyse")  # named results before their namers


@dataclass
class Migration:
    """What ``migrate`` did (or, with ``dry_run``, would do): old key -> new key."""

    renamed: dict[str, str] = field(default_factory=dict)
    unchanged: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # keys that are no spec hash: left alone

    def summary(self) -> str:
        return f"{len(self.renamed)} re-keyed, {len(self.unchanged)} already current, {len(self.kept)} kept as they are"


def legacy_key(spec_json: Mapping[str, Any] | str) -> str:
    """The key nngeo 0.1.0 gave a spec: sha256 of its canonical JSON with every field but the
    unhashed ones (the device), as stored."""
    plain = json.loads(spec_json) if isinstance(spec_json, str) else spec_json
    text = json.dumps(_legacy_plain(plain), sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return hashlib.sha256(text.encode("ascii")).hexdigest()[:16]


def _legacy_plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        cls = SPEC_TYPES.get(obj.get("__type__", ""))
        unhashed: set[str] = set()
        if cls is not None:
            unhashed = {f.name for f in dataclasses.fields(cls) if not f.metadata.get("hash", True)}
        return {k: _legacy_plain(v) for k, v in obj.items() if k not in unhashed}
    if isinstance(obj, list):
        return [_legacy_plain(v) for v in obj]
    return obj


def _remap(spec: Any, renamed: Mapping[str, str]) -> Any:
    if isinstance(spec, AnalysisSpec):
        params = dict(spec.params)
        if isinstance(params.get("run_b"), str):
            params["run_b"] = renamed.get(params["run_b"], params["run_b"])
        return spec.replace(run=renamed.get(spec.run, spec.run), params=params)
    return spec


def migrate(store: Store, complete: Callable[[Any], Any], *, dry_run: bool = False) -> Migration:
    """Re-key every result of ``store`` to the current hash rule (see the module docstring)."""
    catalog = store.catalog()
    rank = {k: i for i, k in enumerate(KIND_ORDER)}
    rows = sorted(catalog.to_dict("records"), key=lambda r: (rank.get(r["kind"], len(rank)), r["created"]))
    out = Migration()
    for row in rows:
        old = row["key"]
        stored = json.loads(row["spec"])
        if legacy_key(stored) != old and spec_hash(spec_from_dict(stored)) != old:
            out.kept.append(old)
            continue
        spec = complete(_remap(spec_from_dict(stored), out.renamed))
        new = spec_hash(spec)
        if new == old:
            out.unchanged.append(old)
            continue
        out.renamed[old] = new
        if not dry_run:
            _rewrite(store, row, spec, new, out.renamed)
    return out


def _rewrite(store: Store, row: Mapping[str, Any], spec: Any, new: str, renamed: Mapping[str, str]) -> None:
    old, kind = row["key"], row["kind"]
    if not store.exists(new):
        for name in store.artifacts(old):
            store.write_bytes(store.artifact_path(new, name), store.read_artifact(old, name))
        table = store.get_arrow(old)
        runs = table.column("run").to_pylist() if "run" in table.column_names else []
        if runs and all(r is None or isinstance(r, str) for r in runs):
            new_runs = pa.array([renamed.get(r, r) if r is not None else None for r in runs], pa.string())
            table = table.set_column(table.column_names.index("run"), "run", new_runs)
        spec_json = json.dumps(to_dict(spec), sort_keys=True)
        meta = dict(table.schema.metadata or {})
        meta.update({b"nngeo.spec": spec_json.encode(), b"nngeo.key": new.encode()})
        store.write_bytes(store.result_path(kind, new), parquet_bytes(table.replace_schema_metadata(meta)))
        entry = store.entry(old)  # the catalog file's own row (pandas would turn nulls into NaN)
        entry.update(key=new, spec=spec_json)
        if entry.get("run") is not None:
            entry["run"] = renamed.get(entry["run"], entry["run"])
        store.write_bytes(store.catalog_path(new), parquet_bytes(pa.Table.from_pylist([entry], schema=CATALOG_SCHEMA)))
    store.delete(old)
