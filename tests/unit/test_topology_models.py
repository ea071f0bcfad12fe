"""Conv graphs, critical compression, MST masks, MST/top-alpha overlap, diagram distances and NP
over training, against independent references: the unrolled (Toeplitz) matrix built by running
torch's conv2d on one-hot padded inputs, closed forms, scipy connected components, gudhi, brute
force and Monte Carlo."""

from __future__ import annotations

import copy
import math

import gudhi
import gudhi.wasserstein
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from torch import nn

from nngeo_core.analyses import get_analysis
from nngeo_core.errors import NNGeoError
from nngeo_core.models import build, prunable_layers
from nngeo_core.progress import Progress
from nngeo_core.topology import (
    critical_compression,
    critical_ratio_conv,
    critical_ratio_dense,
    critical_ratio_recurrent,
    diagram_distances,
    diagram_norm,
    mst_mask,
    mst_mask_from_weight,
    mst_overlap,
    neural_persistence,
    np_over_training,
    overlap_lower_bound,
    persistence_diagram,
    persistence_diagrams,
)

# ---------------------------------------------------------------- references


def toeplitz(conv: nn.Conv2d, input_size, weight=None, bn: nn.BatchNorm2d | None = None) -> np.ndarray:
    """Unrolled matrix (C_out*Ho*Wo, C_in*Hp*Wp) of ``conv`` with padded input positions as columns,
    by applying the conv (no padding, no bias) to every one-hot padded input. With ``bn``, of the
    linear part of conv followed by the eval-mode batch norm: ``bn(conv(e)) - bn(conv(0))``."""
    w = (conv.weight if weight is None else weight).detach().double()
    ph, pw = conv.padding
    c_in = conv.in_channels
    hp, wp = input_size[0] + 2 * ph, input_size[1] + 2 * pw
    eye = torch.eye(c_in * hp * wp, dtype=torch.float64).reshape(-1, c_in, hp, wp)
    out = F.conv2d(eye, w, stride=conv.stride, dilation=conv.dilation, groups=conv.groups)
    if bn is not None:
        norm = copy.deepcopy(bn).double().eval()
        with torch.no_grad():
            out = norm(out) - norm(torch.zeros_like(out[:1]))
    return out.reshape(out.shape[0], -1).T.numpy()


