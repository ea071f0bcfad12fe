"""The dashboard's figure builders, without Streamlit: pure DataFrame -> plotly Figure."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from nngeo_core.dashboard.results import SCIENTIFIC, column_formats, final_epoch, snapshot_choices, weight_shapes
from nngeo_core.errors import NNGeoError
from nngeo_core.figures import curvature as cf
from nngeo_core.figures import persistence as pf
from nngeo_core.figures.colors import FALLBACK_PALETTE, STRATEGY_COLORS, strategy_color, with_alpha
from nngeo_core.figures.common import data_extents, labels_for, layer_labels, share_ranges
from nngeo_core.figures.geodesic import path_figure
from nngeo_core.figures.pruning import accuracy_vs_sparsity, sparsity_summary
from nngeo_core.figures.training import training_curves
from nngeo_core.figures.volume import (
    FLAT_NOTE,
    geometry_heatmap,
    grid_matrix,
    is_zero_field,
    line_profile,
    plane_heatmap,
)


# -- colours ---------------------------------------------------------------------------------------
def test_known_strategies_have_distinct_fixed_colours():
    colours = [c for name, c in STRATEGY_COLORS.items()]
    assert len(set(colours)) == len(colours)
    for name, c in STRATEGY_COLORS.items():
        assert strategy_color(name) == c
        assert strategy_color(f"  {name.upper()} ") == c  # case and spaces do not change it
    assert not set(FALLBACK_PALETTE) & set(colours)


def test_every_registered_strategy_has_a_fixed_colour():
    import nngeo_core.pruning as pruning

    missing = [s for s in pruning.STRATEGIES if s not in STRATEGY_COLORS]
    assert not missing, f"give these strategies a fixed colour in STRATEGY_COLORS: {missing}"


def test_unknown_strategy_colour_is_stable_across_processes():
    names = ["my_new_strategy", "zeta", "x"]
    here = [strategy_color(n) for n in names]
    code = f"from nngeo_core.figures.colors import strategy_color as c; print(','.join(c(n) for n in {names!r}))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
    ).stdout.strip()
    assert out.split(",") == here
    assert all(c in FALLBACK_PALETTE for c in here)


def test_with_alpha():
    assert with_alpha("#0072B2", 0.5) == "rgba(0,114,178,0.5)"


# -- accuracy vs sparsity --------------------------------------------------------------------------
def _sweep_rows(strategies=("magnitude", "random", "snip"), levels=(0.5, 0.75, 0.9), seeds=(0, 1, 2)):
    rng = np.random.default_rng(0)
    rows = []
    for s in strategies:
        for lv in levels:
            for seed in seeds:
                rows.append(
                    dict(
                        strategy=s,
                        seed=seed,
                        sparsity_requested=lv,
                        sparsity_achieved=lv + rng.uniform(-1e-3, 1e-3),
                        accuracy=rng.uniform(0.5, 1.0),
                    )
                )
    return pd.DataFrame(rows)


def test_accuracy_vs_sparsity_one_trace_group_per_strategy_in_its_colour():
    df = _sweep_rows()
    fig = accuracy_vs_sparsity(df)
    groups = {t.legendgroup for t in fig.data}
    assert groups == {"magnitude", "random", "snip"}
    for t in fig.data:
        colour = strategy_color(t.legendgroup)
        if t.fill == "toself":  # the ± std band
            assert t.fillcolor == with_alpha(colour, 0.18)
        else:
            assert t.line.color == colour and t.marker.color == colour
    # exactly one legend entry per strategy
    assert sorted(t.name for t in fig.data if t.showlegend is not False) == ["magnitude", "random", "snip"]
    assert fig.layout.xaxis.type == "log"


def test_accuracy_vs_sparsity_mean_std_and_compression_match_a_recomputation():
    df = _sweep_rows()
    fig = accuracy_vs_sparsity(df)
    for s in ("magnitude", "random", "snip"):
        part = df[df["strategy"] == s]
        mean = part.groupby("sparsity_requested")["accuracy"].mean().to_numpy()
        std = part.groupby("sparsity_requested")["accuracy"].std(ddof=1).to_numpy()
        achieved = part.groupby("sparsity_requested")["sparsity_achieved"].mean().to_numpy()
        line = next(t for t in fig.data if t.legendgroup == s and t.fill != "toself")
        band = next(t for t in fig.data if t.legendgroup == s and t.fill == "toself")
        np.testing.assert_allclose(line.y, mean)
        np.testing.assert_allclose(line.x, 1.0 / (1.0 - achieved))
        k = len(mean)
        np.testing.assert_allclose(band.y[:k], mean + std)
        np.testing.assert_allclose(band.y[k:], (mean - std)[::-1])


def test_single_seed_draws_no_band_and_std_is_zero():
    df = _sweep_rows(seeds=(0,))
    fig = accuracy_vs_sparsity(df)
    assert not [t for t in fig.data if t.fill == "toself"]
    assert (sparsity_summary(df)["std"] == 0).all()


def test_same_strategy_in_two_groups_shares_colour_and_differs_by_dash():
    df = pd.concat(
        [
            _sweep_rows(("magnitude",)).assign(label="magnitude (scope=global)"),
            _sweep_rows(("magnitude",)).assign(label="magnitude (scope=layer)"),
        ]
    )
    fig = accuracy_vs_sparsity(df, group="label")
    lines = [t for t in fig.data if t.fill != "toself"]
    assert {t.line.color for t in lines} == {strategy_color("magnitude")}
    assert len({t.line.dash for t in lines}) == 2


def test_accuracy_vs_sparsity_empty_and_missing_columns():
    assert len(accuracy_vs_sparsity(pd.DataFrame()).layout.annotations) == 1
    with pytest.raises(NNGeoError, match="accuracy"):
        accuracy_vs_sparsity(pd.DataFrame({"strategy": ["a"], "sparsity_requested": [0.5]}))


# -- heatmaps --------------------------------------------------------------------------------------
def _grid(nx=7, ny=5):
    xs, ys = np.linspace(-1, 1, nx), np.linspace(-2, 2, ny)
    gx, gy = np.meshgrid(xs, ys, indexing="xy")
    gx, gy = gx.ravel(), gy.ravel()
    return (
        pd.DataFrame(
            {
                "x": gx,
                "y": gy,
                "log_volume": gx * 10 + gy,
                "ricci": gx - gy,
                "margin": gx * gy,
                "pred": (gx * gy > 0).astype(int),
            }
        ),
        xs,
        ys,
    )


def test_heatmap_has_the_grid_shape_and_values():
    grid, xs, ys = _grid()
    fig = geometry_heatmap(grid)
    heat = next(t for t in fig.data if t.type == "heatmap")
    z = np.asarray(heat.z)
    assert z.shape == (len(ys), len(xs))
    # z[i, j] is the value at (xs[j], ys[i])
    np.testing.assert_allclose(z, xs[None, :] * 10 + ys[:, None])
    np.testing.assert_allclose(heat.x, xs)
    np.testing.assert_allclose(heat.y, ys)


def test_heatmap_from_shuffled_rows_is_the_same():
    grid, xs, ys = _grid()
    shuffled = grid.sample(frac=1.0, random_state=1)
    np.testing.assert_allclose(grid_matrix(shuffled, "log_volume")[2], grid_matrix(grid, "log_volume")[2])


def test_ricci_heatmap_is_diverging_and_centred_at_zero():
    grid, _, _ = _grid()
    heat = next(t for t in geometry_heatmap(grid, value="ricci").data if t.type == "heatmap")
    assert heat.zmid == 0 and heat.zmin == -heat.zmax


def test_heatmap_draws_boundary_at_zero_margin_and_the_points_by_class():
    grid, _, _ = _grid()
    pts = pd.DataFrame({"x": [0.1, -0.2, 0.3], "y": [0.5, 0.1, -0.4], "label": [0, 1, 1]})
    fig = geometry_heatmap(grid, points=pts)
    contour = next(t for t in fig.data if t.type == "contour")
    assert contour.contours.start == 0 and contour.contours.end == 0
    scat = [t for t in fig.data if t.type == "scatter"]
    assert sorted(len(t.x) for t in scat) == [1, 2]


def test_heatmap_of_a_real_model_grid():
    """End to end with the geometry module: z is the grid_heatmap's log-volume column, reshaped."""
    import torch

    import nngeo_core.geometry.heatmaps as geometry
    from nngeo_core.models import build

    torch.manual_seed(0)
    model = build("mlp", widths=(8,))
    grid = geometry.grid_heatmap(model, (-1, 1, -1, 1), resolution=6, ricci=False, device="cpu")
    heat = next(t for t in geometry_heatmap(grid).data if t.type == "heatmap")
    assert np.asarray(heat.z).shape == (6, 6)
    np.testing.assert_allclose(np.asarray(heat.z), grid["log_volume"].to_numpy().reshape(6, 6))


