"""The "tan2026" curvature preset (the neural-curvature authors' code, rule by rule) against a brute
force written here from those rules: a networkx DiGraph of the neurons, networkx shortest paths for
the costs, ``ot.emd2`` per edge and per input, and the masses, fallbacks, dead rule and remap as
plain loops; the preset parameter rules; the strategies' tie rule."""

from __future__ import annotations

import networkx as nx
import numpy as np
import ot
import pytest
import torch
from torch import nn

from nngeo_core.curvature import neural_curvature
from nngeo_core.curvature.analyses import curvature_analysis
from nngeo_core.curvature.neural import PRESETS, preset_settings
from nngeo_core.data.base import Dataset
from nngeo_core.errors import NNGeoError
from nngeo_core.models.mlp import FeedForward, sequential
from nngeo_core.progress import Progress
from nngeo_core.pruning.strategies import curvature as strat
from nngeo_core.pruning.strategies.base import PruneData, PruneSettings, select_masks
from nngeo_core.pruning.strategies.registry import get_strategy, resolve_params

ALPHA = 0.9


# ---------------------------------------------------------------- small networks and their graphs


def relu_mlp() -> nn.Module:
    """6-5-4-3 ReLU MLP, float32 (as the authors' networks)."""
    torch.manual_seed(0)
    m = sequential(FeedForward, [nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3)])
    m.input_shape, m.num_classes = (6,), 3
    return m.eval()


def mlp_inputs() -> torch.Tensor:
    return torch.randn((4, 6), generator=torch.Generator().manual_seed(1))


def strided_cnn() -> nn.Module:
    """conv 1->2 k3 s2 on 1x7x7, ReLU, conv 2->3 k2, ReLU, flatten, linear 12->3 (no pooling)."""
    torch.manual_seed(5)
    m = sequential(
        FeedForward,
        [nn.Conv2d(1, 2, 3, stride=2), nn.ReLU(), nn.Conv2d(2, 3, 2), nn.ReLU(), nn.Flatten(), nn.Linear(12, 3)],
    )
    m.input_shape, m.num_classes = (1, 7, 7), 3
    return m.eval()


def cnn_inputs() -> torch.Tensor:
    g = torch.Generator().manual_seed(2)
    x = torch.rand((3, 1, 7, 7), generator=g)
    x[0, 0, 0, 0] = 20.0  # one bright pixel: the other patches' masses sum below 1e-7 (uniform fallback)
    x[1, 0, 6, 6] = 20.0
    x[2, 0, 4:, 4:] = 0.0  # a dark patch: its conv-1 unit has no live predecessor (a Dirac)
    return x


def dense_edges(lin: nn.Linear, src: int, dst: int):
    W = lin.weight.detach().double().numpy()
    return [((src, i), (dst, j), W[j, i]) for j in range(W.shape[0]) for i in range(W.shape[1]) if W[j, i] != 0]


def conv_edges(conv: nn.Conv2d, in_shape, src: int, dst: int):
    """(input unit, output unit, weight, flat kernel index) of a stride-s, unpadded conv, by loops."""
    cin, h, w = in_shape
    W = conv.weight.detach().double().numpy()
    cout, _, kh, kw = W.shape
    s = conv.stride[0]
    ho, wo = (h - kh) // s + 1, (w - kw) // s + 1
    out = []
    for o in range(cout):
        for oy in range(ho):
            for ox in range(wo):
                for c in range(cin):
                    for ky in range(kh):
                        for kx in range(kw):
                            u = c * h * w + (oy * s + ky) * w + (ox * s + kx)
                            v = o * ho * wo + oy * wo + ox
                            if W[o, c, ky, kx] != 0:
                                out.append(((src, u), (dst, v), W[o, c, ky, kx]))
    return out


def graph_of(layers_edges):
    G = nx.DiGraph()
    for edges in layers_edges:
        for a, b, w in edges:
            G.add_edge(a, b, weight=1.0 / abs(float(w)))
    return G


def level_acts(model, x, taps):
    """Activations of every level: the input, the outputs of the modules at ``taps`` (post-ReLU),
    and the logits; one forward pass on the whole batch, as the curvature's trace does."""
    seen = {}
    hooks = [model[i].register_forward_hook(lambda m, a, o, i=i: seen.__setitem__(i, o.detach())) for i in taps]
    with torch.no_grad():
        out = model(x)
    for h in hooks:
        h.remove()
    return [x.reshape(len(x), -1)] + [seen[i].reshape(len(x), -1) for i in taps] + [out]


# ---------------------------------------------------------------- the authors' rules, written plainly


def f32_norm(act: np.ndarray) -> np.ndarray:
    a = np.abs(act.astype(np.float32))
    lo, hi = a.min(), a.max()
    return ((a - lo) / (hi - lo)).astype(np.float32)


