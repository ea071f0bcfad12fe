"""Figures of the reproduction reports: pure builders, a report table in, a ``go.Figure`` out.

``BUILDERS`` maps the names a stored report refers to (``FigureRef.builder``) to the builders, so a
report reopened from the store draws its figures again from its tables alone.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .common import empty_figure, finish, require_columns
from .volume import grid_matrix

PAPER_COLOR = "#000000"
MEASURED_COLOR = "#0072B2"
STATE_COLORS = {"init": "#999999", "trained": "#D55E00"}


def paper_vs_measured(rows: pd.DataFrame, title: str | None = None) -> go.Figure:
    """One marker per claim row: the paper's value and the measured mean ± std over seeds."""
    require_columns(rows, ["claim", "paper", "measured_mean", "measured_std"], "paper_vs_measured")
    if rows.empty:
        return empty_figure("no claim rows", title)
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=rows["paper"],
            y=rows["claim"],
            mode="markers",
            name="paper",
            marker=dict(symbol="line-ns-open", size=16, color=PAPER_COLOR, line=dict(width=3)),
        )
    )
    fig.add_trace(
        go.Scatter(
            x=rows["measured_mean"],
            y=rows["claim"],
            mode="markers",
            name="measured (mean ± std)",
            error_x=dict(type="data", array=rows["measured_std"].fillna(0.0)),
            marker=dict(size=9, color=MEASURED_COLOR),
        )
    )
    fig.update_xaxes(title_text="value")
    fig.update_yaxes(autorange="reversed")
    return finish(fig, title, height=120 + 40 * len(rows))


def eta_tau_layers(layers: pd.DataFrame, title: str | None = None) -> go.Figure:
    """η_τ per layer, one bar group per model and convention (columns model, convention, layer,
    eta_tau; a ``paper`` column, where not NaN, is drawn as a black marker on its bar)."""
    require_columns(layers, ["model", "convention", "layer", "eta_tau"], "eta_tau_layers")
    if layers.empty:
        return empty_figure("no layers", title)
    fig = go.Figure()
    label = layers["model"].astype(str) + " " + layers["layer"].astype(str)
    for conv, sel in layers.groupby("convention", sort=False):
        fig.add_trace(go.Bar(x=label[sel.index], y=sel["eta_tau"], name=f"nngeo, {conv}"))
    if "paper" in layers.columns:
        has = layers[layers["paper"].notna()].drop_duplicates(["model", "layer"])
        fig.add_trace(
            go.Scatter(
                x=label[has.index],
                y=has["paper"],
                mode="markers",
                name="paper",
                marker=dict(symbol="line-ew-open", size=22, color=PAPER_COLOR, line=dict(width=3)),
            )
        )
    fig.update_layout(barmode="group")
    fig.update_yaxes(type="log", title_text="η_τ = |W| / |MST|")
    return finish(fig, title, height=420)


def boundary_pair(grid: pd.DataFrame, title: str | None = None, **where: str) -> go.Figure:
    """log10 √det g over the grid with the decision boundary (margin = 0), one panel per ``state``
    (init, trained). ``where`` selects rows (e.g. ``toy="xor", activation="relu"``)."""
    require_columns(grid, ["state", "x", "y", "log_volume", "margin", *where], "boundary_pair")
    sel = grid
    for col, value in where.items():
        sel = sel[sel[col] == value]
    states = [s for s in ("init", "trained") if s in set(sel["state"])]
    if not states:
        return empty_figure("no grid", title)
    fig = make_subplots(rows=1, cols=len(states), subplot_titles=[f"{s}" for s in states], horizontal_spacing=0.12)
    for i, state in enumerate(states, start=1):
        part = sel[sel["state"] == state]
        xs, ys, z = grid_matrix(part, "log_volume")
        z = np.where(np.isfinite(z), z, np.nan)
        fig.add_trace(
            go.Heatmap(
                x=xs,
                y=ys,
                z=z,
                colorscale="Viridis",
                colorbar=dict(title=dict(text="log10 √det g"), x=0.44 if i == 1 and len(states) > 1 else 1.02, len=0.9),
                hovertemplate="x %{x:.3f}<br>y %{y:.3f}<br>log10 √det g %{z:.4g}<extra></extra>",
            ),
            row=1,
            col=i,
        )
        _, _, m = grid_matrix(part, "margin")
        if np.nanmin(m) < 0 < np.nanmax(m):
            fig.add_trace(
                go.Contour(
                    x=xs,
                    y=ys,
                    z=m,
                    contours=dict(start=0, end=0, size=1, coloring="lines"),
                    line=dict(color="white", width=2.5),
                    colorscale=[[0, "white"], [1, "white"]],
                    showscale=False,
                    hoverinfo="skip",
                    name="decision boundary",
                    showlegend=i == 1,
                ),
                row=1,
                col=i,
            )
        fig.update_xaxes(title_text="x₁", row=1, col=i, range=[xs.min(), xs.max()])
        fig.update_yaxes(title_text="x₂", row=1, col=i, range=[ys.min(), ys.max()])
    return finish(fig, title, height=430)