def test_plane_marks_the_appended_anchor_rows_and_keeps_them_out_of_the_grid():
    grid, xs, ys = _grid()
    plane = grid.rename(columns={"x": "u", "y": "v"}).assign(anchor=-1)
    anchors = pd.DataFrame(
        {"u": [0.05, 0.5, -0.3], "v": [0.0, 0.7, 0.2], "log_volume": [99.0, 99.0, 99.0], "anchor": [0, 1, 2]}
    )
    fig = plane_heatmap(pd.concat([plane, anchors]), names=["#1", "#2", "#3"])
    heat = next(t for t in fig.data if t.type == "heatmap")
    assert np.asarray(heat.z).shape == (len(ys), len(xs)) and np.nanmax(heat.z) < 99
    star = next(t for t in fig.data if t.name == "chosen inputs")
    assert list(star.text) == ["#1", "#2", "#3"] and list(star.x) == [0.05, 0.5, -0.3]


def test_line_profile():
    line = pd.DataFrame({"t": np.linspace(0, 1, 5), "log_volume": np.arange(5.0), "log_area": -np.arange(5.0)})
    fig = line_profile(line)
    assert len(fig.data) == 1 and list(fig.data[0].y) == [0, 1, 2, 3, 4]
    # two quantities of different scales: one panel (y axis) each, same t
    fig = line_profile(line, values=("log_volume", "log_area", "missing"))
    assert [tr.yaxis for tr in fig.data] == ["y", "y2"] and list(fig.data[1].y) == [0, -1, -2, -3, -4]
    assert list(fig.data[0].x) == list(fig.data[1].x)