def mass(nbrs, node, norm, alpha):
    """{point: mass}: exp(-(1/ã)^2) in float32 over live neighbours (ã > 0), uniform when the
    float32 total is at most 1e-7, a Dirac on ``node`` when none is live."""
    live = [q for q in nbrs if norm[q] > 0]
    terms = {}
    for q in live:
        t = np.float32(np.float32(1.0) / norm[q])
        terms[q] = np.float32(np.exp(-float(np.float32(t * t))))  # exp and the sum in float64, rounded to float32
    total = np.float32(sum(float(t) for t in terms.values()))
    if total <= np.float32(1e-7):
        share = {q: np.float32((1.0 - alpha) / len(live)) for q in live}
    else:
        share = {q: np.float32(np.float32(1.0 - alpha) * t) / total for q, t in terms.items()}
    share = {q: float(m) for q, m in share.items() if m > 0}
    if not share:
        return {node: 1.0}
    return {**share, node: alpha}


def brute_tan2026(G, layer_edges, norms, hidden, first_last, alpha=ALPHA):
    """Per edge (u, v): min over inputs of the authors' curvature (dead = 1, then 2.0 on hidden edges)."""
    dist = dict(nx.all_pairs_dijkstra_path_length(G))
    out = {}
    for u, v, _ in layer_edges:
        values = []
        for norm in norms:  # one dict {node: ã} per input
            dead = (u[0] in hidden and norm[u] <= 0) or (v[0] in hidden and norm[v] <= 0)
            if dead:
                k = 1.0
            else:
                mu = mass(list(G.predecessors(u)), u, norm, alpha) if G.in_degree(u) else {u: 1.0}
                nu = mass(list(G.successors(v)), v, norm, alpha) if G.out_degree(v) else {v: 1.0}
                xs, ys = list(mu), list(nu)
                M = np.array([[dist[a].get(b, np.inf) for b in ys] for a in xs])
                w1 = ot.emd2(np.array([mu[a] for a in xs]), np.array([nu[b] for b in ys]), M)
                k = (1.0 - w1 / dist[u][v]) / (1.0 - alpha)
            if not first_last and abs(k - 1.0) < 1e-6:
                k = 2.0
            values.append(k)
        out[(u[1], v[1])] = min(values)
    return out


def norms_per_input(acts):
    n = len(acts[0])
    return [
        {(lvl, j): a for lvl, act in enumerate(acts) for j, a in enumerate(f32_norm(act[i].numpy()))} for i in range(n)
    ]


def table_dict(df, layer):
    rows = df[df["layer"] == layer]
    return {(int(s), int(d)): float(c) for s, d, c in zip(rows["src"], rows["dst"], rows["curvature"], strict=True)}


def assert_same(ours: dict, ref: dict, tol=1e-9):
    assert set(ours) == set(ref)
    worst = max(abs(ours[k] - ref[k]) for k in ref)
    assert worst <= tol, worst


# ---------------------------------------------------------------- the preset equals the brute force


def test_tan2026_equals_the_authors_rules_on_a_relu_mlp():
    m, x = relu_mlp(), mlp_inputs()
    acts = level_acts(m, x, taps=(1, 3))
    layers = [dense_edges(m[0], 0, 1), dense_edges(m[2], 1, 2), dense_edges(m[4], 2, 3)]
    G = graph_of(layers)
    norms = norms_per_input(acts)
    assert all((a.abs().amax(1) > a.abs().amin(1)).all() for a in acts)  # no constant level (0/0 in theirs)
    assert any((a == 0).any() for a in acts[1:3])  # ReLU-dead hidden units on some input
    df = neural_curvature(m, x, preset="tan2026")
    for k, name in enumerate(("0", "2", "4")):
        ref = brute_tan2026(G, layers[k], norms, hidden={1, 2}, first_last=k in (0, 2))
        assert_same(table_dict(df, name), ref)
    hidden = table_dict(df, "2")
    assert 2.0 in hidden.values()  # dead hidden edges remapped so that they rank first
    first = df[df["layer"] == "0"]
    assert (first["alive"] < len(x)).any() and not (first["curvature"] == 2.0).any()  # dead there: 1, kept


