"""Persistence diagrams and neural persistence of single layers, against independent references:
gudhi's SimplexTree and a plain Python Kruskal (union-find) written here."""

from __future__ import annotations

import math

import gudhi
import numpy as np
import pytest
import torch
from torch import nn

from nngeo_core.errors import NNGeoError
from nngeo_core.progress import Cancelled, Progress
from nngeo_core.topology import (
    diagram_norm,
    network_persistence,
    neural_persistence,
    persistence_diagram,
    persistence_diagrams,
)

# ---------------------------------------------------------------- independent references


def kruskal_deaths(W: np.ndarray, wmax: float, include_zero: bool = False) -> tuple[list[float], int]:
    """Normalised weights of a maximum spanning forest (plain union-find) and its component count."""
    n_out, n_in = W.shape
    parent = list(range(n_in + n_out))

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    edges = [(abs(float(W[o, i])), i, n_in + o) for o in range(n_out) for i in range(n_in)]
    edges = [e for e in edges if include_zero or e[0] > 0]
    edges.sort(key=lambda e: -e[0])
    deaths = []
    for w, a, b in edges:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[ra] = rb
            deaths.append(w / wmax if wmax > 0 else 0.0)
    return deaths, n_in + n_out - len(deaths)


def gudhi_points(W: np.ndarray, wmax: float, include_zero: bool = False) -> tuple[np.ndarray, int]:
    """gudhi sub-level diagram (vertices at 0, edges at 1 - w'), mapped to (1, w'); and #essential."""
    n_out, n_in = W.shape
    st = gudhi.SimplexTree()
    for v in range(n_in + n_out):
        st.insert([v], 0.0)
    for o in range(n_out):
        for i in range(n_in):
            w = abs(float(W[o, i]))
            if w > 0 or include_zero:
                st.insert([i, n_in + o], 1.0 - (w / wmax if wmax > 0 else 0.0))
    st.compute_persistence()
    bars = np.asarray(st.persistence_intervals_in_dimension(0)).reshape(-1, 2)
    finite = np.isfinite(bars[:, 1])
    pts = np.column_stack([1.0 - bars[finite, 0], 1.0 - bars[finite, 1]])
    return pts[np.argsort(pts[:, 1], kind="stable")], int((~finite).sum())


def random_layers():
    rng = np.random.default_rng(7)
    yield "gauss 12x9", rng.normal(size=(12, 9))
    yield "gauss 40x25", rng.normal(size=(40, 25))
    ties = rng.integers(-3, 4, size=(15, 11)).astype(float)  # many ties and exact zeros
    yield "integer ties+zeros 15x11", ties
    sparse = rng.normal(size=(20, 30))
    sparse[rng.random(sparse.shape) < 0.85] = 0.0  # pruned: graph falls apart
    yield "85% pruned 20x30", sparse
    yield "row 1x13", rng.normal(size=(1, 13))
    yield "column 9x1", rng.normal(size=(9, 1))
    yield "float32 10x100", rng.normal(size=(10, 100)).astype(np.float32)


# ---------------------------------------------------------------- exactness


@pytest.mark.parametrize("label,W", list(random_layers()))
@pytest.mark.parametrize("zeros", ["absent", "edge"])
def test_diagram_equals_gudhi_and_kruskal(label, W, zeros):
    wmax = float(np.abs(W).max())
    include_zero = zeros == "edge"
    ours = persistence_diagram(W, zeros=zeros)
    ref, n_essential = gudhi_points(W, wmax, include_zero)
    assert ours.shape == ref.shape, label
    np.testing.assert_allclose(ours, ref, atol=1e-9, rtol=0)
    # the same diagram through the library's own gudhi backend
    np.testing.assert_allclose(persistence_diagram(W, zeros=zeros, backend="gudhi"), ours, atol=1e-9, rtol=0)
    # points are the spanning-forest edges with positive persistence
    deaths, components = kruskal_deaths(W, wmax, include_zero)
    kept = np.sort([d for d in deaths if d < 1.0])
    np.testing.assert_allclose(ours[:, 1], kept, atol=1e-12)
    assert (ours[:, 0] == 1.0).all()
    assert components == n_essential
    # essential classes: one (1, 0) per component, exactly what gudhi reports as infinite bars
    with_ess = persistence_diagram(W, zeros=zeros, essential=True)
    assert len(with_ess) == len(ours) + n_essential
    assert (with_ess[:n_essential] == [1.0, 0.0]).all()


def test_zero_weights_absent_versus_edge():
    """Pruned edges: 'absent' drops them (fewer points, more components); 'edge' keeps them at w'=0,
    where each needed one is a point (1, 0) of persistence 1 (not 0)."""
    W = np.array([[1.0, 0.0], [0.0, 0.5]])  # two disjoint edges once zeros are absent
    absent = persistence_diagram(W)
    np.testing.assert_array_equal(absent, [[1.0, 0.5]])  # (1, 1) has zero persistence: dropped
    np.testing.assert_array_equal(persistence_diagram(W, essential=True), [[1, 0], [1, 0], [1, 0.5]])
    edge = persistence_diagram(W, zeros="edge")
    np.testing.assert_array_equal(edge, [[1.0, 0.0], [1.0, 0.5]])


