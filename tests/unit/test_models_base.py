"""nngeo_core.models.base on hand-made modules (not the zoo): ordering, shapes, errors, layer I/O."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from nngeo_core.errors import NNGeoError
from nngeo_core.models.base import get_layer, layer_io, layer_weights, prunable_layers


def one_line_error(fn, *args, match=None, **kwargs) -> str:
    with pytest.raises(NNGeoError, match=match) as info:
        fn(*args, **kwargs)
    assert "\n" not in str(info.value)
    return str(info.value)


def small_mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 2))


class CallsOneLayerTwice(nn.Module):
    def __init__(self):
        super().__init__()
        self.shared = nn.Linear(4, 4)
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        return self.head(self.shared(torch.relu(self.shared(x))))


class DefinedInReverse(nn.Module):
    """Defines ``late`` before ``early`` but calls ``early`` first."""

    def __init__(self):
        super().__init__()
        self.late = nn.Linear(6, 2)
        self.early = nn.Linear(3, 6)

    def forward(self, x):
        return self.late(torch.relu(self.early(x)))


def test_sequential_of_linear_with_explicit_input_shape():
    model = small_mlp()
    layers = prunable_layers(model, input_shape=(3,))
    assert [info.name for info in layers] == ["0", "2", "4"]
    assert [info.kind for info in layers] == ["dense"] * 3
    assert [info.weight_shape for info in layers] == [(5, 3), (4, 5), (2, 4)]
    assert [info.n_weights for info in layers] == [15, 20, 8]
    assert all(info.input_size is None and info.output_size is None for info in layers)


def test_order_is_forward_order_not_definition_order():
    assert [info.name for info in prunable_layers(DefinedInReverse(), (3,))] == ["early", "late"]


def test_a_module_called_twice_is_one_layer():
    layers = prunable_layers(CallsOneLayerTwice(), (4,))
    assert [info.name for info in layers] == ["shared", "head"]


def test_conv_geometry_is_recorded():
    model = nn.Sequential(
        nn.Conv2d(2, 4, 3, stride=2, padding=1, dilation=2),
        nn.ReLU(),
        nn.Conv2d(4, 6, 3, padding="same", groups=2),
        nn.Flatten(),
        nn.Linear(6 * 5 * 4, 3),
    )
    first, second, dense = prunable_layers(model, (2, 11, 9))
    # (H + 2p - d(k-1) - 1) // s + 1: (11 + 2 - 4 - 1)//2 + 1 = 5, (9 + 2 - 4 - 1)//2 + 1 = 4
    assert (first.kind, first.input_size, first.output_size) == ("conv", (11, 9), (5, 4))
    assert (first.stride, first.padding, first.dilation, first.groups) == ((2, 2), (1, 1), (2, 2), 1)
    assert second.padding == (1, 1) and second.output_size == (5, 4) and second.groups == 2
    assert second.weight_shape == (6, 2, 3, 3)
    assert dense.kind == "dense" and dense.weight_shape == (3, 6 * 5 * 4)


def test_input_shape_comes_from_the_model_attribute():
    model = small_mlp()
    message = one_line_error(prunable_layers, model, match="input")
    assert "input_shape" in message
    model.input_shape = (3,)
    assert [info.name for info in prunable_layers(model)] == ["0", "2", "4"]


def test_a_model_without_linear_or_conv_is_rejected():
    one_line_error(prunable_layers, nn.Sequential(nn.Flatten(), nn.ReLU()), (3,), match="Linear or Conv2d")


def test_incompatible_input_shape_is_a_one_line_error():
    message = one_line_error(prunable_layers, small_mlp(), (7,))
    assert "(7,)" in message


def test_prunable_layers_keeps_the_training_mode_and_removes_its_hooks():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    model.train()
    prunable_layers(model, (3,))
    assert model.training and all(m.training for m in model.modules())
    assert all(not m._forward_hooks for m in model.modules())
    assert int(model[1].num_batches_tracked) == 0  # the probe ran in eval mode
    model.eval()
    prunable_layers(model, (3,))
    assert not model.training


def test_layer_io_matches_a_manual_forward():
    model = small_mlp()
    x = torch.randn(6, 3)
    io = layer_io(model, x)
    assert list(io) == ["0", "2", "4"]
    with torch.no_grad():
        h0 = model[0](x)
        h2 = model[2](torch.relu(h0))
        out = model[4](torch.tanh(h2))
    expected = {"0": (x, h0), "2": (torch.relu(h0), h2), "4": (torch.tanh(h2), out)}
    for name, (inp, outp) in expected.items():
        assert torch.allclose(io[name][0], inp) and torch.allclose(io[name][1], outp)
    assert torch.allclose(io["4"][1], model(x).detach())
    only = layer_io(model, x, ["2", "3"])  # any named module, not only prunable ones
    assert set(only) == {"2", "3"} and torch.allclose(only["3"][1], torch.tanh(h2))
    assert all(not m._forward_hooks for m in model.modules())
    one_line_error(layer_io, model, x, ["nope"], match="nope")


def test_get_layer_and_layer_weights():
    model = DefinedInReverse()
    assert get_layer(model, "early") is model.early
    one_line_error(get_layer, model, "missing", match="missing")
    weights = layer_weights(model, (3,))
    assert list(weights) == ["early", "late"]
    assert torch.equal(weights["early"], model.early.weight) and not weights["early"].requires_grad


def test_layer_weights_are_the_masked_weights_of_a_pruned_layer():
    model = small_mlp()
    prune.l1_unstructured(model[0], "weight", amount=0.4)
    weights = layer_weights(model, (3,))
    assert [info.weight_shape for info in prunable_layers(model, (3,))][0] == (5, 3)
    assert torch.equal(weights["0"], model[0].weight_orig.detach() * model[0].weight_mask)
    assert int((weights["0"] == 0).sum()) == round(0.4 * 15)
