"""Curvature of the layer graph: edges coloured by Ollivier-Ricci curvature on a diverging scale
centred at 0, neurons coloured by node curvature, and per-layer curvature histograms; readouts of
one result: a layer's curvature matrix (``curvature_matrix``/``curvature_heatmap``, readable at 784
inputs), curvature against |w| with the Spearman correlation per layer (``curvature_vs_weight``,
``curvature_weight_correlation``) and the share of dead edges per layer (``dead_share_figure``).

Edge tables are ``nngeo_core.curvature``'s: ``layer``, ``curvature``, the endpoints ``src``/``dst``
(unit indices in the layer's flattened input and output), optionally ``weight``, ``alive`` and
the node layers ``src_level``/``dst_level``. Node layers are drawn left to right as columns (by
level when the table has levels, else layer k joins column k to column k+1).

``alive`` (``curvature.neural``) counts the calibration inputs on which both end neurons of an edge
fire: 0 is a dead edge, whose curvature is the analysis's ``dead_value`` (1 by default) by
definition, not a measurement; the weight-only analysis uses no data and sets it to 1 everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import sample_colorscale

from ..errors import NNGeoError
from .common import DIVERGING, Shapes, empty_figure, finish, labels_for, require_columns, weight_shape
from .persistence import against_nulls, has_nulls, layer_color, null_summary

ENDPOINT_NAMES = (("src", "dst"), ("source", "target"), ("i", "j"), ("in", "out"), ("u", "v"))
N_COLOR_BINS = 11
ALIVE_HELP = (
    "number of calibration inputs on which both end neurons of the edge fire (nonzero activation); "
    "0 = a dead edge, whose curvature is the analysis's dead_value (1 by default) by definition, "
    "not a measurement. The weight-only analysis uses no data: 1 for every edge."
)


def endpoint_columns(edges: pd.DataFrame) -> tuple[str, str]:
    for a, b in ENDPOINT_NAMES:
        if a in edges.columns and b in edges.columns:
            return a, b
    raise_cols = ", ".join(f"{a}/{b}" for a, b in ENDPOINT_NAMES)
    raise NNGeoError(f"the curvature table names no edge endpoints (expected one of {raise_cols})")


def top_edges(edges: pd.DataFrame, k: int, by: str = "curvature") -> pd.DataFrame:
    """The ``k`` edges of each layer with the largest |curvature| (or |weight|)."""
    require_columns(edges, ["layer", by], "top_edges")
    if k <= 0:
        return edges.iloc[:0]
    ranked = edges.assign(_key=edges[by].abs()).sort_values("_key", ascending=False, kind="stable")
    return ranked.groupby("layer", sort=False).head(int(k)).drop(columns="_key")


def edge_columns(edges: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(source column, target column) of every edge: the node levels, else the layer order
    (``curvature.levels.edge_levels``, the levels ``node_curvature`` gives the neurons)."""
    # lazy: nngeo_core.curvature adds torch, networkx and scipy (~2 s, measured); figures need only plotly, pandas
    from ..curvature.levels import edge_levels

    src_level, dst_level = edge_levels(edges)
    return src_level.astype(int), dst_level.astype(int)


def _symmetric_limit(values: np.ndarray) -> float:
    finite = np.abs(values[np.isfinite(values)])
    return float(finite.max()) if finite.size and finite.max() > 0 else 1.0


