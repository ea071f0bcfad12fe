"""Conformance suite for the model zoo: every registered model must pass every generic test here.

The generic tests iterate ``MODELS``, so a newly registered model is covered without edits. Models
with a ``width`` multiplier are built tiny (``width=0.125``) to keep the suite fast.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nngeo_core.errors import NNGeoError
from nngeo_core.models import MODELS, build, list_models, model_info, prunable_layers
from nngeo_core.models.mlp import FeedForward
from nngeo_core.specs import ModelSpec

NAMES = list(MODELS)
SMALL_WIDTH = 0.125


def small_params(name: str) -> dict:
    return {"width": SMALL_WIDTH} if "width" in model_info(name)["params"] else {}


def make(name: str, seed: int = 0, **overrides) -> nn.Module:
    torch.manual_seed(seed)
    return build(name, **{**small_params(name), **overrides})


def batch(model: nn.Module, n: int = 3, seed: int = 123) -> torch.Tensor:
    return torch.randn((n, *model.input_shape), generator=torch.Generator().manual_seed(seed))


def conv_output_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """Output length of a convolution (the PyTorch Conv2d documentation's formula)."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def assert_one_line_error(fn, *args, match: str | None = None, **kwargs):
    with pytest.raises(NNGeoError, match=match) as info:
        fn(*args, **kwargs)
    message = str(info.value)
    assert message and "\n" not in message
    return message


def prunable_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    # Zoo models are nn.Sequential chains whose blocks run their layers in definition order, so
    # definition order is forward order: an independent reference for the hook-based ordering.
    return [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


def test_registry_lists_the_required_zoo():
    assert {"mlp", "fcn_mnist", "lenet5", "cnn_mnist", "vgg11", "resnet20"} <= set(list_models())
    assert list_models() == NAMES


# ---------------------------------------------------------------- generic, over every model


@pytest.mark.parametrize("name", NAMES)
def test_forward_gives_one_logit_per_class(name):
    model = make(name)
    info = model_info(name)
    assert model.input_shape == info["default_input_shape"]
    assert model.num_classes == info["default_num_classes"]
    out = model(batch(model, n=3))
    assert out.shape == (3, model.num_classes)
    assert torch.isfinite(out).all()

    other = make(name, num_classes=7)
    assert other(batch(other, n=2)).shape == (2, 7)


@pytest.mark.parametrize("name", NAMES)
def test_built_model_describes_itself(name):
    model = make(name)
    info = model_info(name)
    assert isinstance(model, FeedForward)
    assert isinstance(model.input_shape, tuple) and all(type(d) is int for d in model.input_shape)
    assert model.zoo_name == name
    assert set(model.zoo_params) == set(info["params"])
    for param, default in info["params"].items():
        if param not in small_params(name):
            assert model.zoo_params[param] == default
    assert set(info) >= {"description", "params", "default_input_shape"} and info["description"]

    # the recorded attributes are enough to rebuild the same architecture
    again = build(model.zoo_name, input_shape=model.input_shape, num_classes=model.num_classes, **model.zoo_params)
    assert {k: v.shape for k, v in again.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}


@pytest.mark.parametrize("name", NAMES)
def test_prunable_layers_are_the_linear_and_conv_modules_in_forward_order(name):
    model = make(name)
    layers = prunable_layers(model)
    expected = prunable_modules(model)
    assert [info.name for info in layers] == [n for n, _ in expected]
    for info, (_, module) in zip(layers, expected, strict=False):
        assert info.weight_shape == tuple(module.weight.shape)
        assert info.kind == ("conv" if isinstance(module, nn.Conv2d) else "dense")
        assert info.n_weights == module.weight.numel()
    assert layers[-1].kind == "dense" and layers[-1].weight_shape[0] == model.num_classes


@pytest.mark.parametrize("name", NAMES)
def test_conv_spatial_sizes_follow_conv_arithmetic(name):
    model = make(name)
    modules = dict(model.named_modules())
    convs = [info for info in prunable_layers(model) if info.kind == "conv"]
    if model_info(name)["image"]:
        assert convs and convs[0].input_size == model.input_shape[1:]
    for info in convs:
        conv = modules[info.name]
        assert info.stride == conv.stride and info.padding == conv.padding
        assert info.dilation == conv.dilation and info.groups == conv.groups
        assert info.output_size == tuple(
            conv_output_size(info.input_size[i], conv.kernel_size[i], conv.stride[i], conv.padding[i], conv.dilation[i])
            for i in range(2)
        )
        assert info.weight_shape[1] * info.groups == conv.in_channels


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_gives_same_weights_and_other_seed_differs(name):
    a, b, c = make(name, seed=0), make(name, seed=0), make(name, seed=1)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa)


@pytest.mark.parametrize("name", NAMES)
def test_builds_share_no_parameters(name):
    a, b = make(name), make(name)
    pointers_a = {p.data_ptr() for p in a.parameters()} | {t.data_ptr() for t in a.buffers()}
    pointers_b = {p.data_ptr() for p in b.parameters()} | {t.data_ptr() for t in b.buffers()}
    assert not pointers_a & pointers_b
    first_b = next(b.parameters()).detach().clone()
    with torch.no_grad():
        next(a.parameters()).add_(1.0)
    assert torch.equal(next(b.parameters()), first_b)


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_round_trips_into_a_fresh_build(name):
    source, target = make(name, seed=0), make(name, seed=1)
    source.eval(), target.eval()
    x = batch(source)
    with torch.no_grad():
        assert not torch.equal(source(x), target(x))
        target.load_state_dict(source.state_dict())
        assert torch.equal(source(x), target(x))


@pytest.mark.parametrize("name", NAMES)
def test_hidden_outputs_match_slices_of_the_sequential(name):
    model = make(name).eval()
    x = batch(model)
    indices = model.hidden_activation_indices
    assert indices == model.feature_layers() and indices == sorted(indices)
    last_prunable_child = max(int(n.split(".")[0]) for n, _ in prunable_modules(model))
    assert indices and indices[-1] < last_prunable_child
    with torch.no_grad():
        hidden = model.hidden_outputs(x)
        assert len(hidden) == len(indices)
        for index, rep in zip(indices, hidden, strict=False):
            head = model[: index + 1]
            assert type(head) is type(model)
            assert torch.equal(head(x), rep)
        assert torch.equal(model[indices[-1] + 1 :](hidden[-1]), model(x))


@pytest.mark.parametrize("name", NAMES)
def test_bad_parameters_raise_one_line_errors(name):
    info = model_info(name)
    assert_one_line_error(build, name, no_such_param=1, match="no_such_param")
    for bad in (0, -1, 2.5, True, "ten"):
        assert_one_line_error(build, name, num_classes=bad, **small_params(name))
    shape = info["default_input_shape"]
    for bad in ((), (0, *shape[1:]), (-1, *shape[1:]), "abc", 7, (*shape[:-1], 2.5)):
        assert_one_line_error(build, name, input_shape=bad, **small_params(name))
    if info["image"]:  # a flat vector is not an image
        assert_one_line_error(build, name, input_shape=(math.prod(shape),), match="image")
    for param, default in info["params"].items():
        if param in info["choices"]:
            assert_one_line_error(build, name, **{**small_params(name), param: "no-such-choice"})
        if isinstance(default, bool):
            bad_values = ["yes", 1]
        elif isinstance(default, (int, float)):
            bad_values = [0, -default, float("nan"), "big", None]
        elif isinstance(default, tuple):
            bad_values = [(0,), (-1,), (2.5,), "abc", None]
        else:
            bad_values = []
        for bad in bad_values:
            assert_one_line_error(build, name, **{**small_params(name), param: bad}, match=param)


def test_unknown_model_is_a_one_line_error():
    message = assert_one_line_error(build, "no_such_net")
    assert "mlp" in message  # names the known models
    assert_one_line_error(model_info, "no_such_net")


@pytest.mark.parametrize("name", [n for n in NAMES if not MODELS[n].image])
def test_non_image_models_flatten_any_input_shape(name):
    model = make(name, input_shape=(3, 5))
    assert prunable_layers(model)[0].weight_shape[1] == 15
    assert model(torch.randn(4, 3, 5)).shape == (4, model.num_classes)


def test_build_accepts_a_model_spec():
    model = build(ModelSpec("mlp", {"widths": [8, 4], "activation": "tanh"}))
    assert model.zoo_params == {"widths": (8, 4), "activation": "tanh", "bias": True}
    assert [info.weight_shape for info in prunable_layers(model)] == [(8, 2), (4, 8), (2, 4)]


# ---------------------------------------------------------------- the specific architectures


def test_mlp_layers_and_activations():
    references = {
        "relu": torch.relu,
        "tanh": torch.tanh,
        "gelu": F.gelu,
        "erf": torch.erf,
        "sigmoid": torch.sigmoid,
        "softplus": F.softplus,
    }
    assert set(references) == set(model_info("mlp")["choices"]["activation"])
    x = torch.randn(5, 2)
    for activation, reference in references.items():
        model = make("mlp", widths=(6, 4), activation=activation)
        first, second = (m for _, m in prunable_modules(model)[:2])
        h1, h2 = model.hidden_outputs(x)
        expected_h1 = reference(x @ first.weight.T + first.bias)
        assert torch.allclose(h1, expected_h1, atol=1e-6)
        assert torch.allclose(h2, reference(expected_h1 @ second.weight.T + second.bias), atol=1e-6)
    assert isinstance(make("mlp")[0], nn.Flatten)
    assert make("mlp").zoo_params == {"widths": (32, 32), "activation": "relu", "bias": True}
    assert make("mlp", activation="TanH").zoo_params["activation"] == "tanh"
    assert all(m.bias is None for _, m in prunable_modules(make("mlp", bias=False)))
    linear = make("mlp", widths=())  # no hidden layer: a linear classifier
    assert [info.weight_shape for info in prunable_layers(linear)] == [(2, 2)]
    assert linear.hidden_activation_indices == []
    assert make("mlp", widths=5).zoo_params["widths"] == (5,)
    assert_one_line_error(build, "mlp", activation="swish", match="swish")


def test_fcn_mnist_is_784_100x5_10_relu():
    model = make("fcn_mnist")
    widths = [784, 100, 100, 100, 100, 100, 10]
    assert [info.weight_shape for info in prunable_layers(model)] == [
        (out, inp) for inp, out in zip(widths[:-1], widths[1:], strict=False)
    ]
    assert [type(model[i]) for i in model.hidden_activation_indices] == [nn.ReLU] * 5


def test_lenet5_shapes():
    model = make("lenet5")
    layers = prunable_layers(model)
    after_pools = (((28 + 2 * 2 - 5) // 1 + 1) // 2 - 5 + 1) // 2  # conv pad 2, pool, conv, pool
    assert after_pools == 5
    assert [info.weight_shape for info in layers] == [
        (6, 1, 5, 5),
        (16, 6, 5, 5),
        (120, 16 * after_pools**2),
        (84, 120),
        (10, 84),
    ]
    assert [(info.input_size, info.output_size) for info in layers[:2]] == [((28, 28), (28, 28)), ((14, 14), (10, 10))]
    assert_one_line_error(build, "lenet5", input_shape=(1, 8, 8), match="12x12")


def test_cnn_mnist_dense_layer_is_25088_to_10():
    layers = prunable_layers(make("cnn_mnist"))
    assert [info.weight_shape for info in layers] == [(32, 1, 3, 3), (32, 32, 3, 3), (10, 32 * 28 * 28)]
    assert layers[-1].weight_shape == (10, 25_088)
    assert all(info.output_size == (28, 28) for info in layers[:2])


def test_vgg11_configuration():
    config = [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]
    model = make("vgg11", width=1.0)
    layers = prunable_layers(model)
    assert [info.weight_shape[0] for info in layers[:-1]] == [c for c in config if c != "M"]
    assert layers[-1].weight_shape == (10, 512)  # 32 / 2**5 = 1 pixel left
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 8
    tiny = prunable_layers(make("vgg11", width=SMALL_WIDTH))
    assert [info.weight_shape[0] for info in tiny[:-1]] == [int(c * SMALL_WIDTH) for c in config if c != "M"]
    one_channel = make("vgg11", input_shape=(1, 32, 32))
    assert prunable_layers(one_channel)[0].weight_shape[1] == 1
    assert_one_line_error(build, "vgg11", input_shape=(3, 16, 16), match="32x32")


def test_resnet20_structure_and_parameter_count():
    model = make("resnet20", width=1.0)
    layers = prunable_layers(model)
    assert len(layers) == 20 and [info.kind for info in layers] == ["conv"] * 19 + ["dense"]
    assert [info.weight_shape[0] for info in layers[:-1]] == [16] * 7 + [32] * 6 + [64] * 6
    assert [info.output_size for info in layers[:-1]] == [(32, 32)] * 7 + [(16, 16)] * 6 + [(8, 8)] * 6
    # closed form with option-A (parameter-free) shortcuts: 3x3 convs, 2 BN params per channel
    convs = 3 * 16 * 9 + 6 * 16 * 16 * 9 + 16 * 32 * 9 + 5 * 32 * 32 * 9 + 32 * 64 * 9 + 5 * 64 * 64 * 9
    batch_norms = 2 * (16 * 7 + 32 * 6 + 64 * 6)
    assert sum(p.numel() for p in model.parameters()) == convs + batch_norms + 64 * 10 + 10 == 269_722


def test_resnet20_option_a_shortcut_subsamples_and_zero_pads():
    model = make("resnet20").eval()
    block = next(m for m in model.modules() if getattr(m, "stride", 1) == 2)
    with torch.no_grad():
        block.conv2.weight.zero_()  # the residual branch now adds bn2(0) = beta = 0
        x = torch.randn(2, block.conv1.in_channels, 8, 8)
        extra = block.conv2.out_channels - block.conv1.in_channels
        expected = torch.relu(torch.cat([x[:, :, ::2, ::2], torch.zeros(2, extra, 4, 4)], dim=1))
        assert torch.allclose(block(x), expected, atol=1e-6)
