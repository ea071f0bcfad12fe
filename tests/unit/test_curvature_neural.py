"""Neural curvature and weight-only curvature of networks, against graphs built here neuron by
neuron (explicit loops over units, positions and kernel taps), GraphRicciCurvature, networkx
shortest paths and ``ot.emd2``."""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import ot
import pandas as pd
import pytest
import torch
from torch import nn

from nngeo_core.analyses import analysis_info, get_analysis
from nngeo_core.curvature import (
    calibration_set,
    curvature_scores,
    neural_curvature,
    node_curvature,
    weight_only_curvature,
)
from nngeo_core.data.base import Dataset
from nngeo_core.errors import NNGeoError
from nngeo_core.models.mlp import FeedForward, sequential
from nngeo_core.progress import Cancelled, Progress


def mlp(widths=(5, 4, 6, 3, 2), seed=0, prune=()):
    torch.manual_seed(seed)
    mods = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=False)):
        mods.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            mods.append(nn.ReLU())
    m = sequential(FeedForward, mods)
    with torch.no_grad():
        for layer, j, i in prune:  # zero weights: pruned edges
            m[2 * layer].weight[j, i] = 0.0
    m.input_shape, m.num_classes = (widths[0],), widths[-1]
    return m.double()  # float64 end to end, so the brute force sees the same activations


def small_cnn(seed=0, pool=False, groups=1):
    torch.manual_seed(seed)
    layers = [nn.Conv2d(2, 4, 3, padding=1, groups=groups), nn.ReLU()]
    if pool:
        layers.append(nn.MaxPool2d(2))  # 5x5 -> 2x2: a level of its own, joined by window edges
        layers += [nn.Conv2d(4, 3, 2, dilation=1), nn.ReLU(), nn.Flatten(), nn.Linear(3, 2)]
    else:
        layers += [nn.Conv2d(4, 3, 3, stride=2, dilation=1), nn.ReLU(), nn.Flatten(), nn.Linear(12, 2)]
    m = sequential(FeedForward, layers)
    with torch.no_grad():
        m[0].weight[1, 0, 1, 1] = 0.0  # a pruned kernel weight
    m.input_shape, m.num_classes = (2, 5, 5), 2
    return m.double()


# ---------------------------------------------------------------- explicit graphs built here


def conv_edges(conv: nn.Conv2d, in_shape):
    """(input unit, output unit, weight) of every edge of a conv layer, by plain loops."""
    cin, h, w = in_shape
    W = conv.weight.detach().double().numpy()
    cout, cin_g, kh, kw = W.shape
    (sy, sx), (py, px), (dy, dx), g = conv.stride, conv.padding, conv.dilation, conv.groups
    ho = (h + 2 * py - dy * (kh - 1) - 1) // sy + 1
    wo = (w + 2 * px - dx * (kw - 1) - 1) // sx + 1
    edges = []
    for o in range(cout):
        grp = o // (cout // g)
        for oy in range(ho):
            for ox in range(wo):
                for cl in range(cin_g):
                    c = grp * cin_g + cl
                    for ky in range(kh):
                        for kx in range(kw):
                            iy, ix = oy * sy - py + ky * dy, ox * sx - px + kx * dx
                            if 0 <= iy < h and 0 <= ix < w and W[o, cl, ky, kx] != 0:
                                edges.append(
                                    (
                                        c * h * w + iy * w + ix,
                                        o * ho * wo + oy * wo + ox,
                                        W[o, cl, ky, kx],
                                        ((o * cin_g + cl) * kh + ky) * kw + kx,
                                    )
                                )
    return edges, (cout, ho, wo)


