"""Paths in weight space: accuracy on both tasks and distance to the target along the path."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..errors import NNGeoError
from .common import empty_figure, finish

X_CANDIDATES = ("t", "path_length", "step", "position", "arc_length", "sparsity")
TASK_COLORS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7")


def path_columns(path: pd.DataFrame) -> tuple[str, list[str], list[str]]:
    """(x column, accuracy columns, distance columns) of a path table."""
    x = next((c for c in X_CANDIDATES if c in path.columns), None)
    if x is None:
        raise NNGeoError(f"the path table has no position column ({', '.join(X_CANDIDATES)})")
    acc = [c for c in path.columns if "acc" in c.lower()]
    dist = [c for c in path.columns if "dist" in c.lower()]
    return x, acc, dist


def path_figure(path: pd.DataFrame, *, title: str | None = None, names: Mapping[str, str] | None = None) -> go.Figure:
    """Accuracy columns (left) and distance columns (right) against the position on the path.

    ``names`` gives legend names to columns (e.g. ``accuracy_a`` -> "accuracy on xor (task A)").
    A boolean ``best`` column (forgetting paths) is marked with a star on every accuracy curve.
    """
    if path is None or len(path) == 0:
        return empty_figure("no path computed yet", title)
    names = dict(names or {})
    x, acc, dist = path_columns(path)
    p = path.sort_values(x)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("accuracy", "distance to target"), horizontal_spacing=0.1)
    for i, c in enumerate(acc):
        fig.add_trace(
            go.Scatter(
                x=p[x],
                y=p[c],
                mode="lines+markers",
                name=names.get(c, c),
                line=dict(color=TASK_COLORS[i % len(TASK_COLORS)]),
            ),
            row=1,
            col=1,
        )
    for i, c in enumerate(dist):
        fig.add_trace(
            go.Scatter(
                x=p[x],
                y=p[c],
                mode="lines+markers",
                name=names.get(c, c),
                line=dict(color="#333333", dash=["solid", "dash", "dot"][i % 3]),
            ),
            row=1,
            col=2,
        )
    if "best" in p.columns and acc and p["best"].astype(bool).any():
        best = p[p["best"].astype(bool)].iloc[0]
        fig.add_trace(
            go.Scatter(
                x=[best[x]] * len(acc),
                y=[best[c] for c in acc],
                mode="markers",
                name=names.get("best", "best mean accuracy"),
                marker=dict(symbol="star", size=14, color="#F0E442", line=dict(color="#333333", width=1)),
            ),
            row=1,
            col=1,
        )
    fig.update_xaxes(title_text=x)
    fig.update_yaxes(range=[0, 1.02], row=1, col=1)
    return finish(fig, title, height=380)
