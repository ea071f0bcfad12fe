"""Questions asked of the store's catalog: which runs hold a model, which dataset a model belongs
to, which analyses of a run are stored (by method, epoch and params).

Plain functions of a ``Store`` (and optionally a catalog already read, so a caller that caches the
catalog does not read it again); the dashboard's pages and the command line use the same ones.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pandas as pd

from ..specs import AnalysisSpec, DataSpec, spec_from_dict
from . import MODEL_KINDS, Store, filter_catalog


def model_runs(store: Store, catalog: pd.DataFrame | None = None) -> pd.DataFrame:
    """Catalog rows that hold a model (train, upload, prune), newest first."""
    return filter_catalog(store.catalog() if catalog is None else catalog, kind=list(MODEL_KINDS))


def data_spec_of(store: Store, key: str) -> DataSpec | None:
    """The dataset a stored model belongs to: its run's data spec, or the one given at upload."""
    spec = store.spec(key)
    run = spec.get("run")
    for holder in (spec, run if isinstance(run, dict) else None):
        if isinstance(holder, dict) and isinstance(holder.get("data"), dict):
            data = spec_from_dict(holder["data"])
            if isinstance(data, DataSpec):
                return data
    return None


def analyses_of(
    store: Store, run: str, method: str | Iterable[str] | None = None, catalog: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Stored analyses of one run, newest first, with their epoch and params from the spec."""
    methods = [method] if isinstance(method, str) else (list(method) if method is not None else None)
    df = filter_catalog(store.catalog() if catalog is None else catalog, kind="analyse", run=run, method=methods)
    specs = [json.loads(s) for s in df["spec"]] if len(df) else []
    # object column: None (the final model) must not turn into NaN
    return df.assign(
        epoch=pd.Series(
            [None if s.get("epoch") is None else int(s["epoch"]) for s in specs], index=df.index, dtype=object
        ),
        params=[json.dumps(s.get("params") or {}, sort_keys=True) for s in specs],
    )


def _epoch(stored: Any) -> int | None:
    return None if stored is None or pd.isna(stored) else int(stored)


def _same_epoch(stored: Any, epoch: int | None) -> bool:
    if stored is None or epoch is None:
        return stored is None and epoch is None
    return int(stored) == int(epoch)


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
        if not _same_epoch(row["epoch"], epoch):
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
    read_table = read or store.get
    df = analyses_of(store, run, method, catalog)
    if params is not None and len(df):  # exactly these params: the analysis's key is its spec's hash
        exact = [
            key == AnalysisSpec(run=run, method=method, params=dict(params), epoch=_epoch(e)).hash
            for key, e in zip(df["key"], df["epoch"], strict=True)
        ]
        df = df[exact]
    frames = []
    seen: set[int] = set()
    for _, row in df.iterrows():  # newest first: keep the newest table per epoch
        if row["epoch"] is None or pd.isna(row["epoch"]) or int(row["epoch"]) in seen:
            continue
        seen.add(int(row["epoch"]))
        frames.append(read_table(row["key"]).assign(epoch=int(row["epoch"])))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