def explicit_network(model, input_shape):
    """Walk the model's children, tracking shapes; nodes are (level, unit). Returns the DiGraph,
    a function computing every level's activations, and the edge list with kernel indices."""
    G = nx.DiGraph()
    shape = tuple(input_shape)
    level, edges = 0, []
    layer_levels = []
    for idx, mod in enumerate(model):
        if isinstance(mod, (nn.Linear, nn.Conv2d)):
            if isinstance(mod, nn.Linear):
                W = mod.weight.detach().double().numpy()
                es = [
                    (i, j, W[j, i], j * W.shape[1] + i)
                    for j in range(W.shape[0])
                    for i in range(W.shape[1])
                    if W[j, i] != 0
                ]
                out_shape = (W.shape[0],)
            else:
                es, out_shape = conv_edges(mod, shape)
            for i, j, w, kern in es:
                G.add_edge((level, i), (level + 1, j), weight=1.0 / abs(w))
                edges.append((str(idx), level, i, level + 1, j, w, kern))
            layer_levels.append((idx, level, level + 1))
            level += 1
            shape = out_shape
        elif isinstance(mod, (nn.MaxPool2d, nn.AvgPool2d)):
            # a pool is a level of its own, joined to its windows: weight 1 (max) or 1/k^2 (average)
            k = int(mod.kernel_size) if isinstance(mod.kernel_size, int) else int(mod.kernel_size[0])
            coef = 1.0 if isinstance(mod, nn.MaxPool2d) else 1.0 / (k * k)
            c, h, w = shape
            ho, wo = h // k, w // k
            for ch in range(c):
                for oy in range(ho):
                    for ox in range(wo):
                        for dy in range(k):
                            for dx in range(k):
                                i = ch * h * w + (oy * k + dy) * w + ox * k + dx
                                G.add_edge((level, i), (level + 1, ch * ho * wo + oy * wo + ox), weight=1.0 / coef)
            layer_levels.append((idx, level, level + 1))
            level += 1
            shape = (c, ho, wo)
        elif isinstance(mod, nn.Flatten):
            shape = (int(np.prod(shape)),)
    return G, edges, layer_levels


def level_activations(model, x, layer_levels):
    """Activations of each node level, by running the children one at a time (float64 models): a
    level's activation is the last value its neurons take (after the activation function)."""
    level = 0
    acts = {0: x.reshape(len(x), -1).numpy()}
    h = x
    new_level = {idx: lout for idx, _, lout in layer_levels}
    with torch.no_grad():
        for idx, mod in enumerate(model):
            h = mod(h)
            level = new_level.get(idx, level)
            acts[level] = h.reshape(len(x), -1).numpy()
    return acts


def brute_force_nc(model, x, *, alpha=0.5, normalize=True, dead_value=1.0, aggregate="min", weight_only=False):
    G, edges, layer_levels = explicit_network(model, model.input_shape)
    acts = level_activations(model, x, layer_levels) if not weight_only else None
    return brute_force_on(G, edges, acts, alpha=alpha, normalize=normalize, dead_value=dead_value, aggregate=aggregate)


def brute_force_on(G, edges, acts, *, alpha=0.5, normalize=True, dead_value=1.0, aggregate="min"):
    """Neural curvature (``acts``: level -> (N, units) activations) or weight-only curvature
    (``acts`` None) of the weight ``edges`` of the DiGraph ``G``, from the definition."""
    weight_only = acts is None
    n_in = 1 if weight_only else len(next(iter(acts.values())))
    dist = {}

    def d(a, b):
        if a not in dist:
            dist[a] = nx.single_source_dijkstra_path_length(G, a)
        return dist[a][b]

    def norm(level, n):
        a = np.abs(acts[level][n])
        lo, hi = a.min(), a.max()
        return (a - lo) / (hi - lo) if hi > lo else (a > 0).astype(float)

    def measure(node, nbrs, n, lengths):
        if not nbrs:
            return {node: 1.0}
        if weight_only:
            w = np.exp(-(np.asarray(lengths) ** 2))
            w = w / w.sum() if w.sum() > 1e-7 else np.full(len(w), 1 / len(w))
        else:
            at = [norm(lvl, n)[u] for lvl, u in nbrs]
            w = np.array([math.exp(-1.0 / t**2) if t > 0 else 0.0 for t in at])
            w = w / w.sum() if w.sum() > 0 else np.full(len(w), 1 / len(w))
        m = {z: (1 - alpha) * wi for z, wi in zip(nbrs, w, strict=False)}
        m[node] = alpha
        return m

    rows = []
    for layer, lu, i, lv, j, _w, kern in edges:  # weight edges only: pool edges carry no curvature
        u, v = (lu, i), (lv, j)
        vals = []
        for n in range(n_in):
            if not weight_only and (acts[lu][n][i] == 0 or acts[lv][n][j] == 0):
                vals.append(dead_value)
                continue
            preds = sorted(G.predecessors(u))
            succs = sorted(G.successors(v))
            mu = measure(u, preds, n, [G[p][u]["weight"] for p in preds])
            nu = measure(v, succs, n, [G[v][s]["weight"] for s in succs])
            src, dst = list(mu), list(nu)
            M = np.array([[d(a, b) for b in dst] for a in src])
            w1 = ot.emd2(np.array([mu[a] for a in src]), np.array([nu[b] for b in dst]), M)
            k = 1 - w1 / d(u, v)
            vals.append(k / (1 - alpha) if normalize else k)
        rows.append((layer, i, j, kern, min(vals) if aggregate == "min" else float(np.mean(vals))))
    return pd.DataFrame(rows, columns=["layer", "src", "dst", "kernel", "curvature"])