def layer_graph(
    edges: pd.DataFrame,
    *,
    nodes: pd.DataFrame | None = None,
    shown: pd.DataFrame | None = None,
    title: str | None = None,
    shapes: Shapes | None = None,
) -> go.Figure:
    """The layered network with edges coloured by curvature (RdBu, white at 0) and neurons by node
    curvature. ``nodes`` has ``level``, ``unit``, ``curvature`` (``curvature.node_curvature``'s
    table; computed from ``edges`` when not given); ``shown`` is the subset of edges to draw
    (e.g. ``top_edges``), all by default. Hovering an edge's midpoint shows layer, endpoints,
    weight and curvature. Weight layers are labelled 'fc2 (6→5)' from ``shapes`` (the checkpoint
    header's weight shapes; ``common.layer_labels``)."""
    if edges is None or len(edges) == 0:
        return empty_figure("no curvature computed yet", title)
    require_columns(edges, ["layer", "curvature"], "layer_graph")
    src, dst = endpoint_columns(edges)
    shown = edges if shown is None else shown
    if nodes is None:
        # lazy: nngeo_core.curvature adds torch, networkx and scipy (~2 s, measured); figures need only plotly, pandas
        from ..curvature import node_curvature

        nodes = node_curvature(edges)
    require_columns(nodes, ["level", "unit", "curvature"], "layer_graph nodes")

    # neuron positions: column = node level, y spread over [0, 1] by unit index within the column
    c_src, c_dst = edge_columns(edges)
    n_cols = int(max(c_src.max(), c_dst.max())) + 1
    size_of = np.ones(n_cols)
    np.maximum.at(size_of, c_src, edges[src].to_numpy(dtype=float) + 1)
    np.maximum.at(size_of, c_dst, edges[dst].to_numpy(dtype=float) + 1)

    def ypos(column: np.ndarray, index: np.ndarray) -> np.ndarray:
        n = size_of[np.asarray(column, dtype=int)]
        return np.where(n > 1, index / np.maximum(n - 1, 1), 0.5)

    x0, x1 = (a.astype(float) for a in edge_columns(shown))
    y0, y1 = ypos(x0, shown[src].to_numpy()), ypos(x1, shown[dst].to_numpy())
    curv = shown["curvature"].to_numpy(dtype=float)
    lim = _symmetric_limit(edges["curvature"].to_numpy(dtype=float))
    # plotly lines take one colour per trace: bin edges by curvature, one trace per bin
    bins = np.clip(((curv + lim) / (2 * lim) * N_COLOR_BINS).astype(int), 0, N_COLOR_BINS - 1)
    palette = sample_colorscale(DIVERGING, [(b + 0.5) / N_COLOR_BINS for b in range(N_COLOR_BINS)])
    fig = go.Figure()
    width = 1.5 if len(shown) <= 500 else 0.7
    for b in np.unique(bins):
        sel = bins == b
        n = int(sel.sum())
        xs = np.column_stack([x0[sel], x1[sel], np.full(n, np.nan)]).ravel()
        ys = np.column_stack([y0[sel], y1[sel], np.full(n, np.nan)]).ravel()
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                mode="lines",
                line=dict(color=palette[b], width=width),
                hoverinfo="skip",
                showlegend=False,
                connectgaps=False,
            )
        )
    labels = _labels(edges, shapes)
    weight = shown["weight"].to_numpy(dtype=float) if "weight" in shown.columns else np.full(len(shown), np.nan)
    fig.add_trace(
        go.Scatter(
            x=(x0 + x1) / 2,
            y=(y0 + y1) / 2,
            mode="markers",
            name="edges",
            marker=dict(
                size=6,
                color=curv,
                colorscale=DIVERGING,
                cmin=-lim,
                cmax=lim,
                cmid=0.0,
                opacity=0.9,
                colorbar=dict(title=dict(text="edge<br>curvature"), x=1.02, len=0.45, y=0.75),
            ),
            customdata=np.column_stack(
                [
                    shown["layer"].astype(str).map(labels).to_numpy(),
                    shown[src].to_numpy(),
                    shown[dst].to_numpy(),
                    weight,
                    curv,
                ]
            ),
            hovertemplate=(
                "%{customdata[0]}<br>edge %{customdata[1]} → %{customdata[2]}"
                "<br>weight %{customdata[3]:.4f}<br>curvature %{customdata[4]:.4f}<extra></extra>"
            ),
            showlegend=False,
        )
    )
    nc = nodes["level"].to_numpy(dtype=int)
    nlim = _symmetric_limit(nodes["curvature"].to_numpy(dtype=float))
    fig.add_trace(
        go.Scatter(
            x=nc,
            y=ypos(nc, nodes["unit"].to_numpy()),
            mode="markers",
            name="neurons",
            marker=dict(
                size=9,
                color=nodes["curvature"],
                colorscale=DIVERGING,
                cmin=-nlim,
                cmax=nlim,
                cmid=0.0,
                line=dict(color="#333333", width=0.8),
                colorbar=dict(title=dict(text="node<br>curvature"), x=1.02, len=0.45, y=0.22),
            ),
            customdata=np.column_stack([nc, nodes["unit"].to_numpy(), nodes["curvature"].to_numpy()]),
            hovertemplate="node layer %{customdata[0]}, neuron %{customdata[1]}<br>node curvature %{customdata[2]:.4f}"
            "<extra></extra>",
            showlegend=False,
        )
    )
    # one tick per weight layer, between the node columns it joins
    firsts = edges.drop_duplicates("layer")
    first_src, first_dst = edge_columns(firsts)
    ticks_at = (first_src + first_dst) / 2
    fig.update_xaxes(
        tickvals=ticks_at,
        ticktext=[labels.get(n, n) for n in firsts["layer"].astype(str)],
        showgrid=False,
        zeroline=False,
        range=[-0.2, n_cols - 1 + 0.2],
    )
    fig.update_yaxes(visible=False, range=[-0.05, 1.05])
    return finish(fig, title, height=560)


