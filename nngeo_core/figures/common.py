"""Small shared pieces of the figure builders: column checks, empty figures, layout defaults."""

from __future__ import annotations

from collections.abc import Iterable

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
