"""Views of the store for the pages: the runs table, model pickers, finding analysis results."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pandas as pd

from ..specs import AnalysisSpec, DataSpec, spec_from_dict
from ..store import MODEL_KINDS, Store, filter_catalog

RUNS_COLUMNS = [
    "key",
    "kind",
    "label",
    "model",
    "data",
    "method",
    "strategy",
    "sparsity",
    "seed",
    "metric",
    "n_rows",
    "created",
]


def runs_table(catalog: pd.DataFrame, *, kinds: Iterable[str] | None = None, text: str = "") -> pd.DataFrame:
    """The catalog as the Runs page shows it: readable time, filtered by kind and free text.

    ``text`` keeps rows where any shown column contains it (case-insensitive).
    """
    df = catalog.reindex(columns=RUNS_COLUMNS).copy()
    if kinds:
        df = df[df["kind"].isin(list(kinds))]
    df["created"] = pd.to_datetime(df["created"], unit="s", utc=True).dt.tz_convert(None).dt.floor("s")
    if text.strip():
        needle = text.strip().lower()
        hay = df.astype(str).apply(lambda col: col.str.lower().str.contains(needle, regex=False))
        df = df[hay.any(axis=1)]
    return df.reset_index(drop=True)


def run_label(row: Mapping[str, Any]) -> str:
    """'1a2b3c4d · mlp on xor · acc 0.975' for pickers."""
    key = str(row.get("key", ""))[:8]
    what = row.get("label") or f"{row.get('model') or '?'} on {row.get('data') or '?'}"
    metric = row.get("metric")
    acc = f" · acc {metric:.3f}" if isinstance(metric, (int, float)) and pd.notna(metric) else ""
    return f"{key} · {row.get('kind', '')}: {what}{acc}"


def model_runs(store: Store, catalog: pd.DataFrame | None = None) -> pd.DataFrame:
    """Catalog rows that hold a model (train, upload, prune), newest first."""
    return filter_catalog(store.catalog() if catalog is None else catalog, kind=list(MODEL_KINDS))


def spec_dict(store: Store, key: str) -> dict:
    return json.loads(store.entry(key)["spec"])


def data_spec_of(store: Store, key: str) -> DataSpec | None:
    """The dataset a stored model belongs to: its run's data spec, or the one given at upload."""
    spec = spec_dict(store, key)
    for holder in (spec, spec.get("run") if isinstance(spec.get("run"), dict) else None):
        if isinstance(holder, dict) and isinstance(holder.get("data"), dict):
            data = spec_from_dict(holder["data"])
            if isinstance(data, DataSpec):
                return data
    return None


def input_shape_of(store: Store, key: str) -> tuple[int, ...] | None:
    """Input shape of a stored model's dataset, without loading the model."""
    data = data_spec_of(store, key)
    if data is None:
        return None
    from ..data import dataset_info

    return tuple(dataset_info(data.name, **dict(data.params)).input_shape)


def is_2d(store: Store, key: str) -> bool:
    return input_shape_of(store, key) == (2,)


def analyses_of(
    store: Store, run: str, method: str | Iterable[str] | None = None, catalog: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Stored analyses of one run, newest first, with their epoch and params from the spec."""
    methods = [method] if isinstance(method, str) else (list(method) if method is not None else None)
    df = filter_catalog(store.catalog() if catalog is None else catalog, kind="analyse", run=run, method=methods)
    specs = [json.loads(s) for s in df["spec"]] if len(df) else []
    # object column: None (the final model) must not turn into NaN
    df = df.assign(
        epoch=pd.Series(
            [None if s.get("epoch") is None else int(s["epoch"]) for s in specs], index=df.index, dtype=object
        ),
        params=[json.dumps(s.get("params") or {}, sort_keys=True) for s in specs],
    )
    return df


def find_analysis(
    store: Store,
    run: str,
    method: str,
    *,
    epoch: int | None = None,
    params: Mapping[str, Any] | None = None,
    accept: Callable[[dict], bool] | None = None,
    catalog: pd.DataFrame | None = None,
) -> str | None:
    """Key of the stored analysis of ``run`` by ``method`` at ``epoch`` (None = final model).

    With ``params`` the exact spec is looked up by its hash. Otherwise (or when that is not
    stored and ``accept`` is given) the newest analysis of that run, method and epoch whose
    params ``accept`` takes (any params when ``accept`` is None and no ``params`` were given).
    """
    if params is not None:
        key = AnalysisSpec(run=run, method=method, params=dict(params), epoch=epoch).hash
        if store.exists(key):
            return key
        if accept is None:
            return None
    df = analyses_of(store, run, method, catalog)
    for _, row in df.iterrows():  # newest first
        e = row["epoch"]
        if (e is None) != (epoch is None) or (e is not None and int(e) != int(epoch)):
            continue
        if accept is None or accept(json.loads(row["params"])):
            return str(row["key"])
    return None


def analysis_epochs(store: Store, run: str, method: str, catalog: pd.DataFrame | None = None) -> list[int | None]:
    """Epochs that have a stored analysis by ``method`` (None = final model first)."""
    df = analyses_of(store, run, method, catalog)
    found = {None if e is None else int(e) for e in df["epoch"]} if len(df) else set()
    return ([None] if None in found else []) + sorted(e for e in found if e is not None)


def analyses_over_epochs(
    store: Store,
    run: str,
    method: str,
    *,
    params: Mapping[str, Any] | None = None,
    catalog: pd.DataFrame | None = None,
    read: Callable[[str], pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """The stored ``method`` tables of every snapshot epoch of ``run``, stacked with an ``epoch``
    column (the final model is left out: it has no epoch number). With ``params``, only analyses
    computed with exactly those params. ``read`` reads a result table (default ``store.get``)."""
    read = read or store.get
    df = analyses_of(store, run, method, catalog)
    if params is not None and len(df):
        df = df[df["params"] == json.dumps(dict(params), sort_keys=True)]
    frames = []
    seen = set()
    for _, row in df.iterrows():  # newest first: keep the newest table per epoch
        if row["epoch"] is None or pd.isna(row["epoch"]) or int(row["epoch"]) in seen:
            continue
        seen.add(int(row["epoch"]))
        frames.append(read(row["key"]).assign(epoch=int(row["epoch"])))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