def test_tan2026_equals_the_authors_rules_on_a_strided_cnn():
    m, x = strided_cnn(), cnn_inputs()
    acts = level_acts(m, x, taps=(1, 3))
    layers = [
        conv_edges(m[0], (1, 7, 7), 0, 1),
        conv_edges(m[2], (2, 3, 3), 1, 2),
        dense_edges(m[5], 2, 3),
    ]
    G = graph_of(layers)
    norms = norms_per_input(acts)
    assert all((a.abs().amax(1) > a.abs().amin(1)).all() for a in acts)
    df = neural_curvature(m, x, preset="tan2026")
    for k, name in enumerate(("0", "2", "5")):
        ref = brute_tan2026(G, layers[k], norms, hidden={1, 2}, first_last=k in (0, 2))
        assert_same(table_dict(df, name), ref)
    # every output position is computed (conv_positions=None): 2 x 9 positions x 9 taps
    assert (df["layer"] == "0").sum() == 162
    # both fallbacks are reached on conv-2 sources (conv-1 units): every pixel but the bright one has
    # ã < 0.1, so exp(-(1/ã)^2) < 1e-43 and a patch without it sums below 1e-7 (uniform); the dark
    # patch of input 2 has no live pixel (a Dirac)
    assert max(norms[0][(0, j)] for j in range(1, 49)) < 0.1
    assert all(norms[2][(0, 7 * y + xx)] == 0 for y in range(4, 7) for xx in range(4, 7))


def test_the_default_preset_is_nngeos_own_settings():
    m, x = relu_mlp(), mlp_inputs()
    a = neural_curvature(m, x, method="exact")
    b = neural_curvature(m, x, preset="nngeo", method="exact", alpha=0.5, conv_positions=4, dead_value=1.0)
    assert a["curvature"].tolist() == b["curvature"].tolist()
    c = neural_curvature(m, x, preset="tan2026")
    assert not np.allclose(a["curvature"], c["curvature"])


# ---------------------------------------------------------------- how settings combine with a preset


def test_a_given_setting_wins_over_the_preset_and_the_rest_come_from_it():
    s = preset_settings("tan2026", alpha=0.5, conv_positions=None, method=None)
    assert s["alpha"] == 0.5 and s["conv_positions"] is None and s["method"] == "exact"
    assert s["masses"] == "float32" and s["remap_one"] == 2.0
    assert preset_settings("tan2026", conv_positions=4)["conv_positions"] == 4
    m, x = relu_mlp(), mlp_inputs()
    mixed = neural_curvature(m, x, preset="tan2026", alpha=0.5)
    # tan2026 with alpha 0.5 is the brute force with alpha 0.5
    acts = level_acts(m, x, taps=(1, 3))
    layers = [dense_edges(m[0], 0, 1), dense_edges(m[2], 1, 2), dense_edges(m[4], 2, 3)]
    ref = brute_tan2026(graph_of(layers), layers[1], norms_per_input(acts), hidden={1, 2}, first_last=False, alpha=0.5)
    assert_same(table_dict(mixed, "2"), ref)
    # and nngeo with tan2026's settings given one by one is tan2026
    spelled = neural_curvature(m, x, **{k: v for k, v in PRESETS["tan2026"].items() if k != "tie_break"})
    assert spelled["curvature"].tolist() == neural_curvature(m, x, preset="tan2026")["curvature"].tolist()


def test_the_analysis_takes_the_preset_and_zero_positions_means_every_one():
    m = strided_cnn()
    x = cnn_inputs()
    with torch.no_grad():
        y = m(x).argmax(1)
    ds = Dataset("t", x, y, x, y, (1, 7, 7), 3)
    table = curvature_analysis(m, ds, {"preset": "tan2026", "conv_positions": 1}, Progress())
    assert (table["layer"] == "0").sum() == 2 * 9  # one position, given explicitly, wins
    full = curvature_analysis(m, ds, {"preset": "nngeo", "conv_positions": 0, "method": "exact"}, Progress())
    assert (full["layer"] == "0").sum() == 162


def test_bad_presets_and_settings_are_one_line_errors():
    m, x = relu_mlp(), mlp_inputs()
    for call in (
        lambda: neural_curvature(m, x, preset="tan2025"),
        lambda: neural_curvature(m, x, preset="tan2026", masses="float16"),
        lambda: neural_curvature(m, x, dead_rule="sometimes"),
        lambda: preset_settings("nngeo", idleness=0.3),
        lambda: resolve_params("curvature", {"preset": "paper"}),
        lambda: resolve_params("curvature_neg", {"tie_break": "random"}),
    ):
        with pytest.raises(NNGeoError) as err:
            call()
        assert "\n" not in str(err.value)
    with pytest.raises(NNGeoError, match="unknown curvature preset 'tan2025'"):
        neural_curvature(m, x, preset="tan2025")


# ---------------------------------------------------------------- the strategies' ranking


def tie_model():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(1, 2, 2), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 2 * 2, 3)).eval()
    m.input_shape = (1, 3, 3)
    return m


def tied_scores():
    """Conv and dense weights with equal curvature (2.0: dead) and a few distinct values."""
    conv = torch.full((2, 1, 2, 2), 2.0)
    conv[0, 0, 0, 0] = 0.3
    dense = torch.full((3, 8), 2.0)
    dense[1, 2] = -0.4
    return {"0": conv, "3": dense}


