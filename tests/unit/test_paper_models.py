"""The neural-curvature paper's two models (Tan, Sia, Bogdan, Ivanov, arXiv 2601.16366): ``vgg9``
(CIFAR-10) and ``lenet5_s2`` (MNIST), checked against plain ``nn.Sequential`` references written
here from the paper's architecture, parameter counts from the layer formulas, and neural curvature
on the pool-free LeNet (no conv layer has kappa identically 0)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nngeo_core.curvature import neural_curvature
from nngeo_core.errors import NNGeoError
from nngeo_core.models import build, prunable_layers

# (in channels, out channels, kernel, stride), padding 0 everywhere
VGG9_CONVS = [(3, 64, 2, 2), (64, 128, 3, 1), (128, 128, 3, 1), (128, 128, 3, 2), (128, 256, 3, 1), (256, 256, 3, 1)]
VGG9_DENSE = [(256, 512), (512, 128), (128, 10)]
LENET_CONVS = [(1, 6, 6, 2), (6, 16, 6, 2)]
LENET_DENSE = [(16 * 4 * 4, 120), (120, 84), (84, 10)]


def out_side(size: int, kernel: int, stride: int) -> int:
    """Conv output length, padding 0 (the PyTorch Conv2d documentation's formula)."""
    return (size - kernel) // stride + 1


def vgg9_reference() -> nn.Sequential:
    layers: list[nn.Module] = []
    for cin, cout, k, s in VGG9_CONVS:
        layers += [nn.Conv2d(cin, cout, k, stride=s, padding=0), nn.BatchNorm2d(cout), nn.ReLU()]
    layers += [nn.Flatten(), nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 128), nn.ReLU(), nn.Linear(128, 10)]
    return nn.Sequential(*layers)


def lenet5_s2_reference() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 6, 6, stride=2),
        nn.ReLU(),
        nn.Conv2d(6, 16, 6, stride=2),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(256, 120),
        nn.ReLU(),
        nn.Linear(120, 84),
        nn.ReLU(),
        nn.Linear(84, 10),
    )


def load_by_position(source: nn.Module, target: nn.Module) -> None:
    src, dst = source.state_dict(), target.state_dict()
    assert len(src) == len(dst)
    for (_, value), (key, ref) in zip(src.items(), dst.items(), strict=True):
        assert value.shape == ref.shape, key
    target.load_state_dict(dict(zip(dst, src.values(), strict=True)))


def conv_output_shapes(reference: nn.Sequential, x: torch.Tensor) -> list[tuple[int, ...]]:
    shapes = []
    for module in reference:
        x = module(x)
        if isinstance(module, nn.Conv2d):
            shapes.append(tuple(x.shape[1:]))
    return shapes


CASES = {
    "vgg9": (vgg9_reference, VGG9_CONVS, VGG9_DENSE, (3, 32, 32), [16, 14, 12, 5, 3, 1]),
    "lenet5_s2": (lenet5_s2_reference, LENET_CONVS, LENET_DENSE, (1, 28, 28), [12, 4]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_layers_and_logits_equal_the_plain_sequential(name):
    make_reference, convs, dense, shape, sides = CASES[name]
    torch.manual_seed(0)
    model = build(name)
    torch.manual_seed(0)
    reference = make_reference()
    assert model.input_shape == shape and model.num_classes == 10

    # spatial sizes from conv arithmetic, written out: 32->16->14->12->5->3->1 and 28->12->4
    side, expected_sides = shape[1], []
    for _, _, k, s in convs:
        side = out_side(side, k, s)
        expected_sides.append(side)
    assert expected_sides == sides
    infos = prunable_layers(model)
    assert [i.weight_shape for i in infos] == [
        *[(cout, cin, k, k) for cin, cout, k, _ in convs],
        *[(fout, fin) for fin, fout in dense],
    ]
    assert [i.output_size for i in infos[: len(convs)]] == [(s, s) for s in sides]
    assert [i.stride for i in infos[: len(convs)]] == [(s, s) for *_, s in convs]
    assert all(i.padding == (0, 0) for i in infos[: len(convs)])
    x = torch.randn(4, *shape, generator=torch.Generator().manual_seed(7))
    assert conv_output_shapes(reference, x) == [(cout, s, s) for (_, cout, _, _), s in zip(convs, sides, strict=True)]
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == (len(convs) if name == "vgg9" else 0)
    assert not any(isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)) for m in model.modules())

    # make batch norm do something in eval mode before copying the state over
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    load_by_position(model, reference)
    model.eval()
    reference.eval()
    with torch.no_grad():
        out, ref = model(x), reference(x)
    assert out.shape == ref.shape == (4, 10)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-6)
    model.train()
    reference.train()
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", list(CASES))
def test_parameter_count_is_the_layer_formula(name):
    _, convs, dense, _, _ = CASES[name]
    conv_params = sum(cin * cout * k * k + cout for cin, cout, k, _ in convs)
    bn_params = sum(2 * cout for _, cout, _, _ in convs) if name == "vgg9" else 0
    dense_params = sum(fin * fout + fout for fin, fout in dense)
    model = build(name)
    assert sum(p.numel() for p in model.parameters()) == conv_params + bn_params + dense_params
    if name == "lenet5_s2":
        assert conv_params + dense_params == 45_548


