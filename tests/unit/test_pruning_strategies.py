"""Each strategy against an independent reference: torch's own pruning for magnitude, closed forms
for SynFlow, SNIP and GraSP on small networks, a loop-free-of-unfold reference for Wanda's conv
norms, the IMP schedule's round count, rewinding, and the T-IMP spanning-tree floor."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from scipy.sparse.csgraph import minimum_spanning_tree
from torch import nn
from torch.nn.utils import prune as torch_prune

from nngeo_core.data.base import Dataset
from nngeo_core.errors import NNGeoError
from nngeo_core.models.mlp import FeedForward, sequential
from nngeo_core.pruning import PruneData, compression_levels, prune, pruned_model
from nngeo_core.pruning.strategies.imp import imp_schedule
from nngeo_core.pruning.strategies.wanda import input_norms
from nngeo_core.specs import TrainSpec


def net(*layers, shape):
    m = sequential(FeedForward, layers)
    m.input_shape, m.num_classes = shape, 3
    return m


def mlp(seed=0, widths=(20, 12)):
    torch.manual_seed(seed)
    layers, fan = [nn.Flatten()], 10
    for w in widths:
        layers += [nn.Linear(fan, w), nn.ReLU()]
        fan = w
    return net(*layers, nn.Linear(fan, 3), shape=(10,))


def dataset(n=64, d=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    x = torch.randn(n, d, generator=g) + y.unsqueeze(1).float()
    return Dataset("toy", x, y, x[:16], y[:16], (d,), 3)


def linear_layers(model):
    return [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]


@pytest.mark.parametrize("s", [0.3, 0.8])
def test_magnitude_layer_scope_matches_torch_l1_unstructured(s):
    model = mlp()
    ours = prune(model, "magnitude", s, scope="layer").masks
    for n, mod in linear_layers(model):
        clone = nn.Linear(mod.in_features, mod.out_features)
        clone.weight.data.copy_(mod.weight.data)
        torch_prune.l1_unstructured(clone, "weight", amount=s)
        assert torch.equal(ours[n], clone.weight_mask.bool()), n


def test_magnitude_global_scope_matches_torch_global_unstructured():
    model = mlp(1)
    ours = prune(model, "magnitude", 0.7, scope="global").masks
    clones = []
    for _, mod in linear_layers(model):
        c = nn.Linear(mod.in_features, mod.out_features)
        c.weight.data.copy_(mod.weight.data)
        clones.append(c)
    torch_prune.global_unstructured([(c, "weight") for c in clones], torch_prune.L1Unstructured, amount=0.7)
    for (n, _), c in zip(linear_layers(model), clones, strict=False):
        assert torch.equal(ours[n], c.weight_mask.bool()), n


def test_random_depends_on_the_seed_only():
    model = mlp()
    a, b, c = (prune(model, "random", 0.5, seed=s).masks for s in (1, 1, 2))
    assert all(torch.equal(a[n], b[n]) for n in a)
    assert any(not torch.equal(a[n], c[n]) for n in a)


def test_synflow_single_round_matches_closed_form_scores():
    # two linear layers with a ReLU: on |params| and an all-ones input every pre-activation is
    # positive, so R = 1ᵀ|W2|(|W1| 1 + |b1|) + 1ᵀ|b2| and dR/dW1_ij = (sum_k |W2_ki|) * 1
    torch.manual_seed(4)
    model = net(nn.Flatten(), nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3), shape=(6,))
    w1, b1, w2 = model[1].weight.detach().abs(), model[1].bias.detach().abs(), model[3].weight.detach().abs()
    s1 = w1 * w2.sum(0).unsqueeze(1)
    s2 = w2 * (w1.sum(1) + b1).unsqueeze(0)
    masks = prune(model, "synflow", 0.5, scope="global", params={"rounds": 1}).masks
    allv = torch.cat([s1.flatten(), s2.flatten()])
    k = math.floor(0.5 * allv.numel() + 0.5)
    threshold = torch.sort(allv).values[k - 1]
    assert torch.equal(masks["1"], s1 > threshold) and torch.equal(masks["3"], s2 > threshold)


def test_synflow_many_rounds_reach_the_target_and_differ_from_one_shot():
    model = mlp(2, widths=(30, 30))
    many = prune(model, "synflow", 0.95, scope="global").masks
    assert sum(int((~m).sum()) for m in many.values()) == math.floor(0.95 * sum(m.numel() for m in many.values()) + 0.5)
    # iterative synflow avoids layer collapse: every layer keeps some weights
    assert all(bool(m.any()) for m in many.values())


def test_snip_matches_the_closed_form_gradient_of_softmax_regression():
    torch.manual_seed(5)
    model = net(nn.Flatten(), nn.Linear(10, 3), shape=(10,))
    ds = dataset()
    data = PruneData(dataset=ds)
    masks = prune(model, "snip", 0.5, scope="layer", data=data, params={"samples": 32}, seed=3).masks
    x, y = data.batch(32, 3)
    p = torch.softmax(model(x), 1).detach()
    grad = (p - F.one_hot(y, 3).float()).T @ x / len(x)  # dL/dW of mean cross-entropy
    score = (grad * model[1].weight.detach()).abs().flatten()
    k = math.floor(0.5 * score.numel() + 0.5)
    want = torch.ones(score.numel(), dtype=torch.bool)
    want[torch.sort(score, stable=True).indices[:k]] = False
    assert torch.equal(masks["1"].flatten(), want)


def test_grasp_matches_an_explicit_hessian_vector_product():
    torch.manual_seed(6)
    model = net(nn.Flatten(), nn.Linear(4, 3), shape=(4,))
    ds = dataset(d=4)
    data = PruneData(dataset=ds)
    masks = prune(
        model, "grasp", 0.5, scope="layer", data=data, params={"samples": 16, "temperature": 2.0}, seed=1
    ).masks
    x, y = data.batch(16, 1)
    b = model[1].bias.detach()

    def loss(wflat):
        return F.cross_entropy((x @ wflat.view(3, 4).T + b) / 2.0, y)

    w = model[1].weight.detach().flatten()
    g = torch.autograd.functional.jacobian(loss, w)
    h = torch.autograd.functional.hessian(loss, w)
    keep_score = w * (h @ g)  # GraSP prunes the highest -w*Hg, i.e. keeps the highest w*Hg
    k = math.floor(0.5 * w.numel() + 0.5)
    pruned = set(torch.sort(keep_score, stable=True).indices[:k].tolist())
    got = set(torch.nonzero(~masks["1"].flatten()).flatten().tolist())
    assert got == pruned


def test_wanda_dense_scores_and_row_groups():
    model = mlp(7)
    ds = dataset()
    data = PruneData(dataset=ds)
    masks = prune(model, "wanda", 0.5, scope="layer", data=data, params={"samples": 40}, seed=2).masks
    x, _ = data.batch(40, 2)
    h = torch.relu(model[1](x))  # input of layer "3"
    score = model[3].weight.detach().abs() * h.norm(dim=0)
    for r in range(score.shape[0]):
        row, m = score[r], masks["3"][r]
        assert int((~m).sum()) == 10  # 20 inputs, half of each row
        assert row[~m].max() <= row[m].min()


def test_wanda_conv_norms_match_shifted_slices():
    torch.manual_seed(8)
    conv = nn.Conv2d(4, 6, 3, stride=2, padding=1, dilation=1, groups=2)
    x = torch.randn(5, 4, 9, 9)
    norms = input_norms(conv, x)
    assert norms.shape == conv.weight.shape
    xp = F.pad(x, (1, 1, 1, 1))
    out_h = (9 + 2 - 3) // 2 + 1
    for c_in in range(4):
        for ky in range(3):
            for kx in range(3):
                patch = xp[:, c_in, ky : ky + 2 * out_h - 1 : 2, kx : kx + 2 * out_h - 1 : 2]
                group, local = divmod(c_in, 2)
                for o in range(group * 3, group * 3 + 3):  # the outputs of this input's group
                    assert torch.isclose(norms[o, local, ky, kx], patch.norm(), rtol=1e-5)


def test_imp_schedule_prunes_a_fifth_of_the_rest_per_round():
    levels = imp_schedule(0.0, 0.9, 0.2)
    assert len(levels) == math.ceil(math.log(0.1) / math.log(0.8))
    for i, s in enumerate(levels[:-1], start=1):
        assert s == pytest.approx(1 - 0.8**i)
    assert levels[-1] == 0.9
    assert imp_schedule(0.5, 0.5, 0.2) == []


def test_imp_without_training_rewinds_survivors_to_the_rewind_state():
    model = mlp(9)
    torch.manual_seed(10)
    init = {k: torch.randn_like(v) for k, v in model.state_dict().items()}
    data = PruneData(dataset=dataset(), train=TrainSpec(epochs=1, batch_size=16), rewind={0: init})
    result = prune(model, "imp", 0.6, data=data, params={"round_epochs": 0, "rewind_epoch": 0})
    assert result.info["rounds"] == math.ceil(math.log(0.4) / math.log(0.8))
    for n, m in result.masks.items():
        assert torch.equal(result.state_dict[f"{n}.weight"], init[f"{n}.weight"] * m)
        assert torch.equal(result.state_dict[f"{n}.bias"], init[f"{n}.bias"])


def test_imp_reports_a_missing_rewind_state():
    with pytest.raises(NNGeoError, match="rewinds to epoch 3"):
        prune(
            mlp(), "imp", 0.5, data=PruneData(dataset=dataset(), train=TrainSpec(epochs=1)), params={"rewind_epoch": 3}
        )
    with pytest.raises(NNGeoError, match="needs data"):
        prune(mlp(), "imp", 0.5)


def scipy_maximum_spanning_tree(w: torch.Tensor) -> torch.Tensor:
    """MST of |w| on the bipartite graph (outputs, inputs), by scipy on reversed positive weights."""
    a = w.detach().abs().numpy().astype(np.float64)
    out_n, in_n = a.shape
    rev = (a.max() + 1.0) - a  # order-reversing, strictly positive
    adj = sp.lil_matrix((out_n + in_n, out_n + in_n))
    adj[:out_n, out_n:] = rev
    tree = minimum_spanning_tree(adj.tocsr()).tocoo()
    mask = torch.zeros(a.shape, dtype=torch.bool)
    for i, j in zip(tree.row, tree.col, strict=False):
        r, c = (i, j - out_n) if i < out_n else (j, i - out_n)
        mask[r, c] = True
    return mask


def test_timp_keeps_every_mst_edge_at_every_level():
    model = mlp(11, widths=(12, 10))
    data = PruneData(dataset=dataset(), train=TrainSpec(epochs=1, batch_size=16), rewind={})
    masks, current = None, model
    for level in (0.3, 0.5, 0.6):  # 0.6 is the last layer's floor (18 of 30 prunable)
        # rate 0.5 covers each step in one round, so the tree of the level's input weights is the one kept
        result = prune(
            current,
            "timp",
            level,
            masks=masks,
            data=data,
            scope="layer",
            params={"rewind_epoch": None, "round_epochs": 1, "rate": 0.5},
        )
        plain = {
            n: (m.weight_orig * m.weight_mask if hasattr(m, "weight_orig") else m.weight)
            for n, m in current.named_modules()
            if isinstance(m, nn.Linear)
        }
        for n, w in plain.items():
            tree = scipy_maximum_spanning_tree(w)
            assert int(tree.sum()) == sum(w.shape) - 1
            assert bool(result.masks[n][tree].all()), (level, n)
        masks, current = result.masks, pruned_model(current, result.masks, result.state_dict)


def test_timp_refuses_below_the_mst_floor():
    model = mlp(12, widths=(12, 10))  # last layer 10 -> 3: 30 weights, tree of 12
    data = PruneData(dataset=dataset(), train=TrainSpec(epochs=1), rewind={})
    with pytest.raises(NNGeoError, match="maximum spanning tree keeps 12 of 30 weights"):
        prune(model, "timp", 0.65, scope="layer", data=data, params={"rewind_epoch": None})
    total = 10 * 12 + 12 * 10 + 10 * 3
    tree = (10 + 12 - 1) + (12 + 10 - 1) + (10 + 3 - 1)
    with pytest.raises(NNGeoError, match=f"keep {tree} of {total}"):
        prune(model, "timp", 1 - tree / total + 0.02, scope="global", data=data, params={"rewind_epoch": None})


def test_compression_levels_are_log_spaced():
    assert compression_levels(4) == pytest.approx((0.5, 0.75, 0.875, 0.9375))
    assert compression_levels(3, base=10, start=1) == pytest.approx((0.0, 0.9, 0.99))
    with pytest.raises(NNGeoError):
        compression_levels(0)


def test_nonfinite_weights_and_bad_masks_are_refused():
    model = mlp()
    with torch.no_grad():
        model[1].weight[0, 0] = float("nan")
    with pytest.raises(NNGeoError, match="NaN/inf weights"):
        prune(model, "magnitude", 0.5)
    good = mlp()
    with pytest.raises(NNGeoError, match="shape"):
        prune(good, "magnitude", 0.5, masks={"1": torch.ones(2, 2, dtype=torch.bool)})
    with pytest.raises(NNGeoError, match="not among the layers"):
        prune(good, "magnitude", 0.5, masks={"5": torch.ones(3, 12, dtype=torch.bool)}, exclude_last=True)
    with pytest.raises(NNGeoError, match="unknown pruning strategy"):
        prune(good, "nope", 0.5)
    with pytest.raises(NNGeoError, match="unknown pruning scope"):
        prune(good, "magnitude", 0.5, scope="row")
