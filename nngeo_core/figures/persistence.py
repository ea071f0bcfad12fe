"""Neural persistence figures: diagrams, barcodes, NP per layer and over training, η_τ, MST overlap.

Column names follow ``nngeo_core.topology``: diagrams have ``layer``, ``birth``, ``death``
(super-level filtration on normalised |w|, so birth = 1 and death = w'); NP tables ``layer``,
``np``, ``np_normalized`` (plus ``epoch`` over training); η_τ tables ``layer``, ``eta_tau`` with a
``total`` row for the whole model; overlap tables ``layer``, ``overlap``, ``bound``, ``chance``.
Layers are labelled 'fc2 (6→5)' (``common.layer_labels``) from ``shapes``, the weight shapes of the
model's checkpoint header, or from the table's own columns.

Against null models (a result computed with ``null_models``: its rows carry ``model`` = "trained"
or the null kind, and ``seed``; ``nngeo_core.models.nulls``): ``null_summary`` (per layer and
model: mean ± std over seeds), ``against_nulls`` (the network's bar beside each null's mean ± std),
``mst_overlap_vs_nulls`` and ``np_vs_nulls``. The other builders expect the network's rows alone
(``models.nulls.trained_rows``).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .common import Shapes, empty_figure, finish, labels_for, layer_labels, require_columns

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


# -- against null models: the network's per-layer statistic beside the same of untrained networks --
# an analysis run with ``null_models`` stacks its rows with ``model`` ("trained" or the null kind)
# and ``seed`` (``nngeo_core.models.nulls``); these builders read that long table
NULL_COLORS = {"init": "#E69F00", "shuffled": "#009E73", "gaussian": "#CC79A7"}
NULL_NAMES = {
    "init": "at initialisation",
    "shuffled": "weights shuffled in each layer",
    "gaussian": "Gaussian, same shape and RMS",
}


def has_nulls(table: pd.DataFrame | None) -> bool:
    """Whether a result table holds null-model rows besides the network's own (``model`` column)."""
    return table is not None and "model" in table.columns and bool((table["model"].astype(str) != "trained").any())


def null_summary(table: pd.DataFrame, value: str) -> pd.DataFrame:
    """Per layer (the network's forward order) and model: ``value`` of the network (``model`` =
    "trained") and the mean, std (ddof 1; NaN for one seed), min, max and number of seeds of each
    null kind. Rows of modules without a graph (``kind = "skipped"``) and the ``total`` row are
    left out. Columns ``layer, model, mean, std, min, max, n``."""
    require_columns(table, ["layer", "model", value], "null_summary")
    t = table[table["layer"].astype(str) != "total"]
    if "kind" in t.columns:
        t = t[t["kind"].astype(str) != "skipped"]
    t = t.assign(layer=t["layer"].astype(str), model=t["model"].astype(str), _v=t[value].astype(float))
    order = list(dict.fromkeys(t.loc[t["model"] == "trained", "layer"])) or list(dict.fromkeys(t["layer"]))
    models = list(dict.fromkeys(t["model"]))
    g = t.groupby(["layer", "model"], sort=False)["_v"]
    out = g.agg(["mean", "std", "min", "max", "size"]).reset_index().rename(columns={"size": "n"})
    out["layer"] = pd.Categorical(out["layer"], categories=order, ordered=True)
    out["model"] = pd.Categorical(out["model"], categories=models, ordered=True)
    out = out.dropna(subset=["layer"]).sort_values(["layer", "model"]).reset_index(drop=True)
    out["layer"] = out["layer"].astype(str)
    out["model"] = out["model"].astype(str)
    return out[["layer", "model", "mean", "std", "min", "max", "n"]]