def dead_edges(edges: pd.DataFrame) -> pd.DataFrame:
    """Per layer (forward order) and for the whole table: edges, dead edges (``alive`` == 0, no
    calibration input fires both neurons) and their fraction. A table without ``alive`` has none."""
    layer = edges["layer"].astype(str)
    dead = (edges["alive"].to_numpy() == 0) if "alive" in edges.columns else np.zeros(len(edges), bool)
    per = pd.DataFrame({"layer": layer, "dead": dead}).groupby("layer", sort=False)["dead"].agg(["size", "sum"])
    per = per.reset_index().rename(columns={"size": "edges", "sum": "dead"})
    per.loc[len(per)] = ["total", len(edges), int(dead.sum())]
    per["dead"] = per["dead"].astype(int)
    per["fraction"] = per["dead"] / per["edges"].clip(lower=1)
    return per


def curvature_histogram(
    edges: pd.DataFrame, *, bins: int = 40, title: str | None = None, shapes: Shapes | None = None
) -> go.Figure:
    """Distribution of the curvature of the live edges per layer (overlaid, one colour per layer,
    each normalised to its layer's live edges), 0 marked.

    Dead edges (``alive`` == 0) are left out of the histogram: their curvature is a convention
    (``dead_value``), and in a ReLU net they are often half the edges, a spike that would hide
    the measured distribution. Their count is in each legend entry and, with the value they carry,
    in a note above the plot. Bins are computed here (not by plotly), shared by all layers.
    """
    if edges is None or len(edges) == 0:
        return empty_figure("no curvature computed yet", title)
    require_columns(edges, ["layer", "curvature"], "curvature_histogram")
    labels = _labels(edges, shapes)
    counts = dead_edges(edges).set_index("layer")
    alive = edges["alive"].to_numpy() != 0 if "alive" in edges.columns else np.ones(len(edges), bool)
    curv = edges["curvature"].to_numpy(dtype=float)
    live = curv[alive & np.isfinite(curv)]
    lo, hi = (float(live.min()), float(live.max())) if live.size else (-1.0, 1.0)
    edges_of_bins = np.linspace(lo, hi, bins + 1) if hi > lo else np.array([lo - 0.5, lo + 0.5])
    centres, widths = (edges_of_bins[:-1] + edges_of_bins[1:]) / 2, np.diff(edges_of_bins)
    fig = go.Figure()
    layer = edges["layer"].astype(str).to_numpy()
    for i, name in enumerate(_layer_names(edges)):
        v = curv[(layer == name) & alive & np.isfinite(curv)]
        hist = np.histogram(v, bins=edges_of_bins)[0] / max(len(v), 1)
        n_dead, n_all = int(counts.loc[name, "dead"]), int(counts.loc[name, "edges"])
        dead_text = f" · {n_dead} dead ({n_dead / n_all:.0%})" if n_dead else ""
        fig.add_trace(
            go.Bar(
                x=centres,
                y=hist,
                width=widths,
                name=f"{labels.get(name, name)}{dead_text}",
                opacity=0.6,
                marker_color=layer_color(i),
                customdata=np.column_stack([edges_of_bins[:-1], edges_of_bins[1:]]),
                hovertemplate=f"{labels.get(name, name)}<br>κ in [%{{customdata[0]:.3f}}, %{{customdata[1]:.3f}})"
                f"<br>%{{y:.1%}} of its {len(v)} live edges<extra></extra>",
            )
        )
    n_dead = int(counts.loc["total", "dead"])
    if n_dead:
        values = np.unique(curv[~alive])
        value = f"κ ≡ {values[0]:g}" if len(values) == 1 else "κ = dead_value"
        fig.add_annotation(
            text=f"dead edges ({value} by definition, not measured; not in the histogram): "
            f"{n_dead:,} of {len(edges):,} ({n_dead / len(edges):.0%})",
            xref="paper",
            yref="paper",
            x=0,
            y=1.0,
            xanchor="left",
            yanchor="bottom",
            showarrow=False,
            font=dict(size=12, color="#555555"),
        )
    fig.add_vline(x=0, line=dict(color="#000000", width=1, dash="dot"))
    fig.update_layout(barmode="overlay", bargap=0)
    fig.update_xaxes(title_text="Ollivier-Ricci curvature κ" + (" (live edges)" if n_dead else ""))
    fig.update_yaxes(title_text="fraction of the layer's live edges" if n_dead else "fraction of the layer's edges")
    finish(fig, title, height=380)
    if n_dead:
        fig.update_layout(margin=dict(t=75 if title else 40))
    return fig


