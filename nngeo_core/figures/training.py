"""Training curves: loss and accuracy per epoch (train and test)."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .common import empty_figure, finish, require_columns

_SERIES = (("train", "#0072B2", "solid"), ("test", "#D55E00", "dash"))


def training_curves(history: pd.DataFrame, title: str | None = None) -> go.Figure:
    """Loss (left) and accuracy (right) against epoch.

    ``history`` has an ``epoch`` column and any of ``train_loss``, ``test_loss``, ``train_acc``,
    ``test_acc`` (the training history a run stores, or the live rows a job reports).
    """
    if history is None or len(history) == 0:
        return empty_figure("no training history yet", title)
    require_columns(history, ["epoch"], "training_curves")
    h = history.sort_values("epoch")
    fig = make_subplots(rows=1, cols=2, subplot_titles=("loss", "accuracy"), horizontal_spacing=0.1)
    shown: set[str] = set()
    for col, what in ((1, "loss"), (2, "acc")):
        for split, color, dash in _SERIES:
            name = f"{split}_{what}"
            if name not in h.columns or h[name].isna().all():
                continue
            fig.add_trace(
                go.Scatter(
                    x=h["epoch"],
                    y=h[name],
                    mode="lines+markers",
                    name=f"{split}",
                    legendgroup=split,
                    showlegend=split not in shown,
                    line=dict(color=color, dash=dash),
                    marker=dict(size=5),
                    hovertemplate=f"epoch %{{x}}<br>{name} %{{y:.4f}}<extra></extra>",
                ),
                row=1,
                col=col,
            )
            shown.add(split)
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(range=[0, 1.02], row=1, col=2)
    return finish(fig, title, height=340)