# -- training --------------------------------------------------------------------------------------
def test_training_curves_one_legend_entry_per_split():
    h = pd.DataFrame(
        {
            "epoch": [0, 1, 2],
            "train_loss": [1, 0.5, 0.3],
            "test_loss": [1, 0.6, 0.4],
            "train_acc": [0.5, 0.8, 0.9],
            "test_acc": [0.5, 0.7, 0.85],
        }
    )
    fig = training_curves(h)
    assert len(fig.data) == 4
    assert sorted(t.name for t in fig.data if t.showlegend) == ["test", "train"]
    acc = [t for t in fig.data if t.xaxis == "x2"]
    np.testing.assert_allclose(sorted(map(tuple, (t.y for t in acc))), sorted([(0.5, 0.8, 0.9), (0.5, 0.7, 0.85)]))


# -- persistence -----------------------------------------------------------------------------------
def _diagrams():
    rng = np.random.default_rng(1)
    frames = [
        pd.DataFrame({"layer": name, "birth": 1.0, "death": np.sort(rng.uniform(0, 1, n))})
        for name, n in (("1", 30), ("3", 12))
    ]
    return pd.concat(frames, ignore_index=True)


def test_diagrams_one_panel_per_layer_with_all_points():
    d = _diagrams()
    fig = pf.persistence_diagrams(d)
    points = [t for t in fig.data if t.mode == "markers"]
    assert [len(t.x) for t in points] == [30, 12]
    assert [a.text for a in fig.layout.annotations] == ["layer 1", "layer 3"]


def test_barcode_keeps_the_longest_bars_in_order():
    d = _diagrams()
    fig = pf.barcode(d, "1", max_bars=10)
    bar = fig.data[0]
    expected = np.sort(1.0 - d[d.layer == "1"]["death"].to_numpy())[::-1][:10]
    np.testing.assert_allclose(bar.x, expected)
    np.testing.assert_allclose(np.asarray(bar.base, dtype=float) + np.asarray(bar.x, dtype=float), 1.0)


def test_np_eta_and_overlap_figures_carry_the_table_values():
    np_table = pd.DataFrame({"layer": ["1", "3"], "np": [0.4, 0.7], "np_normalized": [0.1, 0.2]})
    fig = pf.np_per_layer(np_table)
    np.testing.assert_allclose(fig.data[0].y, [0.4, 0.7])
    np.testing.assert_allclose(fig.data[1].y, [0.1, 0.2])
    eta = pd.DataFrame({"layer": ["1", "3", "total"], "eta_tau": [1.8, 8.3, 4.9]})
    fig = pf.eta_per_layer(eta)
    assert list(fig.data[0].x) == ["layer 1", "layer 3"]
    np.testing.assert_allclose(fig.data[1].y, [4.9, 4.9])  # the whole model's line, one point per bar
    ov = pd.DataFrame({"layer": ["1"], "overlap": [0.9], "bound": [0.5], "chance": [0.2]})
    assert [t.y[0] for t in pf.mst_overlap(ov).data] == [0.9, 0.5, 0.2]


