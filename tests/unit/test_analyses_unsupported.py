"""The neuron graph of real architectures: skip connections, pooling, gates and concatenations
are drawn from one traced forward pass, checked against the torchvision modules' own structure;
what cannot be drawn is named, in one line, on the layers it touches."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torchvision.models.mobilenetv3 import InvertedResidual
from torchvision.models.resnet import BasicBlock

from nngeo_core.curvature import analyses as curvature_analyses
from nngeo_core.curvature.layer_graph import build_network
from nngeo_core.errors import NNGeoError
from nngeo_core.models import build
from nngeo_core.progress import Progress


def _torchvision(arch: str):
    return build("torchvision", arch=arch, input_shape=(3, 32, 32), num_classes=10)


def test_resnet18_blocks_are_identity_skips_or_downsample_convs_into_the_sum():
    model = _torchvision("resnet18")
    net, _ = build_network(model)
    blocks = [(n, m) for n, m in model.named_modules() if isinstance(m, BasicBlock)]
    by_name = {lay.name: lay for lay in net.layers}
    assert len(by_name) == 21 and not net.cut and not net.lost
    identity = [lk for lk in net.links if lk.name.startswith("identity")]
    assert len(identity) == sum(m.downsample is None for _, m in blocks) == 5
    for name, m in blocks:
        conv1, conv2 = by_name[f"{name}.conv1"], by_name[f"{name}.conv2"]
        if m.downsample is None:  # the block's input joins its sum by identity edges of weight 1
            skip = [lk for lk in identity if lk.src == conv1.src and lk.dst == conv2.dst]
            assert len(skip) == 1 and skip[0].M.nnz == skip[0].n_in == skip[0].n_out
            assert (abs(skip[0].M.data) == 1).all()
        else:  # the shortcut conv's outputs are the sum's neurons, like conv2's
            down = by_name[f"{name}.downsample.0"]
            assert (down.src, down.dst) == (conv1.src, conv2.dst)
    pools = sorted(lk.name.split(" ")[0] for lk in net.links if "pool" in lk.name)
    assert pools == ["avg_pool", "max_pool"]


def test_mobilenet_gates_and_skips_are_drawn_and_what_is_not_is_named():
    model = _torchvision("mobilenet_v3_small")
    net, _ = build_network(model)
    skips = sum(isinstance(m, InvertedResidual) and m.use_res_connect for m in model.modules())
    assert sum(lk.name.startswith("identity") for lk in net.links) == skips
    notes = net.notes()
    gates = [n for n, note in notes.items() if "gate" in note]
    assert gates and all(n.endswith("fc2") for n in gates)  # each squeeze-excitation's last conv
    assert all("\n" not in note for note in notes.values())


def test_an_op_between_layers_that_cannot_be_drawn_is_named_on_both_sides():
    class Softmaxed(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(4, 3), nn.Linear(3, 2)
            self.input_shape, self.num_classes = (4,), 2

        def forward(self, x):
            return self.fc2(torch.softmax(self.fc1(x), dim=1))

    net, _ = build_network(Softmaxed())
    notes = net.notes()
    assert "`softmax`" in notes["fc2"] and "no predecessors" in notes["fc2"]
    assert "`softmax`" in notes["fc1"] and "no successors" in notes["fc1"]


def test_a_layer_on_part_of_a_level_is_refused_in_one_line():
    class Tokens(nn.Module):  # a Linear over the last axis of a (N, T, d) tensor
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 2)
            self.input_shape, self.num_classes = (4, 3), 2

        def forward(self, x):
            return self.fc(x).mean(1)

    with pytest.raises(NNGeoError, match=r"^layer fc does not act on whole neuron levels \(12 units") as info:
        build_network(Tokens())
    assert "\n" not in str(info.value)


def test_weight_curvature_runs_on_a_torchvision_resnet_for_chosen_layers():
    model = _torchvision("resnet18")
    table = curvature_analyses.curvature_weights_analysis(
        model, None, {"layers": "conv1,1.head", "conv_positions": 1}, Progress()
    )  # a layer is named as torchvision's resnet18 names it (conv1) or as ours (1.head, torchvision's fc)
    assert set(table["layer"]) == {"0.net.conv1", "1.head"}
    assert table["curvature"].notna().all() and len(table[table["layer"] == "1.head"]) == 512 * 10
    assert table.loc[table["layer"] == "0.net.conv1", "note"].str.contains("batch norm 0.net.bn1 folded").all()


def test_an_unknown_layer_is_one_line_naming_the_layers_as_the_builder_does():
    model = _torchvision("resnet18")
    with pytest.raises(NNGeoError) as info:
        curvature_analyses.curvature_weights_analysis(model, None, {"layers": "conv9", "conv_positions": 1}, Progress())
    text = str(info.value)
    assert "\n" not in text and text.startswith("no weight layer named 'conv9'; the layers are conv1, layer1.0.conv1")
    assert len(text) <= 300


def test_an_onnx_conversion_has_the_neuron_graph_and_curvature_of_the_original():
    import io

    import onnx
    import onnx2torch

    from nngeo_core.curvature import weight_only_curvature
    from nngeo_core.testing.nets import custom_cnn

    cnn = custom_cnn(8, classes=3)
    buf = io.BytesIO()
    torch.onnx.export(cnn, torch.zeros(1, 3, 8, 8), buf, dynamo=False)
    converted = onnx2torch.convert(onnx.load_from_string(buf.getvalue())).eval()
    cnn.input_shape = converted.input_shape = (3, 8, 8)
    net, _ = build_network(converted)
    assert [(lay.src, lay.dst) for lay in net.layers] == [(0, 1), (2, 3), (3, 4)]
    assert [(lk.src, lk.dst) for lk in net.links] == [(1, 2)] and net.links[0].name.startswith("max_pool")
    a = weight_only_curvature(cnn, conv_positions=2, method="exact")
    b = weight_only_curvature(converted, conv_positions=2, method="exact")
    assert len(a) == len(b) and (a["curvature"].to_numpy() == b["curvature"].to_numpy()).all()
