"""The store as the pages show it: the runs table, labels for run pickers, a model's input shape.

The questions asked of the store (which runs hold a model, which analyses are stored) live in
``nngeo_core.store.queries``; this module only adds what is about showing them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from ..data import dataset_info
from ..store import Store
from ..store.queries import data_spec_of

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


def input_shape_of(store: Store, key: str) -> tuple[int, ...] | None:
    """Input shape of a stored model's dataset, without loading the model."""
    data = data_spec_of(store, key)
    if data is None:
        return None
    return tuple(dataset_info(data.name, **dict(data.params)).input_shape)


def is_2d(store: Store, key: str) -> bool:
    return input_shape_of(store, key) == (2,)