def test_np_over_epochs_one_line_per_layer_sorted_by_epoch():
    t = pd.DataFrame(
        {
            "epoch": [3, 0, 3, 0],
            "layer": ["1", "1", "3", "3"],
            "np": [1, 2, 3, 4],
            "np_normalized": [0.3, 0.1, 0.4, 0.2],
        }
    )
    fig = pf.np_over_epochs(t)
    assert [list(tr.x) for tr in fig.data] == [[0, 3], [0, 3]]
    assert [list(tr.y) for tr in fig.data] == [[0.1, 0.3], [0.2, 0.4]]


def test_figures_on_a_real_model_topology():
    import torch

    import nngeo_core.topology as topology
    from nngeo_core.models import build

    torch.manual_seed(0)
    model = build("mlp", widths=(6, 5))
    np_table = topology.neural_persistence(model)
    fig = pf.np_per_layer(np_table)
    np.testing.assert_allclose(fig.data[0].y, np_table["np"])
    eta = topology.critical_compression(model)
    # dense m -> n: eta = m n / (m + n - 1)
    np.testing.assert_allclose(pf.eta_per_layer(eta).data[0].y, [2 * 6 / 7, 6 * 5 / 10, 5 * 2 / 6])


# -- curvature -------------------------------------------------------------------------------------
def _edges():
    rng = np.random.default_rng(2)
    rows = []
    for layer, (m, n) in (("1", (3, 4)), ("3", (4, 2))):
        for i in range(m):
            for j in range(n):
                rows.append(dict(layer=layer, src=i, dst=j, weight=rng.normal(), curvature=rng.uniform(-1, 0.5)))
    return pd.DataFrame(rows)


def test_top_edges_per_layer_by_abs_value():
    e = _edges()
    for by in ("curvature", "weight"):
        top = cf.top_edges(e, 3, by=by)
        for layer, part in e.groupby("layer"):
            want = set(part.assign(a=part[by].abs()).nlargest(3, "a").index)
            assert set(top[top.layer == layer].index) == want


def test_neurons_are_coloured_by_the_mean_curvature_of_their_edges():
    e = _edges()
    nodes = next(t for t in cf.layer_graph(e).data if t.name == "neurons")
    got = {(int(c), int(u)): float(k) for c, u, k in nodes.customdata}
    # neuron j of the middle column: the outputs of layer 1 and the inputs of layer 3
    for j in range(4):
        incident = pd.concat([e[(e.layer == "1") & (e.dst == j)], e[(e.layer == "3") & (e.src == j)]])
        assert got[(1, j)] == pytest.approx(incident["curvature"].mean())
    assert got[(0, 2)] == pytest.approx(e[(e.layer == "1") & (e.src == 2)]["curvature"].mean())


def test_layer_graph_of_a_real_curvature_table():
    import torch

    import nngeo_core.curvature as curvature
    from nngeo_core.models import build

    torch.manual_seed(0)
    model = build("mlp", widths=(4, 3))
    edges = curvature.weight_only_curvature(model)
    fig = cf.layer_graph(edges, shown=cf.top_edges(edges, 5))
    nodes = next(t for t in fig.data if t.name == "neurons")
    assert len(nodes.x) == 2 + 4 + 3 + 2
    assert sorted(set(nodes.x)) == [0, 1, 2, 3]
    mid = next(t for t in fig.data if t.name == "edges")
    assert len(mid.x) == 5 * 3
    # the table says the kind of each layer, the model's weight shapes give the sizes
    assert list(fig.layout.xaxis.ticktext) == ["fc1", "fc2", "fc3"]
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    fig = cf.layer_graph(edges, shapes=shapes)
    assert list(fig.layout.xaxis.ticktext) == ["fc1 (2→4)", "fc2 (4→3)", "fc3 (3→2)"]