# -- readouts: the curvature matrix of a layer, curvature against |w|, dead edges per layer -------
MATRIX_SIDE = 200  # rows / columns of a drawn curvature matrix before neurons are grouped in blocks
SCATTER_POINTS = 3000  # points per layer in the curvature-vs-|w| scatter
MATRIX_AGGREGATES = ("mean", "min")


def _edge_rows(edges: pd.DataFrame) -> pd.DataFrame:
    """The rows that are edges: not the ``kind = "skipped"`` rows (a module without a layer graph)
    the analyses append, nor rows without endpoints."""
    rows = edges[edges["kind"].astype(str) != "skipped"] if "kind" in edges.columns else edges
    ends = next(((a, b) for a, b in ENDPOINT_NAMES if a in rows.columns and b in rows.columns), None)
    return rows if ends is None else rows[rows[ends[0]].notna() & rows[ends[1]].notna()]


def _layer_names(edges: pd.DataFrame) -> list[str]:
    # deduplicate before converting: a Python pass over millions of edges takes seconds
    return [str(n) for n in edges["layer"].drop_duplicates()]


def _labels(edges: pd.DataFrame, shapes: Shapes | None) -> dict:
    """``labels_for`` on one row per layer (the same labels, without a pass over every edge)."""
    return labels_for(edges.drop_duplicates("layer"), shapes)


