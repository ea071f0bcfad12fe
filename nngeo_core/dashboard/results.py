"""The store as the pages show it: the runs table, labels for run pickers, a model's input shape
and weight shapes (for layer labels), the snapshot choices of a run, and how table columns are
formatted and explained.

The questions asked of the store (which runs hold a model, which analyses are stored) live in
``nngeo_core.store.queries``; this module only adds what is about showing them.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..data import dataset_info
from ..errors import NNGeoError
from ..figures.curvature import ALIVE_HELP
from ..models import TIMM, TORCHVISION, build, builder_name, builder_renames
from ..runs import read_header
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


def weight_shapes(store: Store, key: str) -> dict[str, tuple[int, ...]]:
    """Weight name -> shape of a stored model, from its checkpoint header (the figures label
    layers 'conv2 (6→16, 5×5)' with it); empty when the header cannot be read."""
    try:
        return dict(_weight_shapes(store.root, key))
    except NNGeoError:  # not cached: a header that cannot be read now may be readable later
        return {}


@functools.lru_cache(maxsize=256)
def _weight_shapes(root: str, key: str) -> tuple:
    # a model's key always names the same checkpoint: safe to keep
    return read_header(key, store=Store(root)).shapes


def builder_layer_names(store: Store, key: str, layers: Iterable[str]) -> dict[str, str]:
    """Our layer names -> the architecture builder's (``0.net.layer1.0.conv1`` -> ``layer1.0.conv1``,
    ``1.head`` -> ``fc``) for a stored torchvision or timm model; each name maps to itself elsewhere."""
    renames = _builder_renames(store.root, key)
    return {name: builder_name(list(renames), name) for name in layers}


def builder_labels(layers: Iterable[str], labels: Mapping[str, str], names: Mapping[str, str]) -> dict[str, str]:
    """``labels`` (``0.net.conv1 (3→64, 7×7)``) with each layer's own name replaced by its builder's
    (``conv1 (3→64, 7×7)``)."""
    out = {}
    for layer in layers:
        label = labels.get(layer, layer)
        theirs = names.get(layer, layer)
        out[layer] = theirs + label[len(layer) :] if label.startswith(layer) else label
    return out


@functools.lru_cache(maxsize=256)
def _builder_renames(root: str, key: str) -> tuple:
    try:
        spec = read_header(key, store=Store(root)).model_spec
    except NNGeoError:  # no readable header: our names are all there is to show
        return ()
    if spec is None or spec.name not in (TORCHVISION, TIMM):
        return ()
    try:
        with torch.device("meta"):  # the module tree only: no memory, no initialisation
            return tuple(builder_renames(build(spec)))
    except (NNGeoError, RuntimeError, ImportError):  # e.g. timm no longer installed: our names
        return ()


def final_epoch(store: Store, key: str) -> int | None:
    """The epoch the final model of a training run was saved at (its spec's ``train.epochs``);
    None for other models."""
    spec = store.spec(key)
    train = spec.get("train") if isinstance(spec, dict) else None
    epochs = train.get("epochs") if isinstance(train, dict) else None
    return int(epochs) if isinstance(epochs, (int, float)) and not isinstance(epochs, bool) else None


def snapshot_choices(epochs: Iterable[int], final: int | None) -> list[int]:
    """The kept snapshot epochs worth offering next to "final model": a snapshot taken at the final
    epoch is the final model itself, so it is left out."""
    return sorted({int(e) for e in epochs if final is None or int(e) != int(final)})


# how table columns are explained (st.dataframe's column help); figures use the same words
COLUMN_HELP = {
    "alive": ALIVE_HELP,
    "p_chance": "probability that random α weights overlap the MST at least as much (hypergeometric tail)",
    "eta_tau": "critical compression ratio: edges / spanning-forest edges; pruning beyond it disconnects the layer",
    "np_normalized": "neural persistence divided by its maximum (|V| − 1)^(1/p)",
}
SCIENTIFIC = "%.3e"
SMALL, LARGE = 1e-4, 1e7  # beyond these, fixed-point shows a row of zeros or a run of digits


def column_formats(df: pd.DataFrame) -> dict[str, dict[str, str]]:
    """Per column, the ``format`` and ``help`` a table view should use (plain dicts, so this stays
    free of Streamlit): scientific notation for probabilities (``p_*`` columns) and for float
    columns with nonzero values below ``SMALL`` or from ``LARGE`` up (a p-value of 1e-164 would
    print as a row of zeros spilling out of its cell); known columns get their explanation."""
    out: dict[str, dict[str, str]] = {}
    for col in df.columns:
        spec: dict[str, str] = {}
        if pd.api.types.is_float_dtype(df[col].dtype):
            v = np.abs(df[col].to_numpy(dtype=float))
            v = v[np.isfinite(v) & (v > 0)]
            if str(col).startswith("p_") or (v.size and (v.min() < SMALL or v.max() >= LARGE)):
                spec["format"] = SCIENTIFIC
        if str(col) in COLUMN_HELP:
            spec["help"] = COLUMN_HELP[str(col)]
        if spec:
            out[str(col)] = spec
    return out


CURVATURE_EDGE_BUDGET = 300_000  # edges computed by default; above it, the first and last layers only


def weight_layers(shapes: Mapping[str, tuple[int, ...]]) -> list[str]:
    """The dense and conv layers (2-D and 4-D weights) of a model's header, in forward order as far
    as names tell: numbers compare as numbers (``9`` before ``11``; a header lists names as text)."""
    names = [n[: -len(".weight")] for n, shape in shapes.items() if n.endswith(".weight") and len(shape) in (2, 4)]
    return sorted(names, key=lambda n: [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", n)])


def curvature_layers(shapes: Mapping[str, tuple[int, ...]], conv_positions: int) -> tuple[list[str], list[str], int]:
    """The weight layers of a model's header (Linear: 2-D, Conv2d: 4-D weights, ``weight_layers``), the
    ones the Curvature page computes by default (all, or the first and last when every layer
    would be more than ``CURVATURE_EDGE_BUDGET`` edges), and the edge count of all of them. A conv
    layer has at most ``conv_positions`` output positions x taps x input channels x filters edges."""
    layers = weight_layers(shapes)
    edges = {
        layer: int(np.prod(shape)) * (int(conv_positions) if len(shape) == 4 else 1)
        for layer in layers
        for shape in [shapes[f"{layer}.weight"]]
    }
    total = sum(edges.values())
    if total <= CURVATURE_EDGE_BUDGET or len(layers) <= 2:
        return layers, layers, total
    return layers, [layers[0], layers[-1]], total