def test_neural_persistence_matches_reference_norms():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(7, 5), nn.Tanh(), nn.Linear(5, 3))
    model.input_shape = (7,)
    weights = [model[0].weight.detach().double().numpy(), model[2].weight.detach().double().numpy()]
    for p in (1, 2, 3.5, math.inf):
        for essential in (False, True):
            table = neural_persistence(model, p=p, essential=essential)
            for row, W in zip(table.itertuples(), weights, strict=False):
                deaths, components = kruskal_deaths(W, float(np.abs(W).max()))
                pers = [1 - d for d in deaths] + [1.0] * (components if essential else 0)
                ref = max(pers) if math.isinf(p) else sum(x**p for x in pers) ** (1 / p)
                assert row.np == pytest.approx(ref, abs=1e-12)
                n_vertices = sum(W.shape)
                scale = 1.0 if math.isinf(p) else (n_vertices - 1) ** (1 / p)
                assert row.np_normalized == pytest.approx(ref / scale, abs=1e-12)
                assert row.essential is essential and row.normalize == "layer" and row.conv_method == "dense"
    # Rieck's convention: essential=True adds exactly 1 to the squared sum of a connected layer
    plain = neural_persistence(model, essential=False)["np"].to_numpy()
    rieck = neural_persistence(model, essential=True)["np"].to_numpy()
    np.testing.assert_allclose(rieck**2, plain**2 + 1, atol=1e-12)
    # network NP: sum, and mean of the normalised values
    net = network_persistence(neural_persistence(model))
    assert net["network_np"] == pytest.approx(plain.sum())


def test_network_normalisation_uses_the_global_max():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 3))
    model.input_shape = (6,)
    with torch.no_grad():
        model[2].weight.mul_(10)  # the second layer holds the network's largest weight
    global_max = max(float(m.weight.detach().abs().max()) for m in (model[0], model[2]))
    table = neural_persistence(model, normalize="network")
    for row, layer in zip(table.itertuples(), (model[0], model[2]), strict=False):
        diag = persistence_diagram(layer.weight, wmax=global_max)
        assert row.np == pytest.approx(diagram_norm(diag, 2), abs=1e-12)
        assert row.wmax == pytest.approx(global_max)
    assert (table["normalize"] == "network").all()
    # with the layer's own max the first layer's NP differs
    assert neural_persistence(model)["np"][0] != pytest.approx(table["np"][0])


def test_persistence_diagrams_long_table_matches_per_layer():
    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 2))
    model.input_shape = (5,)
    long = persistence_diagrams(model, essential=True)
    assert list(long.columns[:4]) == ["layer", "birth", "death", "persistence"]
    for name, layer in (("0", model[0]), ("2", model[2])):
        part = long[long["layer"] == name][["birth", "death"]].to_numpy()
        np.testing.assert_allclose(part, persistence_diagram(layer.weight, essential=True), atol=1e-12)


# ---------------------------------------------------------------- edge cases and bad input


def test_one_by_one_all_zero_and_empty_layers():
    # 1x1: the only edge has w' = 1, zero persistence -> empty diagram, NP 0
    assert persistence_diagram(np.array([[-3.0]])).shape == (0, 2)
    np.testing.assert_array_equal(persistence_diagram(np.array([[-3.0]]), essential=True), [[1.0, 0.0]])
    one = nn.Linear(1, 1)
    one.input_shape = (1,)
    row = neural_persistence(one).iloc[0]
    assert row["np"] == 0.0 and row["np_normalized"] == 0.0
    # all-zero layer: every edge absent, empty diagram; each vertex its own component
    zero = np.zeros((3, 4))
    assert persistence_diagram(zero).shape == (0, 2)
    assert len(persistence_diagram(zero, essential=True)) == 7
    assert len(persistence_diagram(zero, zeros="edge")) == 6  # w'=0 edges: persistence 1 each
    dead = nn.Linear(4, 3)
    nn.init.zeros_(dead.weight)
    dead.input_shape = (4,)
    assert neural_persistence(dead)["np"][0] == 0.0
    # empty layer: a clear error
    with pytest.raises(NNGeoError, match="no weights"):
        persistence_diagram(np.zeros((0, 3)))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_weights_raise(bad):
    W = np.ones((3, 3))
    W[1, 2] = bad
    with pytest.raises(NNGeoError, match="NaN or infinite"):
        persistence_diagram(W)
    model = nn.Sequential(nn.Linear(3, 3))
    model.input_shape = (3,)
    with torch.no_grad():
        model[0].weight[0, 0] = bad
    with pytest.raises(NNGeoError, match="NaN or infinite"):
        neural_persistence(model)


def test_bad_settings_raise_one_line_errors():
    W = np.ones((2, 2))
    model = nn.Sequential(nn.Linear(2, 2))
    model.input_shape = (2,)
    cases = [
        lambda: persistence_diagram(np.ones((2, 2, 2))),
        lambda: persistence_diagram(W, backend="ripser"),
        lambda: persistence_diagram(W, wmax=0.5),
        lambda: persistence_diagram(W, wmax=float("nan")),
        lambda: persistence_diagram(W, zeros="maybe"),
        lambda: neural_persistence(model, p=0),
        lambda: neural_persistence(model, p="two"),
        lambda: neural_persistence(model, normalize="global"),
        lambda: neural_persistence(model, conv="im2col"),
        lambda: neural_persistence("not a model"),
    ]
    for case in cases:
        with pytest.raises(NNGeoError) as err:
            case()
        assert "\n" not in str(err.value)


def test_cancel_stops_the_work():
    model = nn.Sequential(nn.Linear(4, 4))
    model.input_shape = (4,)
    with pytest.raises(Cancelled):
        neural_persistence(model, progress=Progress(is_cancelled=lambda: True))
    seen = []
    neural_persistence(model, progress=Progress(on_update=lambda f, ph, m: seen.append(f), min_interval=0))
    assert seen and seen[-1] == 1.0