def randomise_batch_norms(model: nn.Module, seed: int = 1) -> None:
    """Trained-looking batch norm statistics and affine parameters, different per channel."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(torch.randn(c, generator=gen))
                m.running_var.copy_(torch.rand(c, generator=gen) * 3 + 0.1)
                m.weight.copy_(torch.randn(c, generator=gen))
                m.bias.copy_(torch.randn(c, generator=gen))


def bipartite_components(T: np.ndarray) -> int:
    """Connected components of the bipartite graph whose edges are the nonzero entries of T."""
    n_out, n_in = T.shape
    o, i = np.nonzero(T)
    adj = coo_matrix((np.ones(o.size), (i, n_in + o)), shape=(n_in + n_out,) * 2)
    return connected_components(adj, directed=False)[0]


def conv_model(c_in, c_out, kernel, size, **kw):
    torch.manual_seed(3)
    model = nn.Sequential(nn.Conv2d(c_in, c_out, kernel, bias=False, **kw))
    model.input_shape = (c_in, *size)
    return model


CONV_CASES = [
    dict(c_in=2, c_out=3, kernel=3, size=(5, 5), padding=1),
    dict(c_in=2, c_out=3, kernel=3, size=(7, 6), padding=1, stride=2),  # stride skips positions
    dict(c_in=1, c_out=2, kernel=(2, 3), size=(6, 7), padding=(0, 2), dilation=2),
    dict(c_in=4, c_out=4, kernel=3, size=(5, 5), padding=1, groups=2),
    dict(c_in=3, c_out=2, kernel=1, size=(4, 4), padding=0, stride=3),  # isolated inputs
]


# ---------------------------------------------------------------- conv graphs


@pytest.mark.parametrize("case", CONV_CASES)
def test_toeplitz_diagram_equals_unrolled_matrix(case):
    model = conv_model(**case)
    info = prunable_layers(model)[0]
    T = toeplitz(model[0], info.input_size)
    for essential in (False, True):
        long = persistence_diagrams(model, essential=essential)
        ours = long[["birth", "death"]].to_numpy()
        np.testing.assert_allclose(ours, persistence_diagram(T, essential=essential), atol=1e-12)
    row = neural_persistence(model).iloc[0]
    assert (row["n_in"], row["n_out"]) == (T.shape[1], T.shape[0])
    assert row["n_edges"] == np.count_nonzero(T)  # random weights: every edge is nonzero
    n_vertices = sum(T.shape)
    assert row["eta_tau"] == pytest.approx(np.count_nonzero(T) / (n_vertices - bipartite_components(T)))
    assert row["np"] == pytest.approx(diagram_norm(persistence_diagram(T), 2), abs=1e-12)
    assert row["conv_method"] == "toeplitz"


@pytest.mark.parametrize("case", CONV_CASES)
def test_pruned_conv_diagram_equals_unrolled_matrix(case):
    """Zero weights are absent edges: a pruned conv (a dead filter, a dead input channel, half of
    the rest) falls apart, and every component must still be spanned exactly."""
    model = conv_model(**case)
    conv = model[0]
    with torch.no_grad():
        conv.weight.mul_((torch.rand_like(conv.weight) > 0.5).float())
        conv.weight[0] = 0
        conv.weight[:, -1] = 0
    info = prunable_layers(model)[0]
    T = toeplitz(conv, info.input_size)
    for essential in (False, True):
        ours = persistence_diagrams(model, essential=essential)[["birth", "death"]].to_numpy()
        np.testing.assert_allclose(ours, persistence_diagram(T, essential=essential), atol=1e-12)
    row = neural_persistence(model).iloc[0]
    assert row["components"] == bipartite_components(T)
    assert row["mst_size"] == sum(T.shape) - bipartite_components(T)


@pytest.mark.parametrize("case", CONV_CASES)
def test_filter_variant_sums_per_filter_graphs(case):
    model = conv_model(**case)
    conv = model[0]
    info = prunable_layers(model)[0]
    summed = conv.weight.detach().double().abs().sum(dim=1, keepdim=True)  # (C_out, 1, kh, kw)
    single = nn.Conv2d(
        1, 1, conv.kernel_size, stride=conv.stride, padding=conv.padding, dilation=conv.dilation, bias=False
    )
    wmax = float(summed.max())
    nps, normalized = [], []
    for co in range(conv.out_channels):
        T = toeplitz(single, info.input_size, weight=summed[co : co + 1])
        value = diagram_norm(persistence_diagram(T, wmax=wmax), 2)
        nps.append(value)
        normalized.append(value / math.sqrt(sum(T.shape) - 1))
    row = neural_persistence(model, conv="filter").iloc[0]
    assert row["conv_method"] == "filter"
    assert row["np"] == pytest.approx(sum(nps), abs=1e-12)
    assert row["np_normalized"] == pytest.approx(np.mean(normalized), abs=1e-12)


def test_residual_network_has_one_row_per_conv():
    torch.manual_seed(0)
    model = build("resnet20", width=0.25)
    table = neural_persistence(model, conv="filter")
    expected = [n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert sorted(table["layer"]) == sorted(expected)
    assert np.isfinite(table["np"]).all()


def test_small_vgg11_toeplitz_layers_match_unrolled_matrices():
    """Each conv is followed by a batch norm, which is folded: the reference is the unrolled matrix
    of conv + eval-mode batch norm, built by running both on one-hot inputs."""
    torch.manual_seed(0)
    model = build("vgg11", width=0.0625)
    randomise_batch_norms(model)
    table = neural_persistence(model).set_index("layer")
    modules = dict(model.named_modules())
    names = list(modules)
    checked = 0
    for info in prunable_layers(model):
        if info.kind != "conv" or info.input_size[0] > 8:
            continue
        bn = modules[names[names.index(info.name) + 1]]
        assert isinstance(bn, nn.BatchNorm2d)
        T = toeplitz(modules[info.name], info.input_size, bn=bn)
        # float32 weights scaled by float32 factors: agreement to float32 precision
        assert table.loc[info.name, "np"] == pytest.approx(diagram_norm(persistence_diagram(T), 2), rel=1e-5)
        assert "folded" in table.loc[info.name, "note"]
        checked += 1
    assert checked >= 3


def gudhi_zero_dim_persistence(T: np.ndarray) -> np.ndarray:
    """Finite 0-dim persistences of the bipartite graph of ``T`` (edge filtration 1 - |t|/max|t|,
    the sub-level picture of the super-level filtration), computed by gudhi."""
    n_out, n_in = T.shape
    st = gudhi.SimplexTree()
    for v in range(n_in + n_out):
        st.insert([v], filtration=0.0)
    o, i = np.nonzero(T)
    w = np.abs(T[o, i]) / np.abs(T).max()
    for a, b, f in zip(i, n_in + o, 1.0 - w, strict=True):
        st.insert([int(a), int(b)], filtration=float(f))
    st.compute_persistence(persistence_dim_max=False)
    pairs = st.persistence_intervals_in_dimension(0)
    finite = pairs[np.isfinite(pairs[:, 1])]
    return np.sort(finite[:, 1] - finite[:, 0])


def test_folded_conv_persistence_equals_gudhi_on_conv_plus_batch_norm():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(3, 4, 3, stride=2)
    )
    model.input_shape = (2, 6, 6)
    randomise_batch_norms(model)
    row = neural_persistence(model).iloc[0]
    assert row["note"] == "batch norm 1 folded"
    T = toeplitz(model[0], (6, 6), bn=model[1])
    pers = gudhi_zero_dim_persistence(T)
    assert row["np"] == pytest.approx(np.sqrt((pers**2).sum()), rel=1e-5)
    ours = np.sort(persistence_diagrams(model).query("layer == '0'")["persistence"].to_numpy())
    np.testing.assert_allclose(ours, pers, atol=1e-6)
    # the unfolded weights give another diagram: folding is not a no-op here
    assert row["np"] != pytest.approx(diagram_norm(persistence_diagram(toeplitz(model[0], (6, 6))), 2), rel=1e-3)


# ---------------------------------------------------------------- critical compression


def fcn_sequential():
    model = nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, 100),
        nn.ReLU(),
        *[m for _ in range(4) for m in (nn.Linear(100, 100), nn.ReLU())],
        nn.Linear(100, 10),
    )
    model.input_shape = (1, 28, 28)
    return model


@pytest.mark.parametrize("make", [fcn_sequential, lambda: build("fcn_mnist")])
def test_fcn_mnist_critical_compression(make):
    table = critical_compression(make())
    per_layer = table[table["layer"] != "total"]["eta_tau"].to_numpy()
    expected = [784 * 100 / 883] + [100 * 100 / 199] * 4 + [100 * 10 / 109]
    np.testing.assert_allclose(per_layer, expected, rtol=1e-12)
    np.testing.assert_allclose(np.round(per_layer, 3), [88.788, 50.251, 50.251, 50.251, 50.251, 9.174])
    total = table[table["layer"] == "total"].iloc[0]
    weights = 784 * 100 + 4 * 100 * 100 + 100 * 10
    spanning = 883 + 4 * 199 + 109
    assert total["eta_tau"] == pytest.approx(weights / spanning, rel=1e-12)
    assert (total["n_edges"], total["mst_size"]) == (weights, spanning)
    np.testing.assert_allclose(neural_persistence(make())["eta_tau"], expected, rtol=1e-12)


def test_closed_forms_and_conv_ratio():
    assert critical_ratio_dense(784, 100) == pytest.approx(78400 / 883)
    assert critical_ratio_recurrent(50) == pytest.approx(critical_ratio_dense(50, 50))
    assert critical_ratio_recurrent(50) == pytest.approx(2500 / 99)
    model = conv_model(3, 8, 3, (10, 10), padding=1)
    m, n = 12 * 12, 10 * 10
    filt = critical_compression(model).iloc[0]
    assert filt["eta_tau"] == pytest.approx(critical_ratio_conv(m, n, 3, 3))
    assert filt["eta_tau"] == pytest.approx(n * 9 / (m + n - 1))
    toe = critical_compression(model, conv="toeplitz").iloc[0]
    assert toe["eta_tau"] == pytest.approx(3 * 8 * n * 9 / (3 * m + 8 * n - 1))
    # stride 2 leaves padded positions unused: the spanning forest is what scipy finds on T
    model = conv_model(2, 3, 3, (7, 6), padding=1, stride=2)
    T = toeplitz(model[0], (7, 6))
    toe = critical_compression(model, conv="toeplitz").iloc[0]
    assert toe["mst_size"] == sum(T.shape) - bipartite_components(T)


# ---------------------------------------------------------------- MST masks


def test_dense_mask_is_the_maximum_spanning_tree():
    rng = np.random.default_rng(4)
    W = rng.normal(size=(13, 17))
    mask = mst_mask_from_weight(W)
    assert mask.shape == W.shape and mask.sum() == 13 + 17 - 1
    assert bipartite_components(np.where(mask, 1.0, 0.0)) == 1
    # its weights are exactly the diagram's deaths (plus the w'=1 edge)
    kept = np.sort(np.abs(W[mask]) / np.abs(W).max())
    np.testing.assert_allclose(kept[:-1], persistence_diagram(W)[:, 1], atol=1e-12)
    # a tensor in gives a tensor out
    assert torch.equal(mst_mask_from_weight(torch.from_numpy(W)), torch.from_numpy(mask))


def test_masks_span_every_layer_even_when_pruned():
    torch.manual_seed(5)
    model = nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1, bias=False),
        nn.ReLU(),
        nn.Conv2d(3, 2, 3, stride=2),
        nn.Flatten(),
        nn.Linear(2 * 3 * 3, 7),
        nn.ReLU(),
        nn.Linear(7, 4),
    )
    model.input_shape = (2, 7, 7)
    with torch.no_grad():  # prune about half of every layer
        for m in model:
            if hasattr(m, "weight"):
                m.weight.mul_((torch.rand_like(m.weight) > 0.5).float())
    masks = mst_mask(model)
    infos = {i.name: i for i in prunable_layers(model)}
    for name, mask in masks.items():
        layer = dict(model.named_modules())[name]
        assert mask.dtype == torch.bool and mask.shape == layer.weight.shape
        assert not (mask & (layer.weight == 0)).any()  # pruned weights are never kept
        if isinstance(layer, nn.Conv2d):
            T = toeplitz(layer, infos[name].input_size)
            T_kept = toeplitz(layer, infos[name].input_size, weight=layer.weight * mask)
        else:
            T, T_kept = layer.weight.detach().numpy(), (layer.weight * mask).detach().numpy()
        # the kept weights connect exactly what all nonzero weights connect
        assert bipartite_components(T_kept) == bipartite_components(T), name
    # masked model keeps the dense layers' finite diagrams
    for name in ("4", "6"):
        W = dict(model.named_modules())[name].weight.detach()
        np.testing.assert_allclose(persistence_diagram(W * masks[name]), persistence_diagram(W), atol=1e-12)


# ---------------------------------------------------------------- MST / top-alpha overlap


def test_overlap_lower_bound_brute_force():
    for m, n in ((3, 4), (5, 5), (6, 2), (1, 7)):
        for alpha in range(1, m + n):
            brute = min(a + b - 1 for a in range(1, m + 1) for b in range(1, n + 1) if a * b >= alpha)
            assert overlap_lower_bound(alpha, m, n) == brute


def layer_model(W: np.ndarray):
    model = nn.Sequential(nn.Linear(W.shape[1], W.shape[0], bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.from_numpy(W))
    model.input_shape = (W.shape[1],)
    return model


@pytest.mark.parametrize("shape,pruned", [((20, 30), 0.0), ((50, 8), 0.0), ((25, 25), 0.6), ((9, 40), 0.3)])
def test_overlap_is_exact_and_above_bound(shape, pruned):
    rng = np.random.default_rng(hash(shape) % 2**32)
    W = rng.normal(size=shape)
    W[rng.random(shape) < pruned] = 0.0
    row = mst_overlap(layer_model(W)).iloc[0]
    mask = mst_mask_from_weight(W)
    alpha = int(mask.sum())
    assert row["alpha"] == alpha
    # top-alpha by magnitude (distinct weights: no ties)
    top = np.zeros(W.size, dtype=bool)
    top[np.argsort(-np.abs(W).ravel())[:alpha]] = True
    count = int((top.reshape(shape) & mask).sum())
    assert row["overlap_count"] == count
    assert row["overlap"] == pytest.approx(count / alpha)
    assert row["overlap"] >= row["bound"] > 0
    assert row["chance"] == pytest.approx(alpha / np.count_nonzero(W))


def test_overlap_bound_is_attained_by_a_block():
    # 6 inputs, 5 outputs: alpha = 10. The 12 largest weights fill a 3-output x 4-input block, so the
    # top 10 span only those 7 vertices: overlap 6 = min{a + b - 1 : a*b >= 10} (a=3, b=4)
    W = np.full((5, 6), 0.1) + np.random.default_rng(0).random((5, 6)) * 0.01
    W[:3, :4] = 10 + np.arange(12).reshape(3, 4)
    row = mst_overlap(layer_model(W)).iloc[0]
    assert row["alpha"] == 10
    assert row["overlap_count"] == row["bound_count"] == overlap_lower_bound(10, 6, 5) == 6


def test_chance_overlap_matches_monte_carlo():
    rng = np.random.default_rng(9)
    W = rng.normal(size=(12, 10))
    row = mst_overlap(layer_model(W)).iloc[0]
    mask = mst_mask_from_weight(W).ravel()
    alpha, n = int(mask.sum()), W.size
    samples = np.argsort(rng.random((20000, n)), axis=1)[:, :alpha]  # random alpha-subsets
    fractions = mask[samples].sum(axis=1) / alpha
    se = fractions.std() / math.sqrt(len(fractions))
    assert abs(fractions.mean() - row["chance"]) < 4 * se
    # tail probability: measured overlap is far above chance
    assert row["p_chance"] < 1e-6 and (fractions >= row["overlap"]).mean() == 0


def test_conv_overlap_respects_bound():
    model = conv_model(2, 3, 3, (6, 6), padding=1)
    for conv in ("toeplitz", "filter"):
        row = mst_overlap(model, conv=conv).iloc[0]
        assert 0 < row["bound"] <= row["overlap"] <= 1 and row["conv_method"] == conv


# ---------------------------------------------------------------- distances


def test_diagram_distances_match_gudhi_directly():
    torch.manual_seed(0)
    a = nn.Sequential(nn.Linear(20, 8), nn.ReLU(), nn.Linear(8, 3))
    a.input_shape = (20,)
    b = nn.Sequential(nn.Linear(20, 8), nn.ReLU(), nn.Linear(8, 3))
    b.input_shape = (20,)
    b.load_state_dict(a.state_dict())
    with torch.no_grad():  # magnitude-prune 70% of the first layer
        w = b[0].weight
        w[w.abs() < w.abs().flatten().quantile(0.7)] = 0
    same = diagram_distances(a, a)
    assert (same["bottleneck"] < 1e-300).all() and (same["wasserstein"] == 0).all()
    table = diagram_distances(a, b)
    da = persistence_diagram(a[0].weight)
    db = persistence_diagram(b[0].weight)
    # gudhi's sub-level picture of the same diagrams: (0, 1 - w')
    ga, gb = np.column_stack([1 - da[:, 0], 1 - da[:, 1]]), np.column_stack([1 - db[:, 0], 1 - db[:, 1]])
    row = table.iloc[0]
    assert row["bottleneck"] == pytest.approx(gudhi.bottleneck_distance(ga, gb), abs=1e-12)
    assert row["wasserstein"] == pytest.approx(gudhi.wasserstein.wasserstein_distance(ga, gb), abs=1e-12)
    assert row["bottleneck"] > 0 and row["wasserstein"] >= row["bottleneck"]
    assert table.iloc[1]["bottleneck"] < 1e-300  # untouched layer
    assert (row["bottleneck_method"], row["wasserstein_method"]) == ("gudhi", "pot")
    # diagrams above the size limits are skipped with NaN, not computed for hours
    skipped = diagram_distances(a, b, max_points_wasserstein=5, max_points_bottleneck=5).iloc[0]
    assert np.isnan(skipped["wasserstein"]) and skipped["wasserstein_method"] == "skipped"
    assert np.isnan(skipped["bottleneck"]) and skipped["bottleneck_method"] == "skipped"
    c = nn.Sequential(nn.Linear(20, 9))
    c.input_shape = (20,)
    with pytest.raises(NNGeoError, match="same architecture"):
        diagram_distances(a, c)


# ---------------------------------------------------------------- over training, analyses


def test_np_over_training_modules_and_state_dicts():
    def make():
        model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 2))
        model.input_shape = (6,)
        return model

    torch.manual_seed(0)
    snaps = {0: make(), 3: make()}
    table = np_over_training(snaps)
    assert list(table.columns) == ["epoch", "layer", "np", "np_normalized"]
    assert list(table["epoch"]) == [0, 0, 3, 3]
    np.testing.assert_allclose(table[table["epoch"] == 3]["np"], neural_persistence(snaps[3])["np"])
    from_state = np_over_training({e: m.state_dict() for e, m in snaps.items()}, make)
    np.testing.assert_allclose(from_state["np"], table["np"])
    with pytest.raises(NNGeoError, match="build_model"):
        np_over_training({0: snaps[0].state_dict()})
    with pytest.raises(NNGeoError):
        np_over_training({})


def test_registered_analyses():
    torch.manual_seed(0)
    model = build("fcn_mnist")
    table = get_analysis("persistence")(model, None, {"p": 1, "normalize": "network"}, Progress())
    np.testing.assert_allclose(table["np"], neural_persistence(model, p=1, normalize="network")["np"])
    cc = get_analysis("critical_compression")(model, None, {}, Progress())
    assert cc.iloc[-1]["layer"] == "total"
    ov = get_analysis("mst_overlap")(model, None, {}, Progress())
    assert (ov["overlap"] >= ov["bound"]).all()
    with pytest.raises(NNGeoError, match="no parameter"):
        get_analysis("persistence")(model, None, {"q": 2}, Progress())


@pytest.mark.slow
def test_vgg11_full_width_toeplitz_layer_matches_unrolled_matrix():
    torch.manual_seed(0)
    model = build("vgg11")
    table = neural_persistence(model).set_index("layer")
    info = [i for i in prunable_layers(model) if i.kind == "conv"][-1]  # 512 -> 512 at 2x2
    T = toeplitz(dict(model.named_modules())[info.name], info.input_size)
    assert table.loc[info.name, "np"] == pytest.approx(diagram_norm(persistence_diagram(T), 2), abs=1e-9)
