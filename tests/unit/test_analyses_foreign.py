"""Weight-based analyses on architectures from outside the zoo: torchvision's resnet18 at 3x32x32
and a small custom CNN, through the registry functions the worker calls. References: conv + batch
norm run in eval mode by torch, standalone convs built from brute-force folded weights (the conv
convention itself is checked against unrolled matrices and gudhi in test_topology_models), closed
forms for eta_tau, and the model's own module list for "every layer exactly once"."""

from __future__ import annotations

import copy
import re

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from nngeo_core.analyses import get_analysis
from nngeo_core.curvature import weight_only_curvature
from nngeo_core.models.layers import analysis_layers, fold_batchnorm
from nngeo_core.progress import Progress
from nngeo_core.testing.nets import custom_cnn
from nngeo_core.topology import critical_ratio_conv, neural_persistence

WEIGHT_ANALYSES = ("persistence", "critical_compression", "mst_overlap")


def randomise_batch_norms(model: nn.Module, seed: int = 1) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(torch.randn(c, generator=gen))
                m.running_var.copy_(torch.rand(c, generator=gen) * 3 + 0.1)
                m.weight.copy_(torch.randn(c, generator=gen))
                m.bias.copy_(torch.randn(c, generator=gen))


def resnet18() -> nn.Module:
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10)
    randomise_batch_norms(model)
    return model


def run(name: str, model: nn.Module, params: dict) -> pd.DataFrame:
    return get_analysis(name)(model, None, params, Progress())


def brute_folded_weight(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> torch.Tensor:
    """The linear part of x -> bn(conv(x)) (eval mode) as a conv weight, read off one-hot inputs
    with the kernel's own size (each one-hot input at a kernel tap gives that tap's weights)."""
    c_in, (kh, kw) = conv.in_channels, conv.kernel_size
    eye = torch.eye(c_in * kh * kw, dtype=torch.float64).reshape(-1, c_in, kh, kw)
    norm = copy.deepcopy(bn).double().eval()
    w = conv.weight.detach().double()
    with torch.no_grad():
        out = norm(F.conv2d(eye, w)) - norm(torch.zeros(1, w.shape[0], 1, 1, dtype=torch.float64))
    return out.reshape(c_in, kh, kw, -1).permute(3, 0, 1, 2)  # (C_out, C_in, kh, kw)


# ---------------------------------------------------------------- folding


def test_folded_conv_equals_conv_plus_batch_norm_in_eval_mode():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 5, 3, padding=1, stride=2), nn.BatchNorm2d(5), nn.ReLU())
    model.input_shape = (3, 9, 9)
    randomise_batch_norms(model)
    plan = analysis_layers(model)
    assert plan.folded == {"1": "0"} and plan.structure == "fx"
    (layer,) = plan.layers
    assert layer.note == "batch norm 1 folded"
    np.testing.assert_allclose(layer.weight.double(), brute_folded_weight(model[0], model[1]), rtol=1e-5, atol=1e-6)
    x = torch.randn(4, 3, 9, 9)
    folded, _ = fold_batchnorm(model)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model(x), rtol=1e-5, atol=1e-5)
    assert isinstance(folded[1], nn.Identity) and isinstance(model[1], nn.BatchNorm2d)  # the original is untouched


