"""Input-space geometry: log10 √det g and Ricci-scalar heatmaps with data and decision boundary,
and the plane / line through chosen inputs of an image model."""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .common import DIVERGING, SEQUENTIAL, empty_figure, finish, require_columns

CLASS_COLORS = (
    "#0072B2",
    "#D55E00",
    "#009E73",
    "#CC79A7",
    "#E69F00",
    "#56B4E9",
    "#F0E442",
    "#000000",
    "#882255",
    "#44AA99",
)

ZERO_FIELD_ATOL = 1e-9  # |R| below this everywhere counts as identically zero (float64 round-off)
FLAT_NOTE = (
    "R = 0 at every grid point: the network is piecewise linear (e.g. ReLU), so its pullback "
    "metric is constant on each linear region and the curvature vanishes almost everywhere "
    "(it lives only on the region boundaries, a set of measure zero)."
)

QUANTITY_LABELS = {
    "log_volume": "log10 √det g",
    "ricci": "Ricci scalar R",
    "log_area": "log10 area element of the plane",
}


def grid_matrix(
    grid: pd.DataFrame, value: str, x: str = "x", y: str = "y"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(xs, ys, Z) with Z[i, j] the value at (xs[j], ys[i]) from a long grid table."""
    require_columns(grid, [x, y, value], "grid_matrix")
    table = grid.pivot_table(index=y, columns=x, values=value, aggfunc="first", dropna=False)
    table = table.sort_index().sort_index(axis=1)
    return table.columns.to_numpy(dtype=float), table.index.to_numpy(dtype=float), table.to_numpy(dtype=float)


def geometry_heatmap(
    grid: pd.DataFrame,
    *,
    value: str = "log_volume",
    points: pd.DataFrame | None = None,
    boundary: bool = True,
    title: str | None = None,
) -> go.Figure:
    """Heatmap of ``value`` over a 2-D grid (columns x, y, value; optional margin/pred for the boundary).

    ``points`` (columns x, y, label) are drawn on top, coloured by class. The decision boundary is
    the zero contour of ``margin`` for two classes and the class-change lines of ``pred`` otherwise.
    A signed quantity (the Ricci scalar) uses a diverging scale centred at 0; a Ricci scalar that
    is zero at every grid point (``is_zero_field``) gets a note saying why, not a blank map.
    """
    if grid is None or len(grid) == 0:
        return empty_figure("no geometry computed yet", title)
    xs, ys, z = grid_matrix(grid, value)
    label = QUANTITY_LABELS.get(value, value)
    fig = go.Figure()
    heat = dict(
        x=xs,
        y=ys,
        z=z,
        colorbar=dict(title=dict(text=label), x=1.02),
        hovertemplate=f"x %{{x:.3f}}<br>y %{{y:.3f}}<br>{label} %{{z:.4g}}<extra></extra>",
    )
    if value == "ricci":
        finite = np.abs(z[np.isfinite(z)])
        # clip the colour range at the 98th percentile: R blows up near singular points
        lim = float(np.percentile(finite, 98)) if finite.size else 1.0
        fig.add_trace(go.Heatmap(colorscale=DIVERGING, zmid=0.0, zmin=-lim or -1, zmax=lim or 1, **heat))
    else:
        fig.add_trace(go.Heatmap(colorscale=SEQUENTIAL, **heat))
    if value == "ricci" and is_zero_field(z):
        fig.add_annotation(
            text="<br>".join(textwrap.wrap(FLAT_NOTE, 50)),
            name="zero-field note",
            xref="paper",
            yref="paper",
            x=0.5,
            y=0.5,
            showarrow=False,
            align="left",
            bgcolor="rgba(255,255,255,0.85)",
            bordercolor="#555555",
            font=dict(size=13, color="#222222"),
        )
    if boundary:
        _add_boundary(fig, grid)
    if points is not None and len(points):
        require_columns(points, ["x", "y"], "geometry_heatmap points")
        labels = points["label"].to_numpy() if "label" in points.columns else np.zeros(len(points), int)
        for cls in np.unique(labels):
            sel = points[labels == cls]
            fig.add_trace(
                go.Scatter(
                    x=sel["x"],
                    y=sel["y"],
                    mode="markers",
                    name=f"class {cls}",
                    legendgroup="data",
                    marker=dict(
                        size=5, color=CLASS_COLORS[int(cls) % len(CLASS_COLORS)], line=dict(color="white", width=0.5)
                    ),
                    hovertemplate=f"class {cls}<br>x %{{x:.3f}}<br>y %{{y:.3f}}<extra></extra>",
                )
            )
    fig.update_xaxes(range=[xs.min(), xs.max()], title_text="x₁", constrain="domain")
    fig.update_yaxes(range=[ys.min(), ys.max()], title_text="x₂", scaleanchor="x", scaleratio=1)
    fig.update_layout(legend=dict(orientation="h", y=-0.15))
    return finish(fig, title, height=520)


def is_zero_field(z, atol: float = ZERO_FIELD_ATOL) -> bool:
    """Whether every finite value of a field is zero (within ``atol``); False for no finite value."""
    v = np.asarray(z, dtype=float)
    v = v[np.isfinite(v)]
    return bool(v.size) and bool(np.abs(v).max() <= atol)


def _add_boundary(fig: go.Figure, grid: pd.DataFrame) -> None:
    style = dict(
        showscale=False,
        hoverinfo="skip",
        name="decision boundary",
        showlegend=True,
        line=dict(color="white", width=2.5),
        colorscale=[[0, "white"], [1, "white"]],
    )
    if "margin" in grid.columns and (grid["margin"] < 0).any():
        xs, ys, m = grid_matrix(grid, "margin")
        fig.add_trace(go.Contour(x=xs, y=ys, z=m, contours=dict(start=0, end=0, size=1, coloring="lines"), **style))
    elif "pred" in grid.columns and grid["pred"].nunique() > 1:
        xs, ys, p = grid_matrix(grid, "pred")
        lo, hi = float(np.nanmin(p)), float(np.nanmax(p))
        fig.add_trace(
            go.Contour(x=xs, y=ys, z=p, contours=dict(start=lo + 0.5, end=hi - 0.5, size=1, coloring="lines"), **style)
        )


def plane_heatmap(
    plane: pd.DataFrame,
    *,
    value: str = "log_volume",
    anchors: pd.DataFrame | None = None,
    a: str = "u",
    b: str = "v",
    names: list[str] | None = None,
    title: str | None = None,
) -> go.Figure:
    """Heatmap over the plane through three inputs, in plane coordinates (u, v).

    Rows with ``anchor`` >= 0 (as ``geometry.image_plane`` appends them) are the three chosen
    inputs: they are marked with stars, not drawn into the grid; rows with anchor −2 (the segment
    between the first two) are left out too. ``anchors`` (columns u, v) may be given instead;
    ``names`` labels them.
    """
    if plane is None or len(plane) == 0:
        return empty_figure("no plane computed yet", title)
    require_columns(plane, [a, b, value], "plane_heatmap")
    segment = None
    if "anchor" in plane.columns:
        if anchors is None:
            anchors = plane[plane["anchor"] >= 0].sort_values("anchor")
        segment = plane[plane["anchor"] == -2]
        plane = plane[plane["anchor"] == -1]
    fig = geometry_heatmap(plane.rename(columns={a: "x", b: "y"}), value=value, boundary=True, title=title)
    if segment is not None and len(segment):
        ends = segment.sort_values("t").iloc[[0, -1]] if "t" in segment.columns else segment.iloc[[0, -1]]
        fig.add_trace(
            go.Scatter(
                x=ends[a],
                y=ends[b],
                mode="lines",
                name="line 1 → 2",
                hoverinfo="skip",
                line=dict(color="#F0E442", width=1.5, dash="dash"),
            )
        )
    if anchors is not None and len(anchors):
        labels = list(names) if names else [f"input {i + 1}" for i in range(len(anchors))]
        fig.add_trace(
            go.Scatter(
                x=anchors[a],
                y=anchors[b],
                mode="markers+text",
                text=labels,
                textposition="top center",
                name="chosen inputs",
                marker=dict(symbol="star", size=14, color="#F0E442", line=dict(color="black", width=1)),
            )
        )
    fig.update_xaxes(title_text=f"plane coordinate {a}")
    fig.update_yaxes(title_text=f"plane coordinate {b}")
    return fig


def line_profile(
    line: pd.DataFrame, *, t: str = "t", values: tuple[str, ...] = ("log_volume",), title: str | None = None
) -> go.Figure:
    """Quantities along the straight line between two inputs (t = 0 at the first, 1 at the second),
    one panel each on a shared t axis: their scales differ by orders of magnitude (a pseudo-volume
    sums up to hundreds of log10 singular values, the plane's area element two)."""
    if line is None or len(line) == 0:
        return empty_figure("no line computed yet", title)
    require_columns(line, [t], "line_profile")
    shown = [c for c in values if c in line.columns]
    if not shown:
        return empty_figure("the line has none of " + ", ".join(values), title)
    fig = make_subplots(rows=len(shown), cols=1, shared_xaxes=True, vertical_spacing=0.08)
    for i, v in enumerate(shown):
        fig.add_trace(
            go.Scatter(
                x=line[t],
                y=line[v],
                mode="lines",
                name=QUANTITY_LABELS.get(v, v),
                line=dict(color=CLASS_COLORS[i % len(CLASS_COLORS)]),
            ),
            row=i + 1,
            col=1,
        )
        fig.update_yaxes(title_text=QUANTITY_LABELS.get(v, v), row=i + 1, col=1)
    fig.update_xaxes(title_text="t (0 = first input, 1 = second)", row=len(shown), col=1)
    return finish(fig, title, height=220 + 160 * len(shown))