def compare(ours: pd.DataFrame, ref: pd.DataFrame, tol=1e-9):
    a = ours.set_index(["layer", "src", "dst"])["curvature"]
    b = ref.set_index(["layer", "src", "dst"])["curvature"]
    assert len(a) == len(b) and set(a.index) == set(b.index)
    assert np.abs(a.sort_index().to_numpy() - b.sort_index().to_numpy()).max() < tol
    k = ours.set_index(["layer", "src", "dst"])["kernel"].sort_index().to_numpy()
    assert (k == ref.set_index(["layer", "src", "dst"])["kernel"].sort_index().to_numpy()).all()


# ---------------------------------------------------------------- weight-only vs GraphRicciCurvature


def grc_on(G):
    from GraphRicciCurvature.OllivierRicci import OllivierRicci

    return OllivierRicci(G, alpha=0.5, method="OTD", proc=1, verbose="ERROR").compute_ricci_curvature_edges()


def table_as_graph_dict(df):
    return {((r.src_level, r.src), (r.dst_level, r.dst)): r.curvature for r in df.itertuples()}


def test_weight_only_equals_graphricci_on_the_mlp_digraph():
    m = mlp(prune=[(1, 2, 3), (0, 0, 0)])
    G, _, _ = explicit_network(m, m.input_shape)
    ref = grc_on(G)
    ours = table_as_graph_dict(weight_only_curvature(m, method="exact"))
    assert set(ours) == set(ref)
    assert max(abs(ours[e] - ref[e]) for e in ref) < 1e-6


@pytest.mark.parametrize("pool,groups", [(False, 1), (True, 2)])
def test_weight_only_equals_graphricci_on_conv_digraphs(pool, groups):
    m = small_cnn(pool=pool, groups=groups)
    G, edges, _ = explicit_network(m, m.input_shape)
    ref = grc_on(G)  # GRC also gives the pool edges a curvature; only weight edges carry one here
    weight_edges = {((lu, i), (lv, j)) for _, lu, i, lv, j, _, _ in edges}
    ours = table_as_graph_dict(weight_only_curvature(m, method="exact", conv_positions=None))
    assert set(ours) == weight_edges and weight_edges < set(ref) if pool else set(ours) == set(ref)
    assert max(abs(ours[e] - ref[e]) for e in ours) < 1e-6


# ---------------------------------------------------------------- neural curvature vs brute force


