"""Neural persistence figures: diagrams, barcodes, NP per layer and over training, η_τ, MST overlap.

Column names follow ``nngeo_core.topology``: diagrams have ``layer``, ``birth``, ``death``
(super-level filtration on normalised |w|, so birth = 1 and death = w'); NP tables ``layer``,
``np``, ``np_normalized`` (plus ``epoch`` over training); η_τ tables ``layer``, ``eta_tau`` with a
``total`` row for the whole model; overlap tables ``layer``, ``overlap``, ``bound``, ``chance``.
Layers are labelled 'fc2 (6→5)' (``common.layer_labels``) from ``shapes``, the weight shapes of the
model's checkpoint header, or from the table's own columns.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .common import Shapes, empty_figure, finish, labels_for, require_columns

LAYER_COLORS = (
    "#0072B2",
    "#D55E00",
    "#009E73",
    "#CC79A7",
    "#E69F00",
    "#56B4E9",
    "#882255",
    "#117733",
    "#332288",
    "#999933",
    "#AA4499",
    "#44AA99",
)


def layer_color(i: int) -> str:
    return LAYER_COLORS[i % len(LAYER_COLORS)]


def _layers_in_order(df: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(df["layer"].astype(str)))  # forward order as stored


# persistence diagrams: pixels per panel row and between rows, room above the first row's titles
DIAGRAM_ROW_PX = 300
DIAGRAM_GAP_PX = 80
DIAGRAM_TOP_PX = 70  # plotly's toolbar sits in the top ~35 px: titles go below it


def persistence_diagrams(
    diagrams: pd.DataFrame,
    *,
    layers: list[str] | None = None,
    max_cols: int = 4,
    title: str | None = None,
    shapes: Shapes | None = None,
) -> go.Figure:
    """One 0-dim persistence diagram per layer (death against birth, the diagonal for reference).

    Axis titles go on the outer panels only (birth under the bottom row, death left of the first
    column) so that none runs into a neighbouring panel."""
    if diagrams is None or len(diagrams) == 0:
        return empty_figure("no persistence diagrams yet", title)
    require_columns(diagrams, ["layer", "birth", "death"], "persistence_diagrams")
    names = layers or _layers_in_order(diagrams)
    labels = labels_for(diagrams, shapes)
    cols = min(max_cols, len(names))
    rows = math.ceil(len(names) / cols)
    height = DIAGRAM_TOP_PX + DIAGRAM_ROW_PX * rows + DIAGRAM_GAP_PX * (rows - 1) + 50
    fig = make_subplots(
        rows=rows,
        cols=cols,
        subplot_titles=[labels.get(n, n) for n in names],
        horizontal_spacing=0.07,
        vertical_spacing=DIAGRAM_GAP_PX / (height - DIAGRAM_TOP_PX - 50) if rows > 1 else 0.1,
    )
    for i, name in enumerate(names):
        d = diagrams[diagrams["layer"].astype(str) == name]
        r, c = i // cols + 1, i % cols + 1
        fig.add_trace(
            go.Scatter(
                x=[0, 1],
                y=[0, 1],
                mode="lines",
                line=dict(color="#bbbbbb", dash="dot", width=1),
                hoverinfo="skip",
                showlegend=False,
            ),
            row=r,
            col=c,
        )
        fig.add_trace(
            go.Scatter(
                x=d["birth"],
                y=d["death"],
                mode="markers",
                name=name,
                showlegend=False,
                marker=dict(color=layer_color(i), size=6, opacity=0.7),
                hovertemplate=f"{labels.get(name, name)}<br>birth %{{x:.4f}}<br>death %{{y:.4f}}<extra></extra>",
            ),
            row=r,
            col=c,
        )
    fig.update_xaxes(range=[-0.02, 1.05])
    fig.update_yaxes(range=[-0.02, 1.05])
    for c in range(1, cols + 1):  # the bottom panel of each column (the last row may be short)
        last = max(r for r in range(1, rows + 1) if (r - 1) * cols + c <= len(names))
        fig.update_xaxes(title_text="birth", title_standoff=4, row=last, col=c)
    for r in range(1, rows + 1):
        fig.update_yaxes(title_text="death", title_standoff=4, row=r, col=1)
    fig.update_annotations(font_size=12)
    finish(fig, title, height=height)
    fig.update_layout(margin=dict(t=DIAGRAM_TOP_PX + (30 if title else 0)))
    return fig


def barcode(diagrams: pd.DataFrame, layer: str, *, max_bars: int = 300, title: str | None = None) -> go.Figure:
    """The layer's bars [death, birth], longest (most persistent) first; at most ``max_bars``."""
    if diagrams is None or len(diagrams) == 0:
        return empty_figure("no persistence diagrams yet", title)
    require_columns(diagrams, ["layer", "birth", "death"], "barcode")
    d = diagrams[diagrams["layer"].astype(str) == str(layer)]
    d = d.assign(_p=(d["birth"] - d["death"]).abs()).sort_values("_p", ascending=False)
    shown = d.head(max_bars)
    lo = np.minimum(shown["birth"].to_numpy(dtype=float), shown["death"].to_numpy(dtype=float))
    fig = go.Figure(
        go.Bar(
            x=shown["_p"].to_numpy(dtype=float),
            base=lo,
            y=np.arange(len(shown)),
            orientation="h",
            marker=dict(color="#0072B2"),
            customdata=np.stack([shown["birth"], shown["death"]], 1),
            hovertemplate="birth %{customdata[0]:.4f}<br>death %{customdata[1]:.4f}<br>"
            "persistence %{x:.4f}<extra></extra>",
        )
    )
    more = f" (longest {len(shown)} of {len(d)})" if len(d) > len(shown) else ""
    fig.update_yaxes(autorange="reversed", showticklabels=False, title_text=f"bars{more}")
    fig.update_xaxes(range=[0, 1.02], title_text="filtration value w' (|w| / w_max)")
    fig.update_layout(bargap=0.15)
    return finish(fig, title, height=min(900, 120 + 4 * len(shown)))