def test_channels_classes_and_other_sizes_follow_the_zoo_conventions():
    grey = build("vgg9", input_shape=(1, 40, 36), num_classes=7)
    infos = prunable_layers(grey)
    assert infos[0].weight_shape[1] == 1 and infos[-1].weight_shape[0] == 7
    h, w = 40, 36
    for _, _, k, s in VGG9_CONVS:
        h, w = out_side(h, k, s), out_side(w, k, s)
    assert infos[len(VGG9_CONVS)].weight_shape == (512, 256 * h * w)
    assert grey(torch.randn(2, 1, 40, 36)).shape == (2, 7)

    colour = build("lenet5_s2", input_shape=(3, 32, 32), num_classes=4)
    infos = prunable_layers(colour)
    side = out_side(out_side(32, 6, 2), 6, 2)
    assert infos[0].weight_shape == (6, 3, 6, 6)
    assert infos[2].weight_shape == (120, 16 * side * side)
    assert colour(torch.randn(2, 3, 32, 32)).shape == (2, 4)


def smallest_side(convs) -> int:
    """Brute force: the smallest input side whose last feature map is at least 1 pixel."""
    for size in range(1, 100):
        side = size
        for _, _, k, s in convs:
            side = out_side(side, k, s) if side >= k else 0
        if side >= 1:
            return size
    raise AssertionError("no size up to 100 fits")


@pytest.mark.parametrize("name", list(CASES))
def test_too_small_images_are_refused_in_one_line(name):
    _, convs, _, shape, _ = CASES[name]
    least = smallest_side(convs)
    assert least == {"vgg9": 30, "lenet5_s2": 16}[name]
    channels = shape[0]
    fits = build(name, input_shape=(channels, least, least))
    assert fits(torch.randn(2, channels, least, least)).shape == (2, 10)
    for small in ((channels, least - 1, least - 1), (channels, least, least - 1), (channels, 8, 8)):
        with pytest.raises(NNGeoError, match=f"{least}x{least}") as info:
            build(name, input_shape=small)
        assert "\n" not in str(info.value) and name in str(info.value)


def test_neural_curvature_of_the_pool_free_lenet_is_not_zero_on_any_conv_layer():
    torch.manual_seed(0)
    model = build("lenet5_s2")
    inputs = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    conv_names = [i.name for i in prunable_layers(model) if i.kind == "conv"]
    assert len(conv_names) == 2
    # dead_value=0: a dead edge scores 0, so nonzero values come from edges that carry activation
    table = neural_curvature(model, inputs, conv_positions=2, dead_value=0.0, layers=conv_names)
    assert set(table["layer"]) == set(conv_names)
    assert table["curvature"].notna().all()
    for name in conv_names:
        rows = table[table["layer"] == name]
        alive = rows[rows["alive"] > 0]
        assert len(alive) > 0, name
        assert (alive["curvature"].abs() > 1e-6).any(), name
        assert (rows.loc[rows["alive"] == 0, "curvature"] == 0).all(), name


@pytest.mark.parametrize("name, shape, classes", [("vgg9", (1, 32, 32), 100), ("lenet5_s2", (1, 28, 28), 5)])
def test_a_plain_state_dict_of_either_model_is_recognised_with_its_channels_and_classes(name, shape, classes):
    import io

    from nngeo_core import checkpoint

    torch.manual_seed(0)
    model = build(name, input_shape=shape, num_classes=classes).eval()
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    loaded = checkpoint.load(buf.getvalue())
    assert loaded.model_spec.name == name
    x = torch.randn(3, *shape)
    with torch.no_grad():
        assert torch.equal(loaded.model.eval()(x), model(x))
