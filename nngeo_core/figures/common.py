"""Small shared pieces of the figure builders: column checks, empty figures, layout defaults,
readable layer labels and common axis ranges for figures shown side by side."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from ..errors import NNGeoError

# diverging scale for signed quantities (curvature, Ricci scalar): blue < 0 < red, white at 0
DIVERGING = "RdBu_r"
SEQUENTIAL = "Viridis"


def require_columns(df: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise NNGeoError(
            f"{what} needs columns {', '.join(missing)}; the table has {', '.join(map(str, df.columns)) or 'none'}"
        )


def empty_figure(message: str, title: str | None = None) -> go.Figure:
    """A blank figure carrying a message (for 'nothing to show yet')."""
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper", font=dict(size=14))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return finish(fig, title)


def finish(fig: go.Figure, title: str | None = None, height: int | None = None) -> go.Figure:
    fig.update_layout(template="plotly_white", margin=dict(l=50, r=20, t=50 if title else 20, b=45))
    if title:
        fig.update_layout(title=dict(text=title, x=0.0, xanchor="left"))
    if height:
        fig.update_layout(height=height)
    return fig


# -- layer labels ----------------------------------------------------------------------------------
Shapes = Mapping[str, Sequence[int]]


def weight_shape(name: str, shapes: Shapes) -> tuple[int, ...] | None:
    for key in (f"{name}.weight", f"{name}.weight_orig", name):
        if key in shapes:
            return tuple(int(s) for s in shapes[key])
    return None


def layer_labels(layers: Sequence[str], shapes: Shapes | None = None, table: pd.DataFrame | None = None) -> dict:
    """Readable names for layers given in forward order: 'fc2 (6→5)', 'conv2 (6→16, 5×5)'.

    ``shapes`` maps weight names ('3.weight', as a checkpoint header lists them) to weight shapes;
    without one for a layer, a table's ``kind``/``n_in``/``n_out`` columns stand in (right for a
    dense layer; a conv layer's units are not its channels, so it gets no numbers). A module named
    by its ``nn.Sequential`` index ('3', 'features.0') is named by kind and position, 'conv1',
    'fc3'; other module names are kept. The ``total`` row of a table is the whole model.
    """
    shapes = shapes or {}
    rows: dict[str, pd.Series] = {}
    if table is not None and "layer" in table.columns:
        rows = {str(r["layer"]): r for _, r in table.drop_duplicates("layer").iterrows()}
    out: dict[str, str] = {}
    count = {"conv": 0, "fc": 0}
    for name in map(str, layers):
        if name == "total":
            out[name] = "whole model"
            continue
        shape = weight_shape(name, shapes)
        row = rows.get(name)
        kind_of_row = str(row["kind"]) if row is not None and "kind" in row.index else None
        if shape is not None:
            kind = "conv" if len(shape) == 4 else "fc"
        elif kind_of_row in ("conv", "dense"):
            kind = "conv" if kind_of_row == "conv" else "fc"
        else:
            kind = None
        if kind is None:  # nothing known but the name: a bare Sequential index still reads as a layer
            out[name] = f"layer {name}" if name.isdigit() else name
            continue
        count[kind] += 1
        short = f"{kind}{count[kind]}" if name.rsplit(".", 1)[-1].isdigit() else name
        if shape is not None and len(shape) == 4:
            detail = f" ({shape[1]}→{shape[0]}, {shape[2]}×{shape[3]})"
        elif shape is not None and len(shape) == 2:
            detail = f" ({shape[1]}→{shape[0]})"
        elif kind == "fc" and row is not None and {"n_in", "n_out"} <= set(row.index):
            detail = f" ({int(row['n_in'])}→{int(row['n_out'])})"
        else:
            detail = ""
        out[name] = short + detail
    if len(set(out.values())) < len(out):  # plotly merges equal category names: keep them apart
        out = {k: v if list(out.values()).count(v) == 1 else f"{v} [{k}]" for k, v in out.items()}
    return out


def labels_for(table: pd.DataFrame, shapes: Shapes | None = None) -> dict:
    """``layer_labels`` of a result table's layers, in the table's (forward) order."""
    return layer_labels(list(dict.fromkeys(table["layer"].astype(str))), shapes, table)


# -- common ranges for figures side by side --------------------------------------------------------
def _numbers(values) -> np.ndarray:
    if values is None:
        return np.empty(0)
    try:
        a = np.asarray(values, dtype=float).ravel()
    except (TypeError, ValueError):  # categories (layer names): no numeric range to share
        return np.empty(0)
    return a[np.isfinite(a)]


def _axis_names(trace) -> tuple[str, str]:
    x, y = getattr(trace, "xaxis", None) or "x", getattr(trace, "yaxis", None) or "y"
    return "xaxis" + x[1:], "yaxis" + y[1:]


def data_extents(fig: go.Figure) -> dict[str, tuple[float, float]]:
    """(low, high) of the data drawn on each numeric axis ('xaxis', 'yaxis2', ...), in data units:
    scatter points, bar ends (from their base, 0 by default) and heatmap coordinates; a fixed
    ``range`` the figure set counts too. Categorical data gives no extent."""
    seen: dict[str, list[np.ndarray]] = {}
    for trace in fig.data:
        ax_x, ax_y = _axis_names(trace)
        xs, ys = _numbers(getattr(trace, "x", None)), _numbers(getattr(trace, "y", None))
        if trace.type == "bar":
            base = _numbers(trace.base) if trace.base is not None else np.zeros(1)
            if trace.orientation == "h":
                xs = np.concatenate([base, base + xs]) if base.size in (1, xs.size) else xs
            else:
                ys = np.concatenate([base, base + ys]) if base.size in (1, ys.size) else ys
        for ax, v in ((ax_x, xs), (ax_y, ys)):
            if v.size:
                seen.setdefault(ax, []).append(v)
    out: dict[str, tuple[float, float]] = {}
    for ax, parts in seen.items():
        v = np.concatenate(parts)
        axis = fig.layout[ax]
        fixed = np.asarray(axis.range, dtype=float) if axis.range is not None and None not in axis.range else None
        if axis.type == "log":  # plotly keeps a log axis's range in decades
            v = np.concatenate([v[v > 0], 10.0**fixed if fixed is not None else []])
        elif fixed is not None:
            v = np.concatenate([v, fixed])
        if v.size:
            out[ax] = (float(v.min()), float(v.max()))
    return out


def share_ranges(figs: Sequence[go.Figure], *, x: bool = True, y: bool = True, pad: float = 0.04) -> list:
    """The figures with one common range per axis they all draw numeric data on (``y``, and ``x``),
    covering every figure's data, so panels side by side compare at a glance. An axis is shared
    only where it is comparable: the same type (log ranges are in decades) and the same title in
    every figure. Heatmaps also get one common colour range. Figures are changed in place and
    returned."""
    figs = list(figs)
    if len(figs) < 2:
        return figs
    extents = [data_extents(f) for f in figs]
    shared = set.intersection(*(set(e) for e in extents))
    for ax in sorted(shared):
        if (ax.startswith("x") and not x) or (ax.startswith("y") and not y):
            continue
        types = {f.layout[ax].type for f in figs}
        titles = {f.layout[ax].title.text for f in figs}
        # a log panel next to a linear one, or different quantities (x₁ and a plane coordinate u)
        if len(types) > 1 or len(titles) > 1:
            continue
        lo, hi = min(e[ax][0] for e in extents), max(e[ax][1] for e in extents)
        if types == {"log"}:
            lo, hi = math.log10(lo), math.log10(hi)
        span = (hi - lo) or abs(hi) or 1.0
        # a linear axis from 0 (bars, fractions) keeps 0 as its floor
        low = lo if lo == 0 and types != {"log"} else lo - pad * span
        for f in figs:
            f.layout[ax].update(range=[low, hi + pad * span], autorange=False)
    heat = [t for f in figs for t in f.data if t.type == "heatmap"]
    # a colour range a figure set (the Ricci map clips outliers) counts as set, else the data's
    ends = [
        (float(t.zmin), float(t.zmax)) if t.zmin is not None and t.zmax is not None else (z.min(), z.max())
        for t in heat
        if (z := _numbers(t.z)).size
    ]
    if len(heat) > 1 and ends and len({t.colorbar.title.text for t in heat}) == 1:  # one quantity
        lo, hi = float(min(e[0] for e in ends)), float(max(e[1] for e in ends))
        for t in heat:
            if t.zmid is not None:  # a diverging scale stays centred
                lim = max(abs(lo), abs(hi)) or 1.0
                t.update(zmin=-lim, zmax=lim)
            else:
                t.update(zmin=lo, zmax=hi, zauto=False)
    return figs
