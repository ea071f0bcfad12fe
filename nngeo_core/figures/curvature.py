"""Curvature of the layer graph: edges coloured by Ollivier-Ricci curvature on a diverging scale
centred at 0, neurons coloured by node curvature, and per-layer curvature histograms.

Edge tables are ``nngeo_core.curvature``'s: ``layer``, ``curvature``, the endpoints ``src``/``dst``
(unit indices in the layer's flattened input and output), optionally ``weight``, ``alive`` and
the node layers ``src_level``/``dst_level``. Node layers are drawn left to right as columns (by
level when the table has levels, else layer k joins column k to column k+1).

``alive`` (``curvature.neural``) counts the calibration inputs on which both end neurons of an edge
fire: 0 is a dead edge, whose curvature is the analysis's ``dead_value`` (1 by default) by
definition, not a measurement; the weight-only analysis uses no data and sets it to 1 everywhere.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import sample_colorscale

from ..errors import NNGeoError
from .common import DIVERGING, Shapes, empty_figure, finish, labels_for, require_columns
from .persistence import layer_color

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
    labels = labels_for(edges, shapes)
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
    labels = labels_for(edges, shapes)
    counts = dead_edges(edges).set_index("layer")
    alive = edges["alive"].to_numpy() != 0 if "alive" in edges.columns else np.ones(len(edges), bool)
    curv = edges["curvature"].to_numpy(dtype=float)
    live = curv[alive & np.isfinite(curv)]
    lo, hi = (float(live.min()), float(live.max())) if live.size else (-1.0, 1.0)
    edges_of_bins = np.linspace(lo, hi, bins + 1) if hi > lo else np.array([lo - 0.5, lo + 0.5])
    centres, widths = (edges_of_bins[:-1] + edges_of_bins[1:]) / 2, np.diff(edges_of_bins)
    fig = go.Figure()
    layer = edges["layer"].astype(str).to_numpy()
    for i, name in enumerate(dict.fromkeys(layer)):
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