def against_nulls(
    summary: pd.DataFrame,
    *,
    y_title: str,
    title: str | None = None,
    shapes: Shapes | None = None,
    reference: pd.DataFrame | None = None,
    reference_name: str = "",
    y_range: list[float] | None = None,
) -> go.Figure:
    """``null_summary``'s table drawn per layer: the network as a bar, each null kind as its mean ±
    std over seeds (a marker with error bars, the spread of seeds as hover text) beside it;
    ``reference`` (``layer``, ``value``), if given, as a dotted line (e.g. random chance)."""
    if summary is None or len(summary) == 0:
        return empty_figure("no null models in this result: compute it with null models", title)
    require_columns(summary, ["layer", "model", "mean", "std", "n"], "against_nulls")
    layers = list(dict.fromkeys(summary["layer"].astype(str)))
    labels = layer_labels(layers, shapes)
    fig = go.Figure()
    trained = summary[summary["model"] == "trained"]
    if len(trained):
        fig.add_trace(
            go.Bar(
                x=trained["layer"].map(labels),
                y=trained["mean"],
                name="trained network",
                marker_color="#0072B2",
                opacity=0.8,
                hovertemplate="%{x}<br>trained %{y:.4f}<extra></extra>",
            )
        )
    kinds = [m for m in dict.fromkeys(summary["model"]) if m != "trained"]
    for i, kind in enumerate(kinds):
        d = summary[summary["model"] == kind]
        std = d["std"].fillna(0.0)
        fig.add_trace(
            go.Scatter(
                x=d["layer"].map(labels),
                y=d["mean"],
                mode="markers",
                name=f"{NULL_NAMES.get(kind, kind)} (mean ± std, {int(d['n'].max())} seeds)",
                marker=dict(color=NULL_COLORS.get(kind, layer_color(i)), size=10, symbol="diamond"),
                error_y=dict(type="data", array=std, visible=True, thickness=1.5, width=6),
                customdata=np.column_stack([std, d["min"], d["max"], d["n"]]),
                hovertemplate=f"%{{x}}<br>{kind}: %{{y:.4f}} ± %{{customdata[0]:.4f}}"
                "<br>seeds from %{customdata[1]:.4f} to %{customdata[2]:.4f} (n=%{customdata[3]})<extra></extra>",
            )
        )
    if reference is not None and len(reference):
        r = reference.assign(layer=reference["layer"].astype(str))
        r = r[r["layer"].isin(layers)].drop_duplicates("layer").set_index("layer").reindex(layers).reset_index()
        fig.add_trace(
            go.Scatter(
                x=r["layer"].map(labels),
                y=r["value"],
                mode="markers+lines",
                name=reference_name or "reference",
                line=dict(color="#777777", dash="dot"),
                marker=dict(symbol="x", size=9),
                hovertemplate=f"%{{x}}<br>{reference_name or 'reference'} %{{y:.4f}}<extra></extra>",
            )
        )
    fig.update_layout(scattermode="group", barmode="group", legend=dict(orientation="h", y=1.02, yanchor="bottom"))
    fig.update_yaxes(title_text=y_title)
    if y_range is not None:
        fig.update_yaxes(range=y_range)
    fig.update_xaxes(title_text="layer")
    finish(fig, title, height=420)
    fig.update_layout(margin=dict(t=90 if title else 60))
    return fig


def mst_overlap_vs_nulls(table: pd.DataFrame, *, title: str | None = None, shapes: Shapes | None = None) -> go.Figure:
    """MST ∩ top-α overlap per layer of the network beside its null models (mean ± std over seeds)
    and random chance (α / edges, the network's); from an ``mst_overlap`` result with null models."""
    if not has_nulls(table):
        return empty_figure("no null models in this result: compute the MST overlap with null models", title)
    summary = null_summary(table, "overlap")
    trained = table[table["model"].astype(str) == "trained"]
    chance = trained.rename(columns={"chance": "value"})[["layer", "value"]] if "chance" in trained else None
    return against_nulls(
        summary,
        y_title="overlap |MST ∩ top-α| / α",
        title=title,
        shapes=shapes,
        reference=chance,
        reference_name="chance (random α weights)",
        y_range=[0, 1.05],
    )


def np_vs_nulls(
    table: pd.DataFrame, *, value: str = "np_normalized", title: str | None = None, shapes: Shapes | None = None
) -> go.Figure:
    """Neural persistence (``value``: ``np_normalized`` or ``np``) per layer of the network beside
    its null models (mean ± std over seeds); from a ``persistence`` result with null models."""
    if not has_nulls(table):
        return empty_figure("no null models in this result: compute neural persistence with null models", title)
    return against_nulls(
        null_summary(table, value),
        y_title="normalised NP" if value == "np_normalized" else "NP",
        title=title,
        shapes=shapes,
    )