def magnification_points(stats: pd.DataFrame, title: str | None = None, statistic: str = "spearman") -> go.Figure:
    """One point per seed of a boundary-magnification statistic, by toy and activation, at
    initialisation and after training (columns toy, activation, state, seed, statistic, value)."""
    require_columns(stats, ["toy", "activation", "state", "seed", "statistic", "value"], "magnification_points")
    sel = stats[stats["statistic"] == statistic]
    if sel.empty:
        return empty_figure(f"no {statistic} values", title)
    fig = go.Figure()
    label = sel["toy"].astype(str) + " · " + sel["activation"].astype(str)
    for state, part in sel.groupby("state", sort=False):
        fig.add_trace(
            go.Scatter(
                x=label[part.index],
                y=part["value"],
                mode="markers",
                name=str(state),
                marker=dict(size=9, color=STATE_COLORS.get(str(state), MEASURED_COLOR), opacity=0.8),
                customdata=part["seed"],
                hovertemplate="%{x}<br>seed %{customdata}<br>%{y:.4g}<extra>" + str(state) + "</extra>",
            )
        )
    fig.add_hline(y=0.0, line=dict(color="#555555", dash="dot"))
    fig.update_yaxes(title_text=statistic)
    return finish(fig, title, height=420)


BUILDERS: dict[str, Callable[..., go.Figure]] = {
    "paper_vs_measured": paper_vs_measured,
    "eta_tau_layers": eta_tau_layers,
    "boundary_pair": boundary_pair,
    "magnification_points": magnification_points,
}


def accuracy_vs_sparsity(acc: pd.DataFrame, title: str | None = None) -> go.Figure:
    """Accuracy after pruning per strategy (``label``) over sparsity: one point per seed and the
    mean per level as a line (columns label, seed, sparsity, accuracy)."""
    require_columns(acc, ["label", "seed", "sparsity", "accuracy"], "accuracy_vs_sparsity")
    if acc.empty:
        return empty_figure("no pruning levels", title)
    fig = go.Figure()
    palette = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00")
    for i, (label, part) in enumerate(acc.groupby("label", sort=False)):
        color = palette[i % len(palette)]
        mean = part.groupby("sparsity")["accuracy"].mean()
        fig.add_trace(
            go.Scatter(x=mean.index, y=mean.to_numpy(), mode="lines", name=f"{label} (mean)", line=dict(color=color))
        )
        fig.add_trace(
            go.Scatter(
                x=part["sparsity"],
                y=part["accuracy"],
                mode="markers",
                name=f"{label} (seeds)",
                marker=dict(color=color, size=7, opacity=0.6),
                customdata=part["seed"],
                hovertemplate="sparsity %{x}<br>accuracy %{y:.4f}<br>seed %{customdata}<extra></extra>",
            )
        )
    fig.update_xaxes(title_text="sparsity")
    fig.update_yaxes(title_text="test accuracy", range=[0, 1.02])
    return finish(fig, title, height=420)


BUILDERS["accuracy_vs_sparsity"] = accuracy_vs_sparsity