def np_per_layer(table: pd.DataFrame, *, title: str | None = None, shapes: Shapes | None = None) -> go.Figure:
    """NP (left) and normalised NP (right) per layer, in forward order."""
    if table is None or len(table) == 0:
        return empty_figure("no neural persistence yet", title)
    require_columns(table, ["layer", "np", "np_normalized"], "np_per_layer")
    t = table[table["layer"].astype(str) != "total"]
    labels = labels_for(t, shapes)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("NP", "normalised NP"), horizontal_spacing=0.1)
    for col, value in ((1, "np"), (2, "np_normalized")):
        fig.add_trace(
            go.Bar(
                x=t["layer"].astype(str).map(labels),
                y=t[value],
                marker_color=[layer_color(i) for i in range(len(t))],
                showlegend=False,
                hovertemplate=f"%{{x}}<br>{value} %{{y:.4f}}<extra></extra>",
            ),
            row=1,
            col=col,
        )
    fig.update_xaxes(title_text="layer")
    return finish(fig, title, height=360)


def np_over_epochs(
    table: pd.DataFrame, *, value: str = "np_normalized", title: str | None = None, shapes: Shapes | None = None
) -> go.Figure:
    """NP (or normalised NP) of each layer against training epoch, one line per layer."""
    if table is None or len(table) == 0:
        return empty_figure("no persistence over training yet: compute it for several snapshots", title)
    require_columns(table, ["epoch", "layer", value], "np_over_epochs")
    labels = labels_for(table, shapes)
    fig = go.Figure()
    for i, name in enumerate(_layers_in_order(table)):
        d = table[table["layer"].astype(str) == name].sort_values("epoch")
        label = labels.get(name, name)
        fig.add_trace(
            go.Scatter(
                x=d["epoch"],
                y=d[value],
                mode="lines+markers",
                name=label,
                line=dict(color=layer_color(i)),
                hovertemplate=f"{label}<br>epoch %{{x}}<br>{value} %{{y:.4f}}<extra></extra>",
            )
        )
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(title_text="normalised NP" if value == "np_normalized" else "NP")
    return finish(fig, title, height=360)