def test_fc_first_ranks_dense_edges_before_conv_weights_within_ties():
    m = tie_model()
    scores = tied_scores()
    ranks = strat.fc_first_ranks(m, scores, descending=True)
    flat = torch.cat([ranks["0"].reshape(-1), ranks["3"].reshape(-1)])
    assert sorted(flat.tolist()) == list(range(flat.numel()))  # a total order
    # the 2.0 block: the 23 dense edges first, by (input unit, output unit), then the 7 conv weights
    dense_tied = [(i, j) for i in range(8) for j in range(3) if (j, i) != (1, 2)]
    assert [ranks["3"][j, i].item() for i, j in dense_tied] == list(range(23))
    conv_order = [(o, c, a, b) for c in range(1) for a in range(2) for b in range(2) for o in range(2)]
    conv_tied = [k for k in conv_order if k != (0, 0, 0, 0)]
    assert [ranks["0"][k].item() for k in conv_tied] == list(range(23, 30))
    assert ranks["0"][0, 0, 0, 0] == 30 and ranks["3"][1, 2] == 31  # then 0.3, then -0.4
    # pruning 25 of 32: every dead dense edge and the first two dead conv weights
    masks = {n: torch.ones_like(s, dtype=torch.bool) for n, s in scores.items()}
    kept = select_masks(ranks, masks, 25 / 32, "global", strategy="curvature")
    assert int((~kept["3"]).sum()) == 23 and int((~kept["0"]).sum()) == 2
    assert not kept["0"][1, 0, 0, 0] and not kept["0"][0, 0, 0, 1]  # conv order: (c, tap row, tap col, o)
    # the ablation (lowest first): -0.4 and 0.3, then the tie block again dense first
    low = strat.fc_first_ranks(m, scores, descending=False)
    assert low["3"][1, 2] == 0 and low["0"][0, 0, 0, 0] == 1 and low["3"][0, 0] == 2
    # the default tie rule is by position: conv weights (first layer) before dense ones
    default = select_masks({n: -s for n, s in scores.items()}, masks, 3 / 32, "global", strategy="curvature")
    assert int((~default["0"]).sum()) == 3


@pytest.mark.parametrize("name", ["curvature", "curvature_neg"])
def test_the_strategy_ranks_ties_by_the_preset_and_fingerprints_every_setting(monkeypatch, name):
    m = tie_model()
    x = torch.rand((3, 1, 3, 3))
    ds = Dataset("t", x, torch.zeros(3, dtype=torch.long), x, torch.zeros(3, dtype=torch.long), (1, 3, 3), 3)
    calls = []

    def fake_scores(model, inputs, **kw):
        calls.append(kw)
        return tied_scores()

    monkeypatch.setattr(strat, "curvature_scores", fake_scores)
    monkeypatch.setattr(strat, "calibration_set", lambda model, dataset, k, split: x)
    strat._SCORES.clear()
    masks = {"0": torch.ones(2, 1, 2, 2, dtype=torch.bool), "3": torch.ones(3, 8, dtype=torch.bool)}
    fn = get_strategy(name)

    def run(params, sparsity=25 / 32):
        settings = PruneSettings(sparsity, "global", ("0", "3"), 0, resolve_params(name, params))
        return fn(m, masks, PruneData(dataset=ds), settings).masks

    tan = run({"preset": "tan2026"})
    assert calls[-1]["alpha"] == 0.9 and calls[-1]["conv_positions"] is None and calls[-1]["masses"] == "float32"
    if name == "curvature":
        assert int((~tan["3"]).sum()) == 23 and int((~tan["0"]).sum()) == 2
    else:  # lowest first: -0.4, 0.3, then the 23 dead dense edges
        assert int((~tan["3"]).sum()) == 24 and int((~tan["0"]).sum()) == 1
    nngeo = run({})
    # position ties: the 7 dead conv weights (the first layer) go before the dense edges
    assert int((~nngeo["0"]).sum()) == (7 if name == "curvature" else 8)
    assert calls[-1]["alpha"] == 0.5 and calls[-1]["conv_positions"] == 4
    n_calls = len(calls)
    run({"preset": "tan2026"})  # cached
    assert len(calls) == n_calls
    for changed in (
        {"alpha": 0.5},
        {"method": "sinkhorn"},
        {"dead_value": 0.0},
        {"conv_positions": 4},
        {"normalize_idleness": False},
        {"masses": "stable"},
        {"dead_rule": "raw"},
        {"remap_one": 1.0},
        {"tie_break": "position"},
        {"aggregate": "mean"},
    ):
        run({"preset": "tan2026", **changed})
        assert len(calls) == n_calls + 1, changed  # a new fingerprint: computed again
        n_calls += 1