def test_a_conv_whose_output_also_feeds_a_skip_is_not_folded():
    class Shared(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(2, 2, 3, padding=1)
            self.bn = nn.BatchNorm2d(2)
            self.input_shape = (2, 5, 5)

        def forward(self, x):
            y = self.conv(x)
            return self.bn(y) + y  # the conv output is read twice: folding would change the sum

    plan = analysis_layers(Shared())
    assert plan.folded == {} and plan.layers[0].note == ""
    assert [(s.name, s.reason) for s in plan.skipped] == [
        ("bn", "BatchNorm2d not directly after a conv: not folded, not a weight layer")
    ]


def test_untraceable_model_falls_back_to_forward_hooks():
    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(2, 3, 3)
            self.bn = nn.BatchNorm2d(3)
            self.input_shape = (2, 6, 6)

        def forward(self, x):
            if x.sum() > 1e9:  # data-dependent control flow: torch.fx cannot trace it
                return x
            return self.bn(self.conv(x))

    model = Branchy()
    randomise_batch_norms(model)
    plan = analysis_layers(model)
    assert plan.structure.startswith("hooks (fx trace failed")
    assert plan.layers[0].note == "batch norm bn folded (found by forward hooks)"
    np.testing.assert_allclose(
        plan.layers[0].weight.double(), brute_folded_weight(model.conv, model.bn), rtol=1e-5, atol=1e-6
    )


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
def test_unsupported_modules_get_a_row_with_their_reason():
    class Mixed(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(4, 4, 3, padding=1)
            self.depthwise = nn.Conv2d(4, 4, 3, padding=1, groups=4)
            self.grouped = nn.Conv2d(4, 4, 3, padding=1, groups=2)
            self.even = nn.Conv2d(4, 4, 2, padding="same")  # asymmetric padding: no layer graph
            self.conv1d = nn.Conv1d(4, 4, 3)
            self.attn = nn.MultiheadAttention(4, 1, batch_first=True)
            self.head = nn.Linear(4 * 25, 3)
            self.norm = nn.BatchNorm1d(3)
            self.unused = nn.Linear(3, 3)
            self.input_shape = (4, 5, 5)

        def forward(self, x):
            x = self.even(self.grouped(self.depthwise(self.conv(x))))
            seq = x.flatten(2).transpose(1, 2)  # (B, 25, 4)
            seq = self.attn(seq, seq, seq)[0]
            seq = self.conv1d(seq.transpose(1, 2))
            return self.norm(self.head(x.flatten(1)))

    model = Mixed()
    table = run("persistence", model, {})
    rows = table.set_index("layer")
    assert list(table["layer"]) == ["conv", "depthwise", "grouped", "head", "even", "conv1d", "attn", "norm", "unused"]
    assert rows.loc["depthwise", "note"] == "depthwise conv: groups=4, the graph is 4 disjoint blocks"
    assert rows.loc["grouped", "note"] == "grouped conv: groups=2, the graph is 2 disjoint blocks"
    reasons = rows.loc[rows["kind"] == "skipped", "note"].to_dict()
    assert "asymmetric padding" in reasons["even"]
    assert reasons["conv1d"] == "Conv1d: only Linear and Conv2d layers have layer graphs here"
    assert reasons["attn"] == "attention: not supported (with its projections)"  # out_proj is part of it
    assert reasons["norm"] == "BatchNorm1d not directly after a conv: not folded, not a weight layer"
    assert reasons["unused"] == "not used by the forward pass"
    assert rows.loc[list(reasons), "np"].isna().all() and np.isfinite(rows.loc[["conv", "head"], "np"]).all()
    assert table.attrs["network_np"] == pytest.approx(rows["np"].sum())  # skipped rows do not count
    cc = run("critical_compression", model, {})
    assert cc["layer"].iloc[-1] == "total" and "attn" in set(cc["layer"])


# ---------------------------------------------------------------- the custom CNN (default run)


def test_custom_cnn_through_the_registry_matches_the_layers_on_their_own():
    """Each layer's values equal those of the same layer analysed alone at its own input size
    (the pooled size for the second conv, the flattened vector for the linear layer)."""
    model = custom_cnn(16)
    shape = (3, 16, 16)
    alone = {
        "0": (nn.Sequential(model[0]), (3, 16, 16)),
        "3": (nn.Sequential(model[3]), (4, 8, 8)),
        "6": (nn.Sequential(model[6]), (384,)),
    }
    for name in WEIGHT_ANALYSES:
        table = run(name, model, {"input_shape": shape}).set_index("layer")
        assert [layer for layer in table.index if layer != "total"] == ["0", "3", "6"]
        assert (table["note"] == "").all()
        for layer, (single, single_shape) in alone.items():
            ref = run(name, single, {"input_shape": single_shape}).iloc[0]
            row = table.loc[layer]
            for col in ("np", "eta_tau", "overlap", "alpha", "n_edges"):
                if col in ref.index:
                    assert row[col] == pytest.approx(ref[col], rel=1e-12), (name, layer, col)
    cc = run("critical_compression", model, {"input_shape": shape}).set_index("layer")
    # the paper's per-filter closed form: padded 18x18 inputs, 16x16 outputs, 3x3 kernel, 4 filters
    assert cc.loc["0", "eta_tau"] == pytest.approx(critical_ratio_conv(18 * 18, 16 * 16, 3, 3))


def test_weight_curvature_of_a_batch_norm_cnn_equals_the_cnn_with_folded_weights():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 5 * 5, 4)
    )
    model.input_shape = (2, 5, 5)
    randomise_batch_norms(model)
    reference = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(75, 4))
    reference.input_shape = (2, 5, 5)
    with torch.no_grad():
        reference[0].weight.copy_(brute_folded_weight(model[0], model[1]).float())
        reference[3].weight.copy_(model[4].weight)
    ours = run("curvature_weights", model, {"method": "exact"})
    ref = weight_only_curvature(reference, method="exact")
    ref["layer"] = ref["layer"].map({"0": "0", "3": "4"})
    assert set(ours.loc[ours["layer"] == "0", "note"]) == {"batch norm 1 folded"}
    merged = ours.merge(ref, on=["layer", "src", "dst"], suffixes=("", "_ref"), validate="one_to_one")
    assert len(merged) == len(ours) == len(ref)
    np.testing.assert_allclose(merged["weight"], merged["weight_ref"], rtol=1e-5)
    np.testing.assert_allclose(merged["curvature"], merged["curvature_ref"], rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- torchvision resnet18


def _batch_norm_names(note) -> list[str]:
    return re.findall(r"batch norm (\S+) folded", note) if isinstance(note, str) else []


def check_every_layer_once(model: nn.Module, params: dict) -> None:
    modules = dict(model.named_modules())
    weight_layers = [n for n, m in modules.items() if isinstance(m, (nn.Conv2d, nn.Linear))]
    batch_norms = [n for n, m in modules.items() if isinstance(m, nn.BatchNorm2d)]
    owners = [n for n, m in modules.items() if any(p is not None for p in m._parameters.values())]
    assert len(weight_layers) == 21 and len(batch_norms) == 20 and set(owners) == set(weight_layers + batch_norms)
    for name in WEIGHT_ANALYSES:
        table = run(name, model, params)
        table = table[table["layer"] != "total"]
        assert sorted(table["layer"]) == sorted(weight_layers), name  # each exactly once, none skipped
        assert (table["kind"] != "skipped").all()
        folded = [bn for note in table["note"] for bn in _batch_norm_names(note)]
        assert sorted(folded) == sorted(batch_norms), name  # each batch norm folded exactly once
        values = {"persistence": "np", "critical_compression": "eta_tau", "mst_overlap": "overlap"}[name]
        assert np.isfinite(table[values].to_numpy(float)).all()


def check_folded_layers(model: nn.Module, conv: str) -> None:
    """The folded batch norm is the one after the conv, and a conv's values equal those of a
    standalone conv holding the brute-force folded weight at the same input size."""
    modules = dict(model.named_modules())
    table = neural_persistence(model, input_shape=(3, 32, 32), conv=conv).set_index("layer")
    assert table.loc["layer2.0.downsample.0", "note"] == "batch norm layer2.0.downsample.1 folded"
    cases = [
        ("layer4.0.downsample.0", "layer4.0.downsample.1", (256, 2, 2)),
        ("layer4.1.conv2", "layer4.1.bn2", (512, 1, 1)),
    ]
    for conv_name, bn_name, size in cases:
        layer, bn = modules[conv_name], modules[bn_name]
        single = nn.Sequential(
            nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride, layer.padding, bias=False)
        )
        with torch.no_grad():
            single[0].weight.copy_(brute_folded_weight(layer, bn).float())
        ref = neural_persistence(single, input_shape=size, conv=conv).iloc[0]
        assert table.loc[conv_name, "np"] == pytest.approx(ref["np"], rel=1e-5)
        assert table.loc[conv_name, "eta_tau"] == pytest.approx(ref["eta_tau"], rel=1e-12)


def test_resnet18_filter_graphs_every_layer_once():
    model = resnet18()
    check_every_layer_once(model, {"input_shape": (3, 32, 32), "conv": "filter"})
    check_folded_layers(model, "filter")
    cc = run("critical_compression", model, {"input_shape": (3, 32, 32)}).set_index("layer")
    # stem: 7x7 stride 2 on 38x38 padded inputs -> 16x16 outputs; the stride never reaches the last
    # padded row and column, so 37x37 positions carry edges (the rest are isolated vertices)
    assert cc.loc["conv1", "eta_tau"] == pytest.approx(critical_ratio_conv(37 * 37, 16 * 16, 7, 7))
    assert cc.loc["layer1.0.conv1", "eta_tau"] == pytest.approx(critical_ratio_conv(10 * 10, 8 * 8, 3, 3))
    assert cc.loc["fc", "eta_tau"] == pytest.approx(512 * 10 / (512 + 10 - 1))


@pytest.mark.slow
def test_resnet18_toeplitz_graphs_every_layer_once():
    """The default (exact, Toeplitz) graphs: ~37 million edges over the 21 layers."""
    model = resnet18()
    check_every_layer_once(model, {"input_shape": (3, 32, 32)})
    check_folded_layers(model, "toeplitz")
