"""Accuracy against sparsity, one colour per strategy, mean ± std over seeds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from .colors import strategy_color, with_alpha
from .common import empty_figure, finish, require_columns

DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")


def sparsity_summary(
    df: pd.DataFrame,
    *,
    accuracy: str = "accuracy",
    level: str = "sparsity_requested",
    achieved: str | None = "sparsity_achieved",
    group: str = "strategy",
    strategy: str = "strategy",
) -> pd.DataFrame:
    """Mean, std and count over seeds of ``accuracy`` per (group, level).

    Columns: group, strategy, level, sparsity (mean achieved sparsity, or the level), mean, std,
    n, compression = 1 / (1 - sparsity).
    """
    require_columns(df, [group, strategy, level, accuracy], "sparsity_summary")
    d = pd.DataFrame(
        {
            "group": df[group].astype(str),
            "level": df[level],
            "_strategy": df[strategy].astype(str),
            "_x": df[achieved] if achieved and achieved in df.columns else df[level],
            "_acc": df[accuracy],
        }
    )
    out = (
        d.groupby(["group", "level"], sort=True)
        .agg(
            strategy=("_strategy", "first"),
            sparsity=("_x", "mean"),
            mean=("_acc", "mean"),
            std=("_acc", "std"),
            n=("_acc", "count"),
        )
        .reset_index()
    )
    out["std"] = out["std"].fillna(0.0)  # one seed: no spread
    s = out["sparsity"].to_numpy(dtype=float)
    out["compression"] = np.where(s < 1.0, 1.0 / np.clip(1.0 - s, 1e-12, None), np.inf)
    return out


def accuracy_vs_sparsity(
    df: pd.DataFrame,
    *,
    accuracy: str = "accuracy",
    level: str = "sparsity_requested",
    achieved: str | None = "sparsity_achieved",
    group: str = "strategy",
    strategy: str = "strategy",
    title: str | None = None,
    dense_accuracy: float | None = None,
) -> go.Figure:
    """Test accuracy against compression ratio 1/(1 − sparsity) on a log axis.

    One trace group per ``group`` (``legendgroup`` = its name): the mean line and, when some level
    has more than one seed, a mean ± std band. Colour comes from the group's strategy
    (``strategy_color``), the same on every page; groups sharing a strategy differ by dash.
    """
    if df is None or len(df) == 0:
        return empty_figure("no pruning results yet", title)
    summary = sparsity_summary(df, accuracy=accuracy, level=level, achieved=achieved, group=group, strategy=strategy)
    summary = summary[np.isfinite(summary["compression"])]
    fig = go.Figure()
    used: dict[str, int] = {}
    for name, part in summary.groupby("group", sort=True):
        part = part.sort_values("compression")
        strat = str(part["strategy"].iloc[0])
        color = strategy_color(strat)
        dash = DASHES[used.get(strat, 0) % len(DASHES)]
        used[strat] = used.get(strat, 0) + 1
        x = part["compression"].to_numpy()
        mean, std = part["mean"].to_numpy(), part["std"].to_numpy()
        if (part["n"] > 1).any():
            fig.add_trace(
                go.Scatter(
                    x=np.concatenate([x, x[::-1]]),
                    y=np.concatenate([mean + std, (mean - std)[::-1]]),
                    fill="toself",
                    fillcolor=with_alpha(color, 0.18),
                    line=dict(width=0, color=color),
                    mode="lines",
                    name=f"{name} ± std",
                    legendgroup=str(name),
                    showlegend=False,
                    hoverinfo="skip",
                )
            )
        fig.add_trace(
            go.Scatter(
                x=x,
                y=mean,
                mode="lines+markers",
                name=str(name),
                legendgroup=str(name),
                line=dict(color=color, width=2, dash=dash),
                marker=dict(color=color, size=7),
                customdata=np.stack([part["sparsity"].to_numpy(), std, part["n"].to_numpy()], axis=1),
                hovertemplate=(
                    f"<b>{name}</b><br>compression %{{x:.3g}}× (sparsity %{{customdata[0]:.4f}})"
                    "<br>accuracy %{y:.4f} ± %{customdata[1]:.4f} (n=%{customdata[2]})<extra></extra>"
                ),
            )
        )
    if dense_accuracy is not None and np.isfinite(dense_accuracy):
        fig.add_hline(
            y=float(dense_accuracy),
            line=dict(color="#000000", dash="dot", width=1),
            annotation_text="dense",
            annotation_position="bottom right",
        )
    fig.update_xaxes(type="log", title_text="compression ratio 1/(1−sparsity), log scale")
    fig.update_yaxes(title_text="test accuracy")
    return finish(fig, title, height=440)