def inputs_with_zeros(n, d, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn((n, d), generator=g, dtype=torch.float64)
    x[:, 0] = 0.0  # a dead input unit: its edges get dead_value
    return x


@pytest.mark.parametrize("aggregate,normalize", [("min", True), ("mean", False)])
def test_neural_curvature_equals_brute_force_on_an_mlp(aggregate, normalize):
    m = mlp(prune=[(1, 2, 3)])
    x = inputs_with_zeros(4, 5)
    ours = neural_curvature(m, x, method="exact", aggregate=aggregate, normalize_idleness=normalize, dead_value=0.7)
    ref = brute_force_nc(m, x, aggregate=aggregate, normalize=normalize, dead_value=0.7)
    compare(ours, ref)
    assert (ours["curvature"] == 0.7).any()  # some edges are dead on every input


def test_neural_curvature_equals_brute_force_on_a_cnn():
    m = small_cnn()
    g = torch.Generator().manual_seed(1)
    x = torch.randn((2, 2, 5, 5), generator=g, dtype=torch.float64)
    ours = neural_curvature(m, x, method="exact", conv_positions=None)
    compare(ours, brute_force_nc(m, x))


def test_weight_only_equals_brute_force_with_idleness_normalisation():
    m = mlp(widths=(4, 5, 3), seed=3)
    ours = weight_only_curvature(m, method="exact", normalize_idleness=True, alpha=0.3)
    compare(ours, brute_force_nc(m, None, alpha=0.3, weight_only=True, normalize=True))


def test_sinkhorn_neural_curvature_is_close_to_exact():
    m = mlp(widths=(30, 40, 40, 30, 3), seed=2)
    x = torch.randn((3, 30), generator=torch.Generator().manual_seed(2)).abs() + 0.1
    exact = neural_curvature(m, x, method="exact")
    approx = neural_curvature(m, x, method="sinkhorn", device="cpu")
    diff = np.abs(exact["curvature"].to_numpy() - approx["curvature"].to_numpy())
    assert (diff > 1e-9).any()  # the large problems did go through the entropic solver
    assert diff.max() < 0.05  # normalised by 1 - alpha: twice the graph tolerance
    assert diff.mean() < 0.01


# ---------------------------------------------------------------- scores, nodes, calibration


def test_curvature_scores_are_per_weight_minima():
    m = small_cnn()
    x = torch.randn((2, 2, 5, 5), generator=torch.Generator().manual_seed(0))
    df = neural_curvature(m, x, conv_positions=2)
    scores = curvature_scores(m, x, conv_positions=2, dead_value=1.0)
    for name, mod in m.named_modules():
        if isinstance(mod, (nn.Linear, nn.Conv2d)):
            s = scores[name]
            assert s.shape == mod.weight.shape and not torch.isnan(s).any()
            rows = df[df["layer"] == name]
            mins = rows.groupby("kernel")["curvature"].min()
            flat = s.reshape(-1).double().numpy()
            assert np.allclose(flat[mins.index.to_numpy()], mins.to_numpy(), atol=1e-6)
            rest = np.setdiff1d(np.arange(flat.size), mins.index.to_numpy())
            assert np.all(flat[rest] == 1.0)  # weights without a computed edge: dead_value
    # the pruned kernel weight has no edge at all
    assert float(scores["0"][1, 0, 1, 1]) == 1.0
    assert not (df[df["layer"] == "0"]["kernel"] == np.ravel_multi_index((1, 0, 1, 1), (4, 2, 3, 3))).any()


def test_weight_only_scores_without_inputs():
    m = mlp()
    scores = curvature_scores(m, None)  # idleness normalisation on, as for neural curvature
    df = weight_only_curvature(m, normalize_idleness=True)
    first = df[df["layer"] == "0"]
    assert np.allclose(scores["0"].reshape(-1).numpy()[first["kernel"]], first["curvature"], atol=1e-6)


def test_dead_neuron_edges_get_the_dead_value():
    m = mlp(widths=(3, 4, 2))
    with torch.no_grad():
        m[0].weight.abs_()
        m[0].bias.fill_(0.1)
        m[0].bias[1] = -100.0  # hidden neuron 1 never fires, the others always do
    x = torch.rand((5, 3), generator=torch.Generator().manual_seed(0), dtype=torch.float64) + 0.1
    df = neural_curvature(m, x, dead_value=-3.0)
    at = df[((df["layer"] == "0") & (df["dst"] == 1)) | ((df["layer"] == "2") & (df["src"] == 1))]
    assert len(at) == 3 + 2 and (at["curvature"] == -3.0).all() and (at["alive"] == 0).all()
    assert (df.drop(at.index)["curvature"] != -3.0).all()


def test_node_curvature_is_the_mean_over_incident_edges():
    m = mlp()
    df = weight_only_curvature(m)
    nodes = node_curvature(df)
    for _, r in nodes.sample(5, random_state=0).iterrows():
        inc = df[
            ((df["src_level"] == r.level) & (df["src"] == r.unit))
            | ((df["dst_level"] == r.level) & (df["dst"] == r.unit))
        ]
        assert r.curvature == pytest.approx(inc["curvature"].mean())
        assert r.degree == len(inc)
    assert len(nodes) == 5 + 4 + 6 + 3 + 2


def tiny_dataset(n_classes=3):
    g = torch.Generator().manual_seed(0)
    y = torch.arange(60) % n_classes
    x = torch.randn((60, 5), generator=g) * 0.1 + torch.nn.functional.one_hot(y, 5).float() * 3
    return Dataset("tiny", x[:30], y[:30], x[30:], y[30:], (5,), n_classes)


def test_calibration_set_takes_k_correct_inputs_per_class():
    ds = tiny_dataset()
    m = mlp(widths=(5, 3))
    with torch.no_grad():  # predicts the class from the one-hot bump: always right
        m[0].weight.copy_(torch.eye(5)[:3])
        m[0].bias.zero_()
    x = calibration_set(m, ds, k=2)
    assert x.shape == (6, 5)
    truth = torch.cat([ds.y_test[(ds.x_test == xi).all(1)][:1] for xi in x])
    assert (m(x.double()).argmax(1) == truth).all() and sorted(truth.tolist()) == [0, 0, 1, 1, 2, 2]
    wrong = mlp(widths=(5, 3))
    with torch.no_grad():
        wrong[0].weight.zero_()
        wrong[0].bias.copy_(torch.tensor([0.0, 0.0, 5.0]))  # always predicts class 2
    only = calibration_set(wrong, ds, k=3)
    assert len(only) == 3 and (ds.y_test[[int(torch.nonzero((ds.x_test == xi).all(1))[0]) for xi in only]] == 2).all()
    with pytest.raises(NNGeoError, match="none of the held-out"):
        never = mlp(widths=(5, 3))
        with torch.no_grad():
            never[0].weight.zero_()
            never[0].bias.copy_(torch.tensor([0.0, 0.0, 5.0]))
        calibration_set(
            never,
            Dataset("t", ds.x_train, ds.y_train, ds.x_test[ds.y_test < 2], ds.y_test[ds.y_test < 2], (5,), 3),
            k=1,
        )


def test_analyses_are_registered_and_run():
    ds = tiny_dataset()
    m = mlp(widths=(5, 6, 3))
    df = get_analysis("curvature")(m, ds, {"k_per_class": 1}, Progress())
    assert {"layer", "src", "dst", "weight", "curvature", "kernel"} <= set(df.columns) and len(df) == 5 * 6 + 6 * 3
    dfw = get_analysis("curvature_weights")(m, None, {}, Progress())
    assert len(dfw) == len(df)
    with pytest.raises(NNGeoError, match="no parameter"):
        get_analysis("curvature")(m, ds, {"bogus": 1}, Progress())
    info = analysis_info()
    assert info["curvature"]["needs_data"] and not info["curvature_weights"]["needs_data"]


# ---------------------------------------------------------------- bad input


def test_bad_inputs_and_settings_are_refused():
    m = mlp()
    x = torch.randn(3, 5)
    with pytest.raises(NNGeoError, match="NaN"):
        neural_curvature(m, torch.full((2, 5), float("nan")))
    with pytest.raises(NNGeoError, match="no calibration inputs"):
        neural_curvature(m, torch.zeros((0, 5)))
    with pytest.raises(NNGeoError, match="shape"):
        neural_curvature(m, torch.zeros((2, 7)))
    with pytest.raises(NNGeoError, match="aggregate"):
        neural_curvature(m, x, aggregate="max")
    with pytest.raises(NNGeoError, match="method"):
        neural_curvature(m, x, method="graphricci")
    with pytest.raises(NNGeoError, match="alpha"):
        neural_curvature(m, x, alpha=-0.1)
    with pytest.raises(NNGeoError, match="conv_positions"):
        weight_only_curvature(small_cnn(), conv_positions=0)
    bad = mlp()
    with torch.no_grad():
        bad[2].weight[0, 0] = float("nan")
    with pytest.raises(NNGeoError, match="NaN"):
        weight_only_curvature(bad)


def test_cancel_stops_neural_curvature():
    with pytest.raises(Cancelled):
        neural_curvature(mlp(), torch.randn(2, 5), progress=Progress(is_cancelled=lambda: True))


# ---------------------------------------------------------------- skip connections and pooling as edges


class TinyResNet(nn.Module):
    """A stem, an identity block, a block with a strided 1x1 conv shortcut, an option-A block
    (subsample and zero-pad channels), global average pooling and a linear head; on (2, 6, 6)."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(3)
        self.stem = nn.Conv2d(2, 3, 3, padding=1)
        self.a1, self.a2 = nn.Conv2d(3, 3, 3, padding=1), nn.Conv2d(3, 3, 3, padding=1)
        self.b1, self.b2 = nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.Conv2d(4, 4, 3, padding=1)
        self.down = nn.Conv2d(3, 4, 1, stride=2)
        self.c1, self.c2 = nn.Conv2d(4, 6, 3, stride=2, padding=1), nn.Conv2d(6, 6, 3, padding=1)
        self.fc = nn.Linear(6, 2)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.6)
            self.a1.weight[0, 1, 0, 0] = 0.0  # a pruned weight: no edge
        self.input_shape, self.num_classes = (2, 6, 6), 2
        self.double()

    def stages(self, x):
        """Every node level's activation (the last value its neurons take), in level order."""
        s = torch.relu(self.stem(x))
        a = torch.relu(self.a1(s))
        A = torch.relu(self.a2(a) + s)
        b = torch.relu(self.b1(A))
        B = torch.relu(self.b2(b) + self.down(A))
        c = torch.relu(self.c1(B))
        shortcut = torch.nn.functional.pad(B[:, :, ::2, ::2], (0, 0, 0, 0, 0, 2))
        C = torch.relu(self.c2(c) + shortcut)
        pooled = torch.flatten(torch.nn.functional.adaptive_avg_pool2d(C, 1), 1)
        return [x, s, a, A, b, B, c, C, pooled, self.fc(pooled)]

    def forward(self, x):
        return self.stages(x)[-1]


def tiny_resnet_graph(m: TinyResNet):
    """The DiGraph of the definition, built by hand: conv/linear edges, identity skip edges of
    weight 1, the option-A shortcut's subsample-and-pad edges of weight 1, average pooling 1/4."""
    G = nx.DiGraph()
    edges = []
    wiring = [  # (layer, module, source level, target level, source shape)
        ("stem", m.stem, 0, 1, (2, 6, 6)),
        ("a1", m.a1, 1, 2, (3, 6, 6)),
        ("a2", m.a2, 2, 3, (3, 6, 6)),
        ("b1", m.b1, 3, 4, (3, 6, 6)),
        ("b2", m.b2, 4, 5, (4, 3, 3)),
        ("down", m.down, 3, 5, (3, 6, 6)),
        ("c1", m.c1, 5, 6, (4, 3, 3)),
        ("c2", m.c2, 6, 7, (6, 2, 2)),
    ]
    for name, conv, lu, lv, shape in wiring:
        es, _ = conv_edges(conv, shape)
        for i, j, w, kern in es:
            G.add_edge((lu, i), (lv, j), weight=1.0 / abs(w))
            edges.append((name, lu, i, lv, j, w, kern))
    for u in range(3 * 36):  # identity skip of the first block
        G.add_edge((1, u), (3, u), weight=1.0)
    for c in range(4):  # option A: B[c, 2y, 2x] -> C[c, y, x] for the 4 existing channels
        for y in range(2):
            for x in range(2):
                G.add_edge((5, c * 9 + 2 * y * 3 + 2 * x), (7, c * 4 + y * 2 + x), weight=1.0)
    for c in range(6):  # global average pooling of a 2x2 map
        for p in range(4):
            G.add_edge((7, c * 4 + p), (8, c), weight=4.0)
    W = m.fc.weight.detach().numpy()
    for j in range(2):
        for i in range(6):
            G.add_edge((8, i), (9, j), weight=1.0 / abs(W[j, i]))
            edges.append(("fc", 8, i, 9, j, W[j, i], j * 6 + i))
    return G, edges


def by_layer(df):
    return {(r.layer, int(r.src), int(r.dst)): float(r.curvature) for r in df.itertuples()}


def test_the_traced_graph_has_the_skips_pools_and_levels_of_the_definition():
    from nngeo_core.curvature.layer_graph import build_network

    m = TinyResNet()
    net, _ = build_network(m)
    assert [(lay.name, lay.src, lay.dst) for lay in net.layers] == [
        ("stem", 0, 1),
        ("a1", 1, 2),
        ("a2", 2, 3),
        ("b1", 3, 4),
        ("b2", 4, 5),
        ("down", 3, 5),
        ("c1", 5, 6),
        ("c2", 6, 7),
        ("fc", 8, 9),
    ]
    G, _ = tiny_resnet_graph(m)
    ours = {(lk.src, lk.dst): lk.M for lk in net.links}
    assert set(ours) == {(1, 3), (5, 7), (7, 8)}
    for (a, b), M in ours.items():
        rows, cols = M.nonzero()
        got = {((a, int(i)), (b, int(j))) for j, i in zip(rows, cols, strict=True)}
        want = {(u, v) for u, v in G.edges if u[0] == a and v[0] == b}
        assert got == want
        assert np.allclose(1.0 / np.abs(M.data), [G[(a, i)][(b, j)]["weight"] for j, i in zip(rows, cols, strict=True)])
    assert not net.cut and net.notes() == {}


def test_weight_only_curvature_of_a_residual_net_equals_graphricci():
    m = TinyResNet()
    G, edges = tiny_resnet_graph(m)
    ref = grc_on(G)
    want = {(layer, i, j): ref[((lu, i), (lv, j))] for layer, lu, i, lv, j, _, _ in edges}
    ours = by_layer(weight_only_curvature(m, method="exact", conv_positions=None))
    assert set(ours) == set(want)
    assert max(abs(ours[e] - want[e]) for e in want) < 1e-6


def test_neural_curvature_of_a_residual_net_equals_brute_force():
    m = TinyResNet()
    x = torch.randn((3, 2, 6, 6), generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    G, edges = tiny_resnet_graph(m)
    with torch.no_grad():
        acts = {level: t.reshape(len(x), -1).numpy() for level, t in enumerate(m.stages(x))}
    ref = brute_force_on(G, edges, acts, alpha=0.5, dead_value=0.7)
    ours = neural_curvature(m, x, method="exact", conv_positions=None, dead_value=0.7)
    a, b = by_layer(ours), by_layer(ref)
    assert set(a) == set(b)
    assert max(abs(a[e] - b[e]) for e in b) < 1e-9


def test_a_product_of_two_computed_tensors_is_named_and_cuts_the_graph():
    class Gated(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.gate, self.fc2 = nn.Linear(4, 3), nn.Linear(4, 3), nn.Linear(3, 2)
            self.input_shape, self.num_classes = (4,), 2

        def forward(self, x):
            return self.fc2(torch.relu(self.fc1(x)) * torch.sigmoid(self.gate(x)))

    df = weight_only_curvature(Gated().double(), method="exact")
    fc2 = df[df["layer"] == "fc2"]
    assert len(fc2) and fc2["note"].str.contains("`mul`").all()
    assert fc2["note"].str.contains("no predecessors").all()
    assert df[df["layer"] == "fc1"]["note"].str.contains("no successors").all()


def test_layers_restricts_the_computation_and_unknown_layers_are_named():
    m = TinyResNet()
    full = by_layer(weight_only_curvature(m, method="exact", conv_positions=2))
    some = weight_only_curvature(m, method="exact", conv_positions=2, layers="down,fc")
    assert set(some["layer"]) == {"down", "fc"}
    assert all(abs(full[e] - v) < 1e-12 for e, v in by_layer(some).items())
    with pytest.raises(NNGeoError, match="no weight layer named 'nope'.*stem"):
        weight_only_curvature(m, layers=["nope"])


def test_conv_layers_between_pools_have_neighbours_and_curvature():
    """LeNet-5's second conv sits between two max pools: with pools as edges its neurons have
    predecessors and successors, so its curvature is not the Dirac-to-Dirac 0 of a cut graph."""
    from nngeo_core.curvature.layer_graph import build_network
    from nngeo_core.models import build

    m = build("lenet5").eval()
    net, _ = build_network(m)
    conv2 = next(lay for lay in net.layers if lay.name == "3")
    assert net.into[conv2.src][0].name.startswith("max_pool") and net.out_of[conv2.dst][0].name.startswith("max_pool")
    x = torch.rand((2, 1, 28, 28), generator=torch.Generator().manual_seed(0))
    df = neural_curvature(m, x, conv_positions=1, layers="0,3")
    for _, layer in df.groupby("layer"):
        alive = layer[layer["alive"] > 0]
        assert len(alive) and (alive["curvature"].abs() > 1e-9).mean() > 0.9
