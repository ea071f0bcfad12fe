"""Neural persistence figures: diagrams, barcodes, NP per layer and over training, η_τ, MST overlap.

Column names follow ``nngeo_core.topology``: diagrams have ``layer``, ``birth``, ``death``
(super-level filtration on normalised |w|, so birth = 1 and death = w'); NP tables ``layer``,
``np``, ``np_normalized`` (plus ``epoch`` over training); η_τ tables ``layer``, ``eta_tau`` with a
``total`` row for the whole model; overlap tables ``layer``, ``overlap``, ``bound``, ``chance``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .common import empty_figure, finish, require_columns

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


def persistence_diagrams(
    diagrams: pd.DataFrame, *, layers: list[str] | None = None, max_cols: int = 4, title: str | None = None
) -> go.Figure:
    """One 0-dim persistence diagram per layer (death against birth, the diagonal for reference)."""
    if diagrams is None or len(diagrams) == 0:
        return empty_figure("no persistence diagrams yet", title)
    require_columns(diagrams, ["layer", "birth", "death"], "persistence_diagrams")
    names = layers or _layers_in_order(diagrams)
    cols = min(max_cols, len(names))
    rows = math.ceil(len(names) / cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=names, horizontal_spacing=0.06, vertical_spacing=0.12)
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
                hovertemplate=f"{name}<br>birth %{{x:.4f}}<br>death %{{y:.4f}}<extra></extra>",
            ),
            row=r,
            col=c,
        )
    fig.update_xaxes(range=[-0.02, 1.05], title_text="birth")
    fig.update_yaxes(range=[-0.02, 1.05], title_text="death")
    return finish(fig, title, height=300 * rows + 40)


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


def np_per_layer(table: pd.DataFrame, *, title: str | None = None) -> go.Figure:
    """NP (left) and normalised NP (right) per layer, in forward order."""
    if table is None or len(table) == 0:
        return empty_figure("no neural persistence yet", title)
    require_columns(table, ["layer", "np", "np_normalized"], "np_per_layer")
    t = table[table["layer"].astype(str) != "total"]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("NP", "normalised NP"), horizontal_spacing=0.1)
    for col, value in ((1, "np"), (2, "np_normalized")):
        fig.add_trace(
            go.Bar(
                x=t["layer"].astype(str),
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


def np_over_epochs(table: pd.DataFrame, *, value: str = "np_normalized", title: str | None = None) -> go.Figure:
    """NP (or normalised NP) of each layer against training epoch, one line per layer."""
    if table is None or len(table) == 0:
        return empty_figure("no persistence over training yet: compute it for several snapshots", title)
    require_columns(table, ["epoch", "layer", value], "np_over_epochs")
    fig = go.Figure()
    for i, name in enumerate(_layers_in_order(table)):
        d = table[table["layer"].astype(str) == name].sort_values("epoch")
        fig.add_trace(
            go.Scatter(
                x=d["epoch"],
                y=d[value],
                mode="lines+markers",
                name=name,
                line=dict(color=layer_color(i)),
                hovertemplate=f"{name}<br>epoch %{{x}}<br>{value} %{{y:.4f}}<extra></extra>",
            )
        )
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(title_text="normalised NP" if value == "np_normalized" else "NP")
    return finish(fig, title, height=360)


def eta_per_layer(table: pd.DataFrame, *, title: str | None = None) -> go.Figure:
    """Critical compression ratio η_τ per layer (log axis), the whole model's ratio as a line.

    Pruning a layer beyond its η_τ must disconnect its graph (lose 0-dim topology); the ``total``
    row (all edges / all spanning-tree edges) is the whole-model floor drawn across.
    """
    if table is None or len(table) == 0:
        return empty_figure("no critical compression yet", title)
    require_columns(table, ["layer", "eta_tau"], "eta_per_layer")
    is_total = table["layer"].astype(str) == "total"
    t, total = table[~is_total], table[is_total]
    fig = go.Figure(
        go.Bar(
            x=t["layer"].astype(str),
            y=t["eta_tau"],
            name="η_τ per layer",
            marker_color=[layer_color(i) for i in range(len(t))],
            hovertemplate="%{x}<br>η_τ %{y:.4g}×<extra></extra>",
        )
    )
    if len(total):
        floor = float(total["eta_tau"].iloc[0])
        fig.add_hline(
            y=floor,
            line=dict(color="#000000", dash="dash", width=1.5),
            annotation_text=f"whole model η_τ = {floor:.3g}×",
            annotation_position="top left",
        )
    fig.update_yaxes(type="log", title_text="critical compression η_τ (log)")
    fig.update_xaxes(title_text="layer")
    return finish(fig, title, height=360)


def mst_overlap(table: pd.DataFrame, *, title: str | None = None) -> go.Figure:
    """Per layer: measured MST ∩ top-α overlap, its weight-independent lower bound and chance."""
    if table is None or len(table) == 0:
        return empty_figure("no MST overlap yet", title)
    require_columns(table, ["layer", "overlap", "bound", "chance"], "mst_overlap")
    x = table["layer"].astype(str)
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
