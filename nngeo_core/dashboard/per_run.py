"""The per-run figures the Compare page can put side by side: which analysis each one reads and
which pure figure builder draws it. ``draw(table, shapes)``: ``shapes`` (the run's weight shapes,
``results.weight_shapes``) labels the layers; the page gives the figures one common scale
(``figures.common.share_ranges``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
import plotly.graph_objects as go

from ..figures.common import Shapes
from ..figures.curvature import curvature_histogram
from ..figures.persistence import eta_per_layer, mst_overlap, np_per_layer
from ..figures.volume import geometry_heatmap, plane_heatmap


@dataclass(frozen=True)
class PerRunFigure:
    method: str  # the analysis whose stored table it draws
    what: str  # words for buttons and messages
    draw: Callable[..., go.Figure]  # (table, shapes=None) -> figure
    params: dict | None = None  # None: accept the newest result whatever its params


def _np(df: pd.DataFrame, shapes: Shapes | None = None) -> go.Figure:
    return np_per_layer(df, shapes=shapes)


def _eta(df: pd.DataFrame, shapes: Shapes | None = None) -> go.Figure:
    return eta_per_layer(df, shapes=shapes)


def _overlap(df: pd.DataFrame, shapes: Shapes | None = None) -> go.Figure:
    return mst_overlap(df, shapes=shapes)


def _curv_hist(df: pd.DataFrame, shapes: Shapes | None = None) -> go.Figure:
    return curvature_histogram(df, shapes=shapes)


def _volume(df: pd.DataFrame, shapes: Shapes | None = None) -> go.Figure:
    if "epoch" in df.columns and df["epoch"].nunique() > 1:
        df = df[df["epoch"] == df["epoch"].max()]
    if {"u", "v"} <= set(df.columns):
        return plane_heatmap(df)
    return geometry_heatmap(df, value="log_volume")


PER_RUN_FIGURES: dict[str, PerRunFigure] = {
    "neural persistence per layer": PerRunFigure("persistence", "neural persistence", _np),
    "critical compression η_τ": PerRunFigure("critical_compression", "critical compression", _eta),
    "MST overlap": PerRunFigure("mst_overlap", "MST overlap", _overlap),
    "curvature histogram": PerRunFigure("curvature_weights", "weight curvature", _curv_hist),
    "volume element": PerRunFigure("volume", "volume element", _volume),
}