def sparsify_path_trace(path: pd.DataFrame, title: str | None = None, seed: int | None = None) -> go.Figure:
    """Along a sparsification path (``geometry.sparsify_path``'s table, one ``seed``; default the
    first): the accuracy of the current and of the projected net (top) and the Euclidean distance
    to the sparse hyperplane (bottom) per step (columns seed, step, accuracy, accuracy_projected,
    distance)."""
    require_columns(path, ["seed", "step", "accuracy", "accuracy_projected", "distance"], "sparsify_path_trace")
    if path.empty:
        return empty_figure("no path steps", title)
    chosen = path["seed"].iloc[0] if seed is None else seed
    sel = path[path["seed"] == chosen].sort_values("step", kind="stable")
    if sel.empty:
        return empty_figure(f"no path steps for seed {chosen}", title)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08)
    fig.add_trace(
        go.Scatter(x=sel["step"], y=sel["accuracy"], mode="lines+markers", name="accuracy (current net)"),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Scatter(
            x=sel["step"],
            y=sel["accuracy_projected"],
            mode="lines+markers",
            name="accuracy (projected onto the hyperplane)",
            line=dict(dash="dash"),
        ),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Scatter(
            x=sel["step"],
            y=sel["distance"],
            mode="lines+markers",
            name="distance to the sparse hyperplane",
            line=dict(color=PAPER_COLOR),
        ),
        row=2,
        col=1,
    )
    fig.update_yaxes(title_text="test accuracy", range=[0, 1.02], row=1, col=1)
    fig.update_yaxes(title_text="‖w − P(w)‖", row=2, col=1)
    fig.update_xaxes(title_text="path step", row=2, col=1)
    return finish(fig, title, height=560)


BUILDERS["sparsify_path_trace"] = sparsify_path_trace


NULL_SYMBOLS = {"init": "circle-open", "shuffled": "x", "gaussian": "diamond-open"}


def mst_overlap_epochs(overlap: pd.DataFrame, title: str | None = None) -> go.Figure:
    """MST ∩ top-α overlap per layer over the training epochs (``model = "trained"`` rows, mean over
    seeds, one line per layer), the final net's null models (every other ``model``: mean over seeds
    and null seeds, one marker per kind at its epoch) and the chance level α/N per layer (dotted)
    (columns model, seed, epoch, layer, overlap, chance)."""
    require_columns(overlap, ["model", "seed", "epoch", "layer", "overlap", "chance"], "mst_overlap_epochs")
    if overlap.empty:
        return empty_figure("no overlap rows", title)
    fig = go.Figure()
    palette = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")
    table = overlap.assign(layer=overlap["layer"].astype(str))
    trained = table[table["model"] == "trained"]
    nulls = table[table["model"] != "trained"]
    epochs = sorted(trained["epoch"].unique())
    for i, (layer, part) in enumerate(trained.groupby("layer", sort=False)):
        color = palette[i % len(palette)]
        mean = part.groupby("epoch")["overlap"].mean()
        fig.add_trace(
            go.Scatter(
                x=mean.index, y=mean.to_numpy(), mode="lines+markers", name=f"layer {layer}", line=dict(color=color)
            )
        )
        chance = float(part["chance"].mean())
        fig.add_trace(
            go.Scatter(
                x=[epochs[0], epochs[-1]] if epochs else [],
                y=[chance, chance],
                mode="lines",
                name=f"layer {layer} chance α/N",
                line=dict(color=color, dash="dot"),
                showlegend=i == 0,
                legendgroup="chance",
            )
        )
        for kind, npart in nulls[nulls["layer"] == layer].groupby("model", sort=False):
            fig.add_trace(
                go.Scatter(
                    x=[float(npart["epoch"].mean())],
                    y=[float(npart["overlap"].mean())],
                    mode="markers",
                    name=f"{kind} null",
                    marker=dict(color=color, size=11, symbol=NULL_SYMBOLS.get(str(kind), "square-open")),
                    legendgroup=f"null {kind}",
                    showlegend=i == 0,
                )
            )
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(title_text="MST ∩ top-α overlap", range=[0, 1.02])
    return finish(fig, title, height=460)


BUILDERS["mst_overlap_epochs"] = mst_overlap_epochs