def _layer_codes(edges: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    """(each row's layer number, the layer names), layers numbered in forward order."""
    codes, names = pd.factorize(edges["layer"].astype(str))
    return codes, [str(n) for n in names]


def edge_layers(edges: pd.DataFrame) -> list[str]:
    """The layers of a curvature table that have edges, in forward order."""
    require_columns(edges, ["layer"], "edge_layers")
    return _layer_names(_edge_rows(edges))


def _live(edges: pd.DataFrame) -> np.ndarray:
    """Edges whose curvature is measured: ``alive`` != 0 (every edge when there is no ``alive``)."""
    if "alive" not in edges.columns:
        return np.ones(len(edges), bool)
    return edges["alive"].fillna(0).to_numpy() != 0


@dataclass(frozen=True)
class LayerMatrix:
    """A layer's curvature matrix: ``z`` (rows: output units, columns: input units, both ordered by
    node curvature, labelled by unit or block), ``rows``/``cols`` the unit ids in that order, the
    block sizes, what a row / column is, and a one-line description for titles."""

    z: pd.DataFrame
    rows: np.ndarray
    cols: np.ndarray
    row_block: int
    col_block: int
    row_name: str
    col_name: str
    what: str


def _order(ids: np.ndarray, kappa: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the distinct ids sorted by the mean curvature of their edges, ties by id; each edge's rank)."""
    unique, inverse = np.unique(ids, return_inverse=True)
    mean = np.bincount(inverse, weights=kappa, minlength=len(unique)) / np.bincount(inverse, minlength=len(unique))
    by = np.lexsort((unique, mean))
    rank = np.empty(len(unique), np.int64)
    rank[by] = np.arange(len(unique))
    return unique[by], rank[inverse]


def _block_labels(ids: np.ndarray, block: int, prefix: str) -> list[str]:
    if block == 1:
        return [f"{prefix}{i}" for i in ids]
    n = len(ids)
    return [f"#{lo}–{min(lo + block, n) - 1}" for lo in range(0, n, block)]


def curvature_matrix(
    edges: pd.DataFrame,
    layer: str | None = None,
    *,
    aggregate: str = "mean",
    max_side: int = MATRIX_SIDE,
    shapes: Shapes | None = None,
) -> LayerMatrix:
    """The curvature matrix of one weight layer (the first of the table when ``layer`` is None).

    Dense layer: rows = output neurons (``dst``), columns = input neurons (``src``), a cell = κ of
    that edge (NaN where the table has no edge). Conv layer: rows = output channels, columns =
    input channels (within the filter's group for a grouped conv), from ``kernel`` and the weight's
    shape in ``shapes``; a cell = the ``aggregate`` ("mean" or "min") of κ over the kernel taps and
    output positions of that channel pair. Rows and columns are ordered by node curvature: the mean
    κ of the unit's edges in this layer, lowest (bottleneck) first, ties by index. A side longer
    than ``max_side`` is grouped into blocks of consecutive units in that order (``ceil(n /
    max_side)`` units each, the last one smaller); a block cell is the ``aggregate`` of κ over all
    edges in it. Dead edges keep the curvature the table gives them (the analysis's dead_value).
    """
    require_columns(edges, ["layer", "curvature"], "curvature_matrix")
    if aggregate not in MATRIX_AGGREGATES:
        raise NNGeoError(f"unknown aggregate {aggregate!r}; use mean or min")
    if int(max_side) < 1:
        raise NNGeoError("max_side must be at least 1")
    rows = _edge_rows(edges)
    names = _layer_names(rows)
    if layer is None:
        if not names:
            raise NNGeoError("the curvature table has no edges")
        layer = names[0]
    elif str(layer) not in names:
        raise NNGeoError(f"no layer {layer!r} in the curvature table; its layers are {', '.join(names) or 'none'}")
    part = rows[rows["layer"].astype(str) == str(layer)]
    kappa = part["curvature"].to_numpy(dtype=float)
    part, kappa = part[np.isfinite(kappa)], kappa[np.isfinite(kappa)]
    src, dst = endpoint_columns(part)
    shape = weight_shape(str(layer), shapes or {})
    conv_kind = "kind" in part.columns and bool((part["kind"].astype(str) == "conv").any())
    conv = (shape is not None and len(shape) == 4) or conv_kind
    if conv:
        if shape is None or len(shape) != 4:
            raise NNGeoError(f"the channels of conv layer {layer} need its weight shape (the checkpoint header)")
        require_columns(part, ["kernel"], "curvature_matrix of a conv layer")
        taps = int(shape[2]) * int(shape[3])
        kernel = part["kernel"].to_numpy(dtype=np.int64)
        r_ids, c_ids = kernel // (int(shape[1]) * taps), (kernel // taps) % int(shape[1])
        row_name, col_name, prefix = "output channel", "input channel", "c"
    else:
        r_ids, c_ids = part[dst].to_numpy(dtype=np.int64), part[src].to_numpy(dtype=np.int64)
        row_name, col_name, prefix = "output neuron", "input neuron", ""
    r_order, r_rank = _order(r_ids, kappa)
    c_order, c_rank = _order(c_ids, kappa)
    rb = -(-len(r_order) // int(max_side)) if len(r_order) else 1
    cb = -(-len(c_order) // int(max_side)) if len(c_order) else 1
    n_r, n_c = -(-len(r_order) // rb), -(-len(c_order) // cb)
    cell = (r_rank // rb) * n_c + c_rank // cb
    if aggregate == "mean":
        count = np.bincount(cell, minlength=n_r * n_c)
        with np.errstate(invalid="ignore", divide="ignore"):
            z = np.bincount(cell, weights=kappa, minlength=n_r * n_c) / count
    else:
        z = np.full(n_r * n_c, np.inf)
        np.minimum.at(z, cell, kappa)
        z[np.isinf(z)] = np.nan
    z_df = pd.DataFrame(
        z.reshape(n_r, n_c), index=_block_labels(r_order, rb, prefix), columns=_block_labels(c_order, cb, prefix)
    )
    pooled = "taps and positions" if conv else ""
    if rb > 1 or cb > 1:
        pooled = f"{pooled} and " if pooled else ""
        pooled += f"blocks of {rb}×{cb} {'channels' if conv else 'neurons'}"
    what = f"{aggregate} κ over {pooled}" if pooled else "κ of each edge"
    return LayerMatrix(z_df, r_order, c_order, rb, cb, row_name, col_name, what)


def curvature_heatmap(
    edges: pd.DataFrame,
    layer: str | None = None,
    *,
    aggregate: str = "mean",
    max_side: int = MATRIX_SIDE,
    title: str | None = None,
    shapes: Shapes | None = None,
) -> go.Figure:
    """``curvature_matrix`` of a layer as a heatmap on a diverging scale centred at 0 (blue < 0 <
    red), the first rows and columns the units of lowest node curvature. The title says what a cell
    is (one edge's κ, or the mean / min over conv taps and positions, or over blocks of units)."""
    if edges is None or len(edges) == 0:
        return empty_figure("no curvature computed yet", title)
    require_columns(edges, ["layer", "curvature"], "curvature_heatmap")
    rows = _edge_rows(edges)
    names = _layer_names(rows)
    name = str(layer) if layer is not None else next(iter(names), None)
    if name is None:
        return empty_figure("no edges in the curvature table", title)
    if name in names:
        part = rows[rows["layer"].astype(str) == name]
        if not np.isfinite(part["curvature"].to_numpy(dtype=float)).any():
            return empty_figure(f"layer {name} has no edge with a curvature", title)
    m = curvature_matrix(rows, name, aggregate=aggregate, max_side=max_side, shapes=shapes)
    label = _labels(rows, shapes).get(name, name)
    z = m.z.to_numpy()
    lim = _symmetric_limit(z)
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=list(m.z.columns),
            y=list(m.z.index),
            colorscale=DIVERGING,
            zmin=-lim,
            zmax=lim,
            zmid=0.0,
            colorbar=dict(title=dict(text="κ")),
            hovertemplate=f"{m.row_name} %{{y}}<br>{m.col_name} %{{x}}<br>κ %{{z:.4f}}<extra></extra>",
        )
    )

    def axis(name_: str, n: int, block: int) -> dict:
        blocks = f", blocks of {block}" if block > 1 else ""
        return dict(
            type="category",
            title_text=f"{name_}s ({n}, by node κ{blocks})",
            showticklabels=len(m.z.columns if name_ == m.col_name else m.z.index) <= 40,
        )

    fig.update_xaxes(**axis(m.col_name, len(m.cols), m.col_block))
    fig.update_yaxes(**axis(m.row_name, len(m.rows), m.row_block), autorange="reversed")
    head = title or "curvature matrix"
    return finish(fig, f"{head}: {label}, {m.what}", height=520)


def curvature_weight_correlation(edges: pd.DataFrame) -> pd.DataFrame:
    """Per layer (forward order): the Spearman rank correlation of curvature with |weight| over the
    layer's live edges (``alive`` != 0; a dead edge's κ is the dead_value, not a measurement) with
    finite values, ``n_edges`` those edges, and, when the table has ``alive``, ``dead_share`` (the
    fraction of the layer's edges with ``alive`` == 0). |ρ| near 1: curvature ranks the edges as
    the magnitudes do; near 0: it says something magnitude does not. NaN with fewer than 3 edges
    or a constant column."""
    require_columns(edges, ["layer", "curvature", "weight"], "curvature_weight_correlation")
    # lazy: scipy.stats adds ~0.5 s to importing the figures, which need only plotly, pandas
    from scipy.stats import spearmanr

    rows = _edge_rows(edges)
    kappa = rows["curvature"].to_numpy(dtype=float)
    magnitude = np.abs(rows["weight"].to_numpy(dtype=float))
    used = _live(rows) & np.isfinite(kappa) & np.isfinite(magnitude)
    codes, names = _layer_codes(rows)
    out = []
    for i, name in enumerate(names):
        sel = used & (codes == i)
        x, y = magnitude[sel], kappa[sel]
        constant = len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0
        rho = np.nan if constant else float(spearmanr(x, y).statistic)
        out.append({"layer": name, "spearman": rho, "n_edges": int(sel.sum())})
    table = pd.DataFrame(out, columns=["layer", "spearman", "n_edges"]).astype({"spearman": float, "n_edges": int})
    if "alive" in rows.columns:
        per = dead_edges(rows).set_index("layer")["fraction"]
        table["dead_share"] = table["layer"].map(per).astype(float)
    return table


def curvature_vs_weight(
    edges: pd.DataFrame,
    *,
    max_points: int = SCATTER_POINTS,
    title: str | None = None,
    shapes: Shapes | None = None,
) -> go.Figure:
    """Curvature against |weight| of the live edges, one colour per layer, each layer's Spearman ρ
    (``curvature_weight_correlation``, over all its live edges) in its legend entry. A layer with
    more than ``max_points`` live edges is drawn from a fixed-seed random subsample of that many."""
    if edges is None or len(edges) == 0:
        return empty_figure("no curvature computed yet", title)
    require_columns(edges, ["layer", "curvature", "weight"], "curvature_vs_weight")
    rows = _edge_rows(edges)
    table = curvature_weight_correlation(rows)
    kappa = rows["curvature"].to_numpy(dtype=float)
    magnitude = np.abs(rows["weight"].to_numpy(dtype=float))
    used = _live(rows) & np.isfinite(kappa) & np.isfinite(magnitude)
    if not used.any():
        return empty_figure("no live edge with a curvature and a weight", title)
    labels = _labels(rows, shapes)
    codes, _ = _layer_codes(rows)  # the table's layers, in the same order
    fig = go.Figure()
    for i, r in enumerate(table.itertuples(index=False)):
        idx = np.flatnonzero(used & (codes == i))
        if not len(idx):
            continue
        if len(idx) > max_points:
            idx = np.sort(np.random.default_rng(0).choice(idx, int(max_points), replace=False))
        rho = "n/a" if np.isnan(r.spearman) else f"{r.spearman:+.2f}"
        shown = f", {len(idx):,} shown" if len(idx) < r.n_edges else ""
        fig.add_trace(
            go.Scattergl(
                x=magnitude[idx],
                y=kappa[idx],
                mode="markers",
                name=f"{labels.get(r.layer, r.layer)} · ρ = {rho} ({r.n_edges:,} edges{shown})",
                marker=dict(size=4, color=layer_color(i), opacity=0.5),
                hovertemplate="|w| %{x:.4f}<br>κ %{y:.4f}<extra></extra>",
            )
        )
    fig.add_hline(y=0, line=dict(color="#000000", width=1, dash="dot"))
    fig.update_xaxes(title_text="|weight|")
    fig.update_yaxes(title_text="curvature κ" + (" (live edges)" if not _live(rows).all() else ""))
    fig.update_layout(legend=dict(title=dict(text="Spearman ρ(κ, |w|) per layer")))
    return finish(fig, title or "curvature vs |w|", height=420)


def dead_share_figure(edges: pd.DataFrame, *, title: str | None = None, shapes: Shapes | None = None) -> go.Figure:
    """The share of dead edges (``alive`` == 0: no calibration input fires both neurons) per layer,
    as bars with the counts on hover. 'no data' instead of a chart of zeros when the table has no
    dead edge (the weight-only analysis: ``alive`` = 1 everywhere)."""
    if edges is None or len(edges) == 0:
        return empty_figure("no curvature computed yet", title)
    require_columns(edges, ["layer", "alive"], "dead_share_figure")
    rows = _edge_rows(edges)
    per = dead_edges(rows).iloc[:-1]  # the layers, not the total
    if not len(per):
        return empty_figure("no edges in the curvature table", title)
    if int(per["dead"].sum()) == 0:
        return empty_figure("no data: no dead edges", title)
    labels = _labels(rows, shapes)
    fig = go.Figure(
        go.Bar(
            x=[labels.get(n, n) for n in per["layer"]],
            y=per["fraction"],
            marker_color="#888888",
            customdata=np.column_stack([per["dead"], per["edges"]]),
            hovertemplate="%{x}<br>%{customdata[0]:,} of %{customdata[1]:,} edges dead (%{y:.1%})<extra></extra>",
        )
    )
    fig.update_xaxes(type="category")
    fig.update_yaxes(title_text="share of dead edges (alive = 0)", tickformat=".0%", range=[0, 1])
    return finish(fig, title or "dead edges per layer", height=340)


# -- against null models ------------------------------------------------------------------------------
NULL_STATISTICS = {
    "mean": "mean κ of the live edges",
    "median": "median κ of the live edges",
    "negative_share": "share of live edges with κ < 0",
}


def curvature_layer_statistic(edges: pd.DataFrame, statistic: str = "mean") -> pd.DataFrame:
    """Per model (``model`` column of a result with null models; "trained" for any other table),
    seed and layer: ``statistic`` (``NULL_STATISTICS``) of the curvature of the layer's live edges
    with finite κ. Columns ``model, seed, layer, value, n_edges``."""
    if statistic not in NULL_STATISTICS:
        raise NNGeoError(f"unknown curvature statistic {statistic!r}; the statistics: {', '.join(NULL_STATISTICS)}")
    require_columns(edges, ["layer", "curvature"], "curvature_layer_statistic")
    rows = _edge_rows(edges)
    kappa = rows["curvature"].to_numpy(dtype=float)
    used = _live(rows) & np.isfinite(kappa)
    t = pd.DataFrame(
        {
            "model": rows["model"].astype(str).to_numpy() if "model" in rows.columns else "trained",
            "seed": rows["seed"].to_numpy() if "seed" in rows.columns else pd.NA,
            "layer": rows["layer"].astype(str).to_numpy(),
            "kappa": kappa,
        }
    )[used]
    funcs = {"mean": "mean", "median": "median", "negative_share": lambda v: float((v < 0).mean())}
    g = t.groupby(["model", "seed", "layer"], sort=False, dropna=False)["kappa"]
    out = g.agg(value=funcs[statistic], n_edges="size").reset_index()
    return out[["model", "seed", "layer", "value", "n_edges"]]


def curvature_vs_nulls(
    edges: pd.DataFrame, *, statistic: str = "mean", title: str | None = None, shapes: Shapes | None = None
) -> go.Figure:
    """Per layer: ``statistic`` of the network's edge curvature beside its null models' (mean ± std
    over seeds); from a ``curvature_weights`` result with null models."""
    if not has_nulls(edges):
        return empty_figure("no null models in this result: compute the curvature with null models", title)
    per = curvature_layer_statistic(edges, statistic)
    return against_nulls(null_summary(per, "value"), y_title=NULL_STATISTICS[statistic], title=title, shapes=shapes)
