"""Readouts of a curvature result: a layer's curvature matrix, curvature vs |w| with Spearman ρ per
layer, and the share of dead edges, on hand-made edge tables and on real ``neural_curvature``
tables, against pivots, reshape-means, counts and ``scipy.stats.spearmanr`` written here."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import spearmanr
from torch import nn

from nngeo_core.curvature import neural_curvature, weight_only_curvature
from nngeo_core.errors import NNGeoError
from nngeo_core.figures.curvature import (
    curvature_heatmap,
    curvature_matrix,
    curvature_vs_weight,
    curvature_weight_correlation,
    dead_share_figure,
    edge_layers,
)
from nngeo_core.models.mlp import FeedForward, sequential

XOR = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
# the xor corners and points around them: enough inputs that most edges are live
INPUTS = torch.cat(
    [XOR, XOR.repeat(3, 1) + 0.2 * torch.randn(12, 2, generator=torch.Generator().manual_seed(0)).double()]
)


def dense_table(layer: str, n_in: int, n_out: int, seed: int, drop: float = 0.0) -> pd.DataFrame:
    """Every edge i -> j of a dense layer with random κ, weight and alive (some dead); ``drop`` of
    the edges left out (pruned)."""
    rng = np.random.default_rng(seed)
    src, dst = (a.ravel() for a in np.meshgrid(np.arange(n_in), np.arange(n_out)))
    keep = rng.random(len(src)) >= drop
    src, dst = src[keep], dst[keep]
    return pd.DataFrame(
        {
            "layer": layer,
            "kind": "dense",
            "src": src,
            "dst": dst,
            "kernel": dst * n_in + src,
            "weight": rng.normal(size=len(src)),
            "curvature": rng.normal(size=len(src)),
            "alive": rng.integers(0, 3, size=len(src)),
        }
    )


def hand_table() -> pd.DataFrame:
    a = dense_table("a", 5, 4, seed=1, drop=0.2)
    b = dense_table("b", 4, 3, seed=2)
    skipped = pd.DataFrame([{"layer": "bn", "kind": "skipped", "note": "no layer graph"}])
    return pd.concat([a, b, skipped], ignore_index=True)


def relu_mlp(widths=(2, 8, 6, 3), seed=0, dead_unit=1) -> nn.Module:
    torch.manual_seed(seed)
    mods: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=False)):
        mods.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            mods.append(nn.ReLU())
    m = sequential(FeedForward, mods)
    with torch.no_grad():
        m[0].bias[dead_unit] = -100.0  # a hidden neuron that never fires: its edges are dead
    m.input_shape, m.num_classes = (widths[0],), widths[-1]
    return m.double()


@pytest.fixture(scope="module")
def real() -> pd.DataFrame:
    return neural_curvature(relu_mlp(), INPUTS, method="exact")


def expected_matrix(part: pd.DataFrame, rows: str = "dst", cols: str = "src") -> pd.DataFrame:
    """The pivot rows x cols of κ, rows and columns sorted by the mean κ of their edges (ties by id)."""
    piv = part.pivot_table(index=rows, columns=cols, values="curvature", aggfunc="mean")
    r_mean = part.groupby(rows)["curvature"].mean()
    c_mean = part.groupby(cols)["curvature"].mean()
    r_order = sorted(r_mean.index, key=lambda i: (r_mean[i], i))
    c_order = sorted(c_mean.index, key=lambda i: (c_mean[i], i))
    return piv.loc[r_order, c_order]


def heat_z(fig) -> np.ndarray:
    return np.asarray(fig.data[0].z, dtype=float)


# ---------------------------------------------------------------- curvature matrix


@pytest.mark.parametrize("layer", ["a", "b"])
def test_dense_matrix_is_the_pivot_ordered_by_node_curvature(layer):
    table = hand_table()
    part = table[table["layer"] == layer]
    want = expected_matrix(part)
    m = curvature_matrix(table, layer)
    np.testing.assert_allclose(m.z.to_numpy(), want.to_numpy(), equal_nan=True)
    assert list(m.rows) == list(want.index) and list(m.cols) == list(want.columns)
    assert m.row_block == m.col_block == 1 and m.what == "κ of each edge"
    fig = curvature_heatmap(table, layer)
    np.testing.assert_allclose(heat_z(fig), want.to_numpy(), equal_nan=True)
    assert list(fig.data[0].y) == [str(int(i)) for i in want.index]
    assert list(fig.data[0].x) == [str(int(i)) for i in want.columns]
    assert fig.data[0].zmid == 0 and fig.data[0].zmin == -fig.data[0].zmax
    if layer == "a":  # 20% of the edges pruned: holes, not zeros
        assert np.isnan(heat_z(fig)).sum() == 20 - len(part)


def test_real_table_matrix_per_layer_equals_the_pivot(real):
    assert edge_layers(real) == ["0", "2", "4"]
    for layer in edge_layers(real):
        part = real[real["layer"] == layer]
        want = expected_matrix(part)
        fig = curvature_heatmap(real, layer)
        np.testing.assert_allclose(heat_z(fig), want.to_numpy(), equal_nan=True)
        assert list(fig.data[0].y) == [str(int(i)) for i in want.index]
    # the dead hidden neuron 1: every edge into it has alive = 0 and the dead_value 1 as κ
    first = real[real["layer"] == "0"]
    assert (first.loc[first["dst"] == 1, "alive"] == 0).all()
    assert (first.loc[first["dst"] == 1, "curvature"] == 1.0).all()


def test_block_aggregation_at_784_inputs_is_a_reshape_mean():
    table = dense_table("fc1", 784, 392, seed=3)
    m = curvature_matrix(table, "fc1", max_side=196)
    assert (m.row_block, m.col_block) == (2, 4) and m.z.shape == (196, 196)
    full = expected_matrix(table).to_numpy()
    want = full.reshape(196, 2, 196, 4).mean(axis=(1, 3))
    np.testing.assert_allclose(m.z.to_numpy(), want, rtol=1e-12, atol=1e-15)
    assert "blocks of 2×4 neurons" in m.what
    fig = curvature_heatmap(table, "fc1", max_side=196)
    np.testing.assert_allclose(heat_z(fig), want, rtol=1e-12, atol=1e-15)
    assert "mean κ over blocks of 2×4 neurons" in fig.layout.title.text
    assert fig.data[0].x[0] == "#0–3" and fig.data[0].y[-1] == "#390–391"


def test_block_min_with_holes_and_a_short_last_block():
    table = dense_table("fc", 50, 7, seed=4, drop=0.3)
    m = curvature_matrix(table, "fc", aggregate="min", max_side=4)
    full = expected_matrix(table).to_numpy()  # 7 x 50, NaN holes
    rb, cb = 2, 13  # ceil(7 / 4), ceil(50 / 4)
    assert (m.row_block, m.col_block) == (rb, cb)
    want = np.array(
        [
            [
                np.nan if np.isnan(blk := full[r : r + rb, c : c + cb]).all() else np.nanmin(blk)
                for c in range(0, 50, cb)
            ]
            for r in range(0, 7, rb)
        ]
    )
    np.testing.assert_allclose(m.z.to_numpy(), want, equal_nan=True)


def conv_net(seed=0) -> nn.Module:
    torch.manual_seed(seed)
    m = sequential(
        FeedForward,
        [nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 3)],
    )
    m.input_shape, m.num_classes = (2, 4, 4), 3
    return m.double()


@pytest.mark.parametrize("aggregate", ["mean", "min"])
def test_conv_matrix_is_per_channel_pair_over_taps_and_positions(aggregate):
    model = conv_net()
    shapes = {f"{n}": tuple(p.shape) for n, p in model.named_parameters()}
    torch.manual_seed(1)
    table = neural_curvature(model, torch.rand(3, 2, 4, 4, dtype=torch.float64), method="exact")
    conv = table[table["layer"] == "0"].copy()
    assert (conv["kind"] == "conv").all()
    conv["o"] = conv["kernel"] // 18  # weight (4, 2, 3, 3): 18 weights per filter, 9 per channel
    conv["c"] = (conv["kernel"] // 9) % 2
    piv = conv.pivot_table(index="o", columns="c", values="curvature", aggfunc=aggregate)
    r_mean, c_mean = conv.groupby("o")["curvature"].mean(), conv.groupby("c")["curvature"].mean()
    want = piv.loc[
        sorted(r_mean.index, key=lambda i: (r_mean[i], i)), sorted(c_mean.index, key=lambda i: (c_mean[i], i))
    ]
    fig = curvature_heatmap(table, "0", aggregate=aggregate, shapes=shapes)
    np.testing.assert_allclose(heat_z(fig), want.to_numpy())
    assert list(fig.data[0].y) == [f"c{i}" for i in want.index]
    assert f"{aggregate} κ over taps and positions" in fig.layout.title.text
    with pytest.raises(NNGeoError, match="weight shape"):
        curvature_matrix(table, "0")  # no shapes: the channels are unknown


# ---------------------------------------------------------------- curvature vs |w|


def reference_correlation(table: pd.DataFrame) -> dict[str, tuple[float, int]]:
    out = {}
    for layer, part in table[table["kind"] != "skipped"].groupby("layer", sort=False):
        live = part[part["alive"] != 0]
        rho = spearmanr(live["weight"].abs(), live["curvature"]).statistic if len(live) >= 3 else np.nan
        out[str(layer)] = (float(rho), len(live))
    return out


@pytest.mark.parametrize("which", ["hand", "real"])
def test_spearman_per_layer_equals_scipy_on_the_live_edges(which, real):
    table = hand_table() if which == "hand" else real
    got = curvature_weight_correlation(table)
    want = reference_correlation(table)
    assert list(got["layer"]) == list(want)
    for r in got.itertuples(index=False):
        assert r.n_edges == want[r.layer][1]
        np.testing.assert_allclose(r.spearman, want[r.layer][0], rtol=1e-12, equal_nan=True)
    if which == "real":  # the dead edges are left out: fewer edges than the layer has
        assert got.set_index("layer").loc["0", "n_edges"] < (real["layer"] == "0").sum()
    fig = curvature_vs_weight(table)
    for trace, r in zip(fig.data, got.itertuples(index=False), strict=True):
        assert ("ρ = n/a" if np.isnan(r.spearman) else f"ρ = {r.spearman:+.2f}") in trace.name
        assert len(trace.x) == r.n_edges


def test_scatter_subsamples_each_layer_deterministically():
    table = pd.concat([dense_table("big", 100, 60, seed=5), dense_table("small", 6, 5, seed=6)], ignore_index=True)
    fig = curvature_vs_weight(table, max_points=500)
    again = curvature_vs_weight(table, max_points=500)
    big = table[(table["layer"] == "big") & (table["alive"] != 0)]
    assert (
        len(fig.data[0].x) == 500 and len(fig.data[1].x) == ((table["layer"] == "small") & (table["alive"] != 0)).sum()
    )
    np.testing.assert_array_equal(fig.data[0].x, again.data[0].x)
    np.testing.assert_array_equal(fig.data[0].y, again.data[0].y)
    pairs = set(zip(big["weight"].abs(), big["curvature"], strict=True))
    assert set(zip(fig.data[0].x, fig.data[0].y, strict=True)) <= pairs
    assert "500 shown" in fig.data[0].name and f"{len(big):,} edges" in fig.data[0].name


# ---------------------------------------------------------------- dead edges


@pytest.mark.parametrize("which", ["hand", "real"])
def test_dead_share_equals_the_count(which, real):
    table = hand_table() if which == "hand" else real
    edges = table[table["kind"] != "skipped"]
    want = {str(k): (g["alive"] == 0).sum() / len(g) for k, g in edges.groupby("layer", sort=False)}
    got = curvature_weight_correlation(table).set_index("layer")["dead_share"]
    assert got.to_dict() == pytest.approx(want)
    fig = dead_share_figure(table)
    np.testing.assert_allclose(np.asarray(fig.data[0].y, dtype=float), list(want.values()))
    dead = {str(k): int((g["alive"] == 0).sum()) for k, g in edges.groupby("layer", sort=False)}
    assert [int(d) for d, _ in fig.data[0].customdata] == list(dead.values())
    if which == "real":
        assert dead["0"] >= 2  # the edges into the dead neuron, at least


def test_weight_only_table_has_no_dead_edges_and_says_so():
    table = weight_only_curvature(relu_mlp(), method="exact")
    assert (table["alive"] == 1).all()
    fig = dead_share_figure(table)
    assert not fig.data and fig.layout.annotations[0].text == "no data: no dead edges"
    assert (curvature_weight_correlation(table)["dead_share"] == 0).all()
    no_alive = table.drop(columns="alive")
    assert "dead_share" not in curvature_weight_correlation(no_alive).columns
    with pytest.raises(NNGeoError, match="dead_share_figure needs columns alive"):
        dead_share_figure(no_alive)


# ---------------------------------------------------------------- bad input


def test_missing_columns_are_one_line_errors():
    bare = pd.DataFrame({"layer": ["a"], "src": [0], "dst": [0]})
    for call, what in [
        (lambda: curvature_matrix(bare), "curvature_matrix needs columns curvature"),
        (lambda: curvature_heatmap(bare), "curvature_heatmap needs columns curvature"),
        (lambda: curvature_weight_correlation(bare), "curvature_weight_correlation needs columns curvature, weight"),
        (lambda: curvature_vs_weight(bare.assign(curvature=0.1)), "curvature_vs_weight needs columns weight"),
    ]:
        with pytest.raises(NNGeoError) as err:
            call()
        assert str(err.value).startswith(what) and "\n" not in str(err.value)
    with pytest.raises(NNGeoError, match="no layer 'zz'"):
        curvature_matrix(hand_table(), "zz")
    with pytest.raises(NNGeoError, match="unknown aggregate"):
        curvature_matrix(hand_table(), aggregate="max")


def test_empty_tables_and_layers_give_a_message():
    empty = hand_table().iloc[:0]
    for fig in (curvature_heatmap(empty), curvature_vs_weight(empty), dead_share_figure(empty)):
        assert not fig.data and fig.layout.annotations[0].text == "no curvature computed yet"
    assert len(curvature_weight_correlation(empty)) == 0
    holes = hand_table()
    holes.loc[holes["layer"] == "b", "curvature"] = np.nan
    fig = curvature_heatmap(holes, "b")
    assert not fig.data and fig.layout.annotations[0].text == "layer b has no edge with a curvature"
    only_skipped = hand_table().query("kind == 'skipped'")
    assert curvature_heatmap(only_skipped).layout.annotations[0].text == "no edges in the curvature table"
    all_dead = hand_table().assign(alive=0)
    assert curvature_vs_weight(all_dead).layout.annotations[0].text == "no live edge with a curvature and a weight"
    assert curvature_weight_correlation(all_dead)["spearman"].isna().all()