def eta_axis_range(values) -> list[float]:
    """The η_τ axis range, in decades (plotly's unit for a log axis), covering every value: from 1×
    (η_τ >= 1: a graph has at least as many edges as its spanning forest) or lower if a value is,
    to a little above the largest, leaving room for the legend."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    if not v.size:
        return [0.0, 1.0]
    lo, hi = min(0.0, math.log10(v.min())), math.log10(v.max())
    span = max(hi - lo, 0.3)
    return [lo - (0.05 * span if lo < 0 else 0.0), hi + 0.15 * span]


def eta_per_layer(table: pd.DataFrame, *, title: str | None = None, shapes: Shapes | None = None) -> go.Figure:
    """Critical compression ratio η_τ per layer (log axis), the whole model's ratio as a line.

    Pruning a layer beyond its η_τ must disconnect its graph (lose 0-dim topology); the ``total``
    row (all edges / all spanning-tree edges) is the whole-model floor drawn across. The floor is a
    trace in data units, not a layout line (plotly reads a layout annotation's y on a log axis as
    an exponent), and the axis range is computed from the bars and the floor.
    """
    if table is None or len(table) == 0:
        return empty_figure("no critical compression yet", title)
    require_columns(table, ["layer", "eta_tau"], "eta_per_layer")
    is_total = table["layer"].astype(str) == "total"
    t, total = table[~is_total], table[is_total]
    labels = labels_for(t, shapes)
    x = t["layer"].astype(str).map(labels)
    fig = go.Figure(
        go.Bar(
            x=x,
            y=t["eta_tau"],
            name="η_τ per layer",
            marker_color=[layer_color(i) for i in range(len(t))],
            customdata=t["layer"].astype(str),
            hovertemplate="%{x} (module %{customdata})<br>η_τ %{y:.4g}×<extra></extra>",
        )
    )
    values = list(t["eta_tau"].to_numpy(dtype=float))
    if len(total):
        floor = float(total["eta_tau"].iloc[0])
        values.append(floor)
        fig.add_trace(
            go.Scatter(
                x=x,
                y=np.full(len(t), floor),
                mode="lines+markers",
                name=f"whole model η_τ = {floor:.3g}×",
                line=dict(color="#000000", dash="dash", width=1.5),
                marker=dict(symbol="line-ew-open", size=28, color="#000000", line=dict(width=1.5)),
                hovertemplate=f"whole model η_τ = {floor:.4g}×<extra></extra>",
            )
        )
    fig.update_yaxes(type="log", range=eta_axis_range(values), title_text="critical compression η_τ (log)")
    fig.update_xaxes(title_text="layer")
    fig.update_layout(legend=dict(orientation="h", y=1.02, yanchor="bottom", x=0, xanchor="left"))
    finish(fig, title, height=380)
    fig.update_layout(margin=dict(t=70 if title else 45))
    return fig


def mst_overlap(table: pd.DataFrame, *, title: str | None = None, shapes: Shapes | None = None) -> go.Figure:
    """Per layer: measured MST ∩ top-α overlap, its weight-independent lower bound and chance."""
    if table is None or len(table) == 0:
        return empty_figure("no MST overlap yet", title)
    require_columns(table, ["layer", "overlap", "bound", "chance"], "mst_overlap")
    x = table["layer"].astype(str).map(labels_for(table, shapes))
    fig = go.Figure()
    fig.add_trace(
        go.Bar(
            x=x,
            y=table["overlap"],
            name="overlap |MST ∩ top-α| / α",
            marker_color="#0072B2",
            hovertemplate="%{x}<br>overlap %{y:.4f}<extra></extra>",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=x,
            y=table["bound"],
            name="lower bound",
            mode="markers+lines",
            line=dict(color="#D55E00", dash="dash"),
            marker=dict(symbol="triangle-up", size=10),
            hovertemplate="%{x}<br>bound %{y:.4f}<extra></extra>",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=x,
            y=table["chance"],
            name="chance (random α weights)",
            mode="markers+lines",
            line=dict(color="#777777", dash="dot"),
            marker=dict(symbol="x", size=9),
            hovertemplate="%{x}<br>chance %{y:.4f}<extra></extra>",
        )
    )
    fig.update_yaxes(range=[0, 1.05], title_text="fraction of the MST")
    fig.update_xaxes(title_text="layer")
    fig.update_layout(legend=dict(orientation="h", y=1.12))
    return finish(fig, title, height=380)