def test_layer_graph_diverging_colours_centred_at_zero_and_edge_hover():
    e = _edges()
    fig = cf.layer_graph(e)
    mid = next(t for t in fig.data if t.name == "edges")
    assert mid.marker.cmid == 0 and mid.marker.cmin == -mid.marker.cmax
    assert len(mid.x) == len(e)
    assert all(word in mid.hovertemplate for word in ("weight", "curvature", "→"))
    row = mid.customdata[0]
    assert list(row[:3]) == ["layer 1", 0, 0] and float(row[3]) == pytest.approx(e.weight.iloc[0])
    # every shown edge is one segment in exactly one colour-bin trace
    lines = [t for t in fig.data if t.mode == "lines"]
    assert sum(int(np.isfinite(np.asarray(t.x, dtype=float)).sum()) // 2 for t in lines) == len(e)
    nodes = next(t for t in fig.data if t.name == "neurons")
    assert len(nodes.x) == 3 + 4 + 2


def test_layer_graph_colour_bins_follow_the_sign():
    e = pd.DataFrame(
        {"layer": ["1", "1"], "src": [0, 1], "dst": [0, 0], "weight": [1.0, 1.0], "curvature": [-0.9, 0.9]}
    )
    fig = cf.layer_graph(e)
    lines = sorted((t for t in fig.data if t.mode == "lines"), key=lambda t: np.asarray(t.y, dtype=float)[0])
    colours = [[int(v) for v in t.line.color[t.line.color.index("(") + 1 : -1].split(",")] for t in lines]
    (r0, _, b0), (r1, _, b1) = colours
    assert b0 > r0 and r1 > b1  # src 0 (negative): blue; src 1 (positive): red


def test_curvature_histogram_one_trace_per_layer():
    e = _edges()
    fig = cf.curvature_histogram(e)
    assert [t.name for t in fig.data] == ["layer 1", "layer 3"]
    # no alive column: every edge is live and drawn, no dead-edge note
    assert all(sum(t.y) == pytest.approx(1.0) for t in fig.data)
    assert not fig.layout.annotations


def test_layer_graph_needs_endpoints():
    with pytest.raises(NNGeoError, match="endpoints"):
        cf.layer_graph(pd.DataFrame({"layer": ["1"], "curvature": [0.1]}))


# -- geodesic paths --------------------------------------------------------------------------------
def test_path_figure_accuracy_and_distance_panels():
    p = pd.DataFrame(
        {
            "t": [0, 0.5, 1],
            "accuracy_a": [0.9, 0.8, 0.7],
            "accuracy_b": [0.1, 0.5, 0.9],
            "distance_to_target": [2, 1, 0],
        }
    )
    fig = path_figure(p)
    assert [t.name for t in fig.data] == ["accuracy_a", "accuracy_b", "distance_to_target"]
    assert fig.data[2].xaxis == "x2"


def test_path_figure_names_the_curves_and_stars_the_best_network():
    p = pd.DataFrame(
        {
            "path_length": [0, 0.1, 0.2],
            "accuracy_a": [0.9, 0.8, 0.7],
            "accuracy_b": [0.1, 0.6, 0.9],
            "accuracy_mean": [0.5, 0.7, 0.8],
            "distance_to_b": [2, 1, 0.5],
            "best": [False, False, True],
        }
    )
    fig = path_figure(p, names={"accuracy_a": "task A (xor)"})
    assert [t.name for t in fig.data] == [
        "task A (xor)",
        "accuracy_b",
        "accuracy_mean",
        "distance_to_b",
        "best mean accuracy",
    ]
    assert list(fig.data[-1].x) == [0.2, 0.2, 0.2] and list(fig.data[-1].y) == [0.7, 0.9, 0.8]


# -- truthful figures (issue #13, item 5) ----------------------------------------------------------
def _log_range_covers(fig, values) -> None:
    lo, hi = fig.layout.yaxis.range
    logs = np.log10(np.asarray(values, dtype=float))
    assert lo <= logs.min() and logs.max() <= hi, (lo, hi, logs)


def test_eta_axis_is_log_with_a_range_from_the_data_covering_bars_and_the_whole_model_line():
    # fcn_mnist-like numbers: the whole-model line at 44.4 once stretched the axis to 10^48
    eta = pd.DataFrame({"layer": ["1", "3", "5", "total"], "eta_tau": [88.8, 50.3, 9.2, 44.4]})
    fig = pf.eta_per_layer(eta)
    assert fig.layout.yaxis.type == "log"
    _log_range_covers(fig, [88.8, 50.3, 9.2, 44.4])
    lo, hi = fig.layout.yaxis.range
    assert lo == 0.0  # from 1× (η_τ >= 1): bar heights are compression factors
    assert hi < np.log10(88.8) + 0.5  # no empty decades above the data
    # the reference is a trace in data units, not a layout line or annotation read as an exponent
    line = next(t for t in fig.data if t.type == "scatter")
    assert set(line.y) == {44.4} and "44.4" in line.name
    assert not fig.layout.shapes and not fig.layout.annotations


def test_eta_axis_goes_below_one_when_a_value_does():
    fig = pf.eta_per_layer(pd.DataFrame({"layer": ["a", "b"], "eta_tau": [0.5, 3000.0]}))
    _log_range_covers(fig, [0.5, 3000.0])
    assert pf.eta_axis_range([]) == [0.0, 1.0]


def test_eta_axis_of_a_real_model_covers_every_value():
    import torch

    import nngeo_core.topology as topology
    from nngeo_core.models import build

    torch.manual_seed(0)
    eta = topology.critical_compression(build("lenet5"))
    fig = pf.eta_per_layer(eta)
    _log_range_covers(fig, eta["eta_tau"])
    assert len(fig.data[0].x) == len(eta) - 1  # one bar per layer, the total as the line


def test_persistence_diagram_titles_stay_off_the_neighbours_and_the_toolbar():
    rng = np.random.default_rng(0)
    names = [str(i) for i in range(6)]  # 4 columns: two rows, the second with two panels
    d = pd.concat([pd.DataFrame({"layer": n, "birth": 1.0, "death": rng.uniform(0, 1, 5)}) for n in names])
    fig = pf.persistence_diagrams(d)
    axes = {k: fig.layout[k] for k in fig.layout if k.startswith(("xaxis", "yaxis"))}
    y_titled = sorted(k for k, a in axes.items() if k.startswith("y") and a.title.text)
    x_titled = sorted(k for k, a in axes.items() if k.startswith("x") and a.title.text)
    # "death" once per row (the first column), "birth" under the lowest panel of each column
    assert [axes[k].title.text for k in y_titled] == ["death", "death"]
    assert y_titled == ["yaxis", "yaxis5"]
    assert x_titled == ["xaxis3", "xaxis4", "xaxis5", "xaxis6"]
    # subplot titles sit above the panels, below plotly's ~35 px toolbar
    assert fig.layout.margin.t >= pf.DIAGRAM_TOP_PX >= 60
    # rows apart by at least DIAGRAM_GAP_PX (room for the upper row's tick labels and the titles)
    plot_h = fig.layout.height - fig.layout.margin.t - fig.layout.margin.b
    gap = (fig.layout.yaxis.domain[0] - fig.layout.yaxis5.domain[1]) * plot_h
    assert gap >= 0.95 * pf.DIAGRAM_GAP_PX  # the bottom margin is a little under the 50 px reserved


def test_small_probabilities_are_shown_in_scientific_notation():
    import torch

    import nngeo_core.topology as topology
    from nngeo_core.models import build

    torch.manual_seed(0)
    table = topology.mst_overlap(build("mlp", widths=(100, 100)))
    assert table["p_chance"].min() < 1e-30  # the real table has such values
    formats = column_formats(table)
    assert formats["p_chance"]["format"] == SCIENTIFIC and "help" in formats["p_chance"]
    assert "format" not in formats.get("overlap", {})  # fractions in [0, 1] stay fixed-point
    assert "layer" not in formats and "alpha" not in formats  # text and counts untouched
    tiny = float(table["p_chance"][table["p_chance"] > 0].min())
    shown = SCIENTIFIC % tiny  # the same printf format st.dataframe applies
    assert len(shown) <= 10 and float(shown) == pytest.approx(tiny, rel=1e-3)
    assert column_formats(pd.DataFrame({"x": [0.5, 2.0], "big": [1.0, 3e9]})) == {"big": {"format": SCIENTIFIC}}


def _bar_figure(top: float, xs=("a", "b")) -> object:
    import plotly.graph_objects as go

    return go.Figure(go.Bar(x=list(xs), y=[top / 2, top]))


def test_shared_ranges_are_equal_and_cover_every_figure():
    figs = share_ranges([_bar_figure(5.0), _bar_figure(12.0, ("c", "d"))])
    r0, r1 = (tuple(f.layout.yaxis.range) for f in figs)
    assert r0 == r1 and r0[0] == 0.0 and r0[1] >= 12.0
    assert figs[0].layout.xaxis.range is None  # categories differ between runs: not shared


def test_shared_ranges_of_real_per_run_figures():
    import torch

    import nngeo_core.topology as topology
    from nngeo_core.dashboard.per_run import PER_RUN_FIGURES
    from nngeo_core.models import build

    torch.manual_seed(0)
    models = [build("mlp", widths=(4,)), build("mlp", widths=(40, 30))]
    eta = [PER_RUN_FIGURES["critical compression η_τ"].draw(topology.critical_compression(m)) for m in models]
    before = [data_extents(f)["yaxis"] for f in eta]
    share_ranges(eta)
    lo, hi = eta[0].layout.yaxis.range
    assert list(eta[1].layout.yaxis.range) == [lo, hi]
    for b in before:  # log axis: the range is in decades and covers both figures' values
        assert lo <= np.log10(b[0]) and np.log10(b[1]) <= hi
    npp = [PER_RUN_FIGURES["neural persistence per layer"].draw(topology.neural_persistence(m)) for m in models]
    share_ranges(npp)
    for ax in ("yaxis", "yaxis2"):  # each panel with its own common range
        assert list(npp[0].layout[ax].range) == list(npp[1].layout[ax].range)
        top = max(max(t.y) for f in npp for t in f.data if t.yaxis == ("y" if ax == "yaxis" else "y2"))
        assert npp[0].layout[ax].range[1] >= top


def test_shared_ranges_share_comparable_heatmap_axes_and_colours_only():
    grid, _, _ = _grid()
    a = geometry_heatmap(grid)
    b = geometry_heatmap(grid.assign(x=grid["x"] * 3, log_volume=grid["log_volume"] * 2))
    share_ranges([a, b])
    assert list(a.layout.xaxis.range) == list(b.layout.xaxis.range) and a.layout.xaxis.range[1] >= 3.0
    ha, hb = (next(t for t in f.data if t.type == "heatmap") for f in (a, b))
    assert (ha.zmin, ha.zmax) == (hb.zmin, hb.zmax) == (grid["log_volume"].min() * 2, grid["log_volume"].max() * 2)
    plane = plane_heatmap(grid.rename(columns={"x": "u", "y": "v"}))  # plane coordinates: another quantity
    c = geometry_heatmap(grid)
    share_ranges([c, plane])
    assert list(c.layout.xaxis.range) == [grid["x"].min(), grid["x"].max()]  # untouched


def _dead_edges_table(seed=3):
    rng = np.random.default_rng(seed)
    rows = []
    for layer, n in (("1", 40), ("3", 25)):
        alive = rng.integers(0, 3, n)  # 0, 1 or 2 calibration inputs fire both neurons
        curv = np.where(alive == 0, 1.0, rng.uniform(-1, 0.8, n))
        rows.append(pd.DataFrame({"layer": layer, "kind": "dense", "curvature": curv, "alive": alive}))
    return pd.concat(rows, ignore_index=True)


def test_dead_edges_are_counted_apart_and_left_out_of_the_histogram():
    e = _dead_edges_table()
    counts = cf.dead_edges(e).set_index("layer")
    for layer in ("1", "3"):
        part = e[e["layer"] == layer]
        assert counts.loc[layer, "dead"] == int((part["alive"] == 0).sum())
        assert counts.loc[layer, "edges"] == len(part)
    assert counts.loc["total", "dead"] == int((e["alive"] == 0).sum())
    fig = cf.curvature_histogram(e, bins=10)
    assert len(fig.data) == 2
    for t, layer in zip(fig.data, ("1", "3"), strict=True):
        live = e[(e["layer"] == layer) & (e["alive"] > 0)]["curvature"].to_numpy()
        n_dead = int(((e["layer"] == layer) & (e["alive"] == 0)).sum())
        assert f"{n_dead} dead" in t.name
        # the bars are the live edges' histogram on the shared bins, as fractions of the live edges
        edges_ = np.concatenate([np.asarray(t.customdata)[:, 0], np.asarray(t.customdata)[-1:, 1]]).astype(float)
        np.testing.assert_allclose(np.asarray(t.y) * len(live), np.histogram(live, bins=edges_)[0], atol=1e-9)
    note = fig.layout.annotations[0].text
    total = int((e["alive"] == 0).sum())
    assert "dead edges" in note and "κ ≡ 1" in note and f"{total:,} of {len(e):,}" in note


def test_dead_edges_of_a_real_neural_curvature_table():
    import torch

    import nngeo_core.curvature as curvature
    from nngeo_core.models import build

    torch.manual_seed(0)
    model = build("mlp", widths=(8, 6))
    edges = curvature.neural_curvature(model, torch.randn(6, 2))
    dead = edges["alive"] == 0
    assert dead.any() and (edges.loc[dead, "curvature"] == 1.0).all()  # dead_value, by definition
    assert cf.dead_edges(edges)["dead"].iloc[-1] == int(dead.sum())
    fig = cf.curvature_histogram(edges)
    drawn = sum(
        np.asarray(t.y).sum() * (~dead & (edges["layer"] == name)).sum()
        for t, name in zip(fig.data, dict.fromkeys(edges["layer"]), strict=True)
    )
    assert drawn == pytest.approx(int((~dead).sum()))
    assert f"{int(dead.sum()):,} of {len(edges):,}" in fig.layout.annotations[0].text


def test_layer_labels_from_weight_shapes_table_columns_and_names():
    import torch

    import nngeo_core.topology as topology
    from nngeo_core.models import build

    torch.manual_seed(0)
    model = build("lenet5")
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    eta = topology.critical_compression(model)
    labels = labels_for(eta, shapes)
    assert list(labels.values()) == [
        "conv1 (1→6, 5×5)",
        "conv2 (6→16, 5×5)",
        "fc1 (400→120)",
        "fc2 (120→84)",
        "fc3 (84→10)",
        "whole model",
    ]
    # without the checkpoint: dense sizes from the table's n_in/n_out, none for conv (units, not channels)
    assert list(labels_for(eta).values())[:3] == ["conv1", "conv2", "fc1 (400→120)"]
    # a module with a name of its own keeps it; equal labels are kept apart
    assert layer_labels(["features.0", "head"], {"features.0.weight": (8, 3, 3, 3), "head.weight": (10, 8)}) == {
        "features.0": "conv1 (3→8, 3×3)",
        "head": "head (8→10)",
    }
    assert len(set(layer_labels(["a.1", "a.1 "], {}).values())) == 2
    fig = pf.eta_per_layer(eta, shapes=shapes)
    assert list(fig.data[0].x) == list(labels.values())[:-1]
    diagrams = topology.persistence_diagrams(model)
    titles = [a.text for a in pf.persistence_diagrams(diagrams, shapes=shapes).layout.annotations]
    assert titles == list(labels.values())[:-1]


def test_ricci_map_of_a_zero_field_says_why_and_others_do_not():
    grid, _, _ = _grid()
    flat = geometry_heatmap(grid.assign(ricci=0.0), value="ricci")
    assert [a.text.replace("<br>", " ") for a in flat.layout.annotations] == [FLAT_NOTE]
    assert not geometry_heatmap(grid, value="ricci").layout.annotations
    assert not geometry_heatmap(grid.assign(log_volume=0.0)).layout.annotations  # only R has the note
    assert is_zero_field([0.0, -1e-12, np.nan]) and not is_zero_field([np.nan]) and not is_zero_field([0, 1e-3])


def test_ricci_map_of_real_relu_and_tanh_nets():
    import torch

    import nngeo_core.geometry.heatmaps as geometry
    from nngeo_core.models import build

    for activation, flat in (("relu", True), ("tanh", False)):
        torch.manual_seed(0)
        model = build("mlp", widths=(8,), activation=activation)
        grid = geometry.grid_heatmap(model, (-1, 1, -1, 1), resolution=5, ricci=True, device="cpu")
        fig = geometry_heatmap(grid, value="ricci")
        assert bool(fig.layout.annotations) is flat, activation


def test_snapshot_of_the_final_epoch_is_offered_once(nngeo_home):
    from nngeo_core.defaults import default_train
    from nngeo_core.runs import snapshot_epochs, train_run
    from nngeo_core.specs import DataSpec, ModelSpec, RunSpec
    from nngeo_core.store import Store

    store = Store(str(nngeo_home / "store"))
    spec = RunSpec(
        data=DataSpec("xor", params={"n_train": 40, "n_test": 40}),
        model=ModelSpec("mlp", {"widths": (4,)}),
        train=default_train("mlp", "xor").replace(epochs=2, snapshots=(0, 2)),
    )
    key = train_run(spec, store=store)
    assert snapshot_epochs(key, store=store) == [0, 2] and final_epoch(store, key) == 2
    assert snapshot_choices(snapshot_epochs(key, store=store), final_epoch(store, key)) == [0]
    assert snapshot_choices([3, 1], None) == [1, 3]
    # the stored checkpoint's header labels the layers
    labels = labels_for(pd.DataFrame({"layer": ["1", "3"]}), weight_shapes(store, key))
    assert labels == {"1": "fc1 (2→4)", "3": "fc2 (4→2)"}
