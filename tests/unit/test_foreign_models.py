"""Foreign networks (nngeo_core.models.foreign) against independent references: plain torchvision
models built here and saved with torch.save, onnxruntime running the same ONNX file, plain torch
MLPs; and the refusals (``.pt2``, unsupported ONNX operators, corrupt bytes) as one line each."""

from __future__ import annotations

import io
import sys
import types
import warnings
import zipfile
from collections import Counter

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
import torchvision.models as tvm
from onnx import TensorProto, helper
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

from nngeo_core import checkpoint
from nngeo_core.errors import NNGeoError
from nngeo_core.models import ACTIVATIONS, build, foreign
from nngeo_core.models.foreign import torchvision_zoo as tvz
from nngeo_core.models.foreign.base import AmbiguousArchitecture


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text and text.strip() == text and len(text) <= 300, text
    return text


def saved_and_read(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state_dict as a user's file gives it: torch.save, then the safe torch.load."""
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return torch.load(io.BytesIO(buf.getvalue()), weights_only=True)


def plain(name: str, seed: int = 0, **kwargs) -> nn.Module:
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return tvm.get_model(name, weights=None, **kwargs).eval()


def randomise_bn(model: nn.Module) -> None:
    """Non-trivial running statistics, so a model that ignored the loaded ones would differ."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)


# -- torchvision, recognised from a state_dict ---------------------------------------------------
@pytest.mark.parametrize(
    ("name", "classes", "side"),
    [
        ("resnet18", 7, 64),
        ("mobilenet_v3_small", 1000, 64),
        ("densenet121", 5, 64),
        ("vgg11", 3, 32),
        ("squeezenet1_1", 11, 64),
    ],
)
def test_a_torchvision_state_dict_is_recognised_and_computes_the_same(name, classes, side):
    original = plain(name, num_classes=classes)
    randomise_bn(original)
    model, spec = foreign.load_state_dict(saved_and_read(original))
    assert spec == {
        "arch": name,
        "num_classes": classes,
        "in_channels": 3,
        "source": "torchvision",
        "kwargs": {},
        "torchvision": tvz.tv_version(),
    }
    x = torch.randn(2, 3, side, side)
    with torch.no_grad():
        assert torch.equal(model(x), original(x))
    # the spec rebuilds the architecture: same keys and shapes (on meta: no memory, no initialisation)
    with torch.device("meta"):
        rebuilt = foreign.build_foreign(spec)
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {
        k: v.shape for k, v in original.state_dict().items()
    }


def test_one_input_channel_replaces_the_stem_conv_because_the_weights_say_so():
    original = plain("resnet18", num_classes=4)
    original.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    original.eval()
    model, spec = foreign.load_state_dict(saved_and_read(original))
    assert (spec["arch"], spec["in_channels"], spec["num_classes"]) == ("resnet18", 1, 4)
    x = torch.randn(3, 1, 48, 48)
    with torch.no_grad():
        assert torch.equal(model(x), original(x))
    assert foreign.build_foreign(spec).conv1.in_channels == 1


def test_a_state_dict_without_torch_metadata_loads_as_from_safetensors():
    # MNASNet checks the layout version torch.save keeps beside the tensors; safetensors keeps none
    original = plain("mnasnet0_5", num_classes=3)
    randomise_bn(original)
    state = st_load(st_save(original.state_dict()))
    assert not hasattr(state, "_metadata")
    model, spec = foreign.load_state_dict(state)
    assert spec["arch"] == "mnasnet0_5"
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), original(x))


def test_a_builder_variant_the_keys_reveal_is_recognised_with_its_argument():
    original = plain("googlenet", num_classes=4, aux_logits=False, init_weights=True)
    model, spec = foreign.load_state_dict(saved_and_read(original))
    assert (spec["arch"], spec["kwargs"]) == ("googlenet", {"aux_logits": False})
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), original(x))


def test_the_callers_random_generator_is_not_moved():
    state = saved_and_read(plain("squeezenet1_1", num_classes=3))
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    foreign.load_state_dict(state)
    assert torch.equal(torch.rand(3), expected)


def test_the_signature_index_is_cached_on_disk_and_read_back(nngeo_home, monkeypatch):
    state = saved_and_read(plain("squeezenet1_1", num_classes=3))
    foreign.load_state_dict(state)
    path = tvz.index_path()
    assert path.is_relative_to(nngeo_home) and path.is_file()
    monkeypatch.setattr(tvz, "_MEMORY", {})  # a new process: only the disk cache (restored afterwards)
    built = []
    real = tvz.signature_of
    monkeypatch.setattr(tvz, "signature_of", lambda *a, **k: built.append(a) or real(*a, **k))
    _, spec = foreign.load_state_dict(state)
    assert spec["arch"] == "squeezenet1_1" and built == []  # everything came from the file


def test_several_fitting_builders_are_asked_not_guessed(monkeypatch):
    # two builders that differ only in a layer without weights (dropout): the same keys and shapes
    same = [tvz.signature_of("squeezenet1_1"), tvz.signature_of("squeezenet1_1", {"dropout": 0.2})]
    monkeypatch.setattr(tvz, "signatures", lambda keys=None: same)
    state = saved_and_read(plain("squeezenet1_1", num_classes=6))
    with pytest.raises(AmbiguousArchitecture) as err:
        foreign.load_state_dict(state)
    assert err.value.candidates == ("squeezenet1_1", "squeezenet1_1(dropout=0.2)")
    text = one_line(err.value)
    assert "squeezenet1_1, squeezenet1_1(dropout=0.2)" in text
    assert "--arch NAME" in text and "Upload page" in text
    assert isinstance(err.value, NNGeoError)
    model, spec = foreign.load_state_dict(state, arch="squeezenet1_1")  # an explicit choice resolves it
    assert spec["arch"] == "squeezenet1_1" and spec["num_classes"] == 6


def test_an_unrecognised_state_dict_says_what_it_holds_and_what_came_closest():
    original = plain("resnet18")
    state = saved_and_read(original)
    del state["fc.bias"]
    state["layer1.0.conv1.weight"] = torch.zeros(64, 64, 1, 1)
    with pytest.raises(NNGeoError) as err:
        foreign.load_state_dict(state)
    text = one_line(err.value)
    # the layer counts, counted here from the modules themselves
    kinds = Counter(type(m).__name__ for m in original.modules())
    found = f"{kinds['Conv2d']} conv, {kinds['Linear']} linear, {kinds['BatchNorm2d']} batch-norm"
    assert text.startswith(f"unrecognised architecture: the state_dict holds {found} ({len(state)} tensors)")
    assert "resnet18: 1 key missing (fc.bias), 1 shape differs (layer1.0.conv1.weight 64×64×1×1 vs 64×64×3×3)" in text


def test_a_state_dict_like_no_torchvision_model_says_so():
    state = {"trunk.weight": torch.zeros(8, 3, 3, 3), "out.weight": torch.zeros(2, 8)}
    with pytest.raises(NNGeoError) as err:
        foreign.load_state_dict(state)
    text = one_line(err.value)
    assert "1 conv, 1 linear (2 tensors)" in text and "no torchvision architecture" in text


def test_a_named_architecture_that_does_not_fit_says_why():
    state = saved_and_read(plain("resnet18"))
    with pytest.raises(NNGeoError) as err:
        foreign.load_state_dict(state, arch="resnet34")
    assert one_line(err.value).startswith("the weights do not fit torchvision's resnet34: ")
    with pytest.raises(NNGeoError) as err:
        foreign.load_state_dict(state, arch="torchvision:resnet19")
    assert "no torchvision classification architecture named 'resnet19'" in one_line(err.value)
    _, spec = foreign.load_state_dict(state, arch="torchvision:resnet18")
    assert spec["arch"] == "resnet18"


# -- timm: only by name ---------------------------------------------------------------------------
def test_a_timm_name_without_timm_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)  # importing it now raises ImportError
    with pytest.raises(NNGeoError) as err:
        foreign.load_state_dict({"fc.weight": torch.zeros(2, 3)}, arch="timm:resnet18")
    assert "timm is not installed" in one_line(err.value)


def test_a_timm_model_reads_its_class_count_at_the_layer_timm_names(monkeypatch):
    calls = []

    def create_model(name, pretrained=False, num_classes=1000, in_chans=3):
        # the part of timm's API the loader uses: create_model and the model's pretrained_cfg
        calls.append((name, pretrained, num_classes, in_chans))
        model = tvm.get_model("resnet18", weights=None, num_classes=num_classes)
        model.pretrained_cfg = {"classifier": "fc", "first_conv": "conv1"}
        return model

    monkeypatch.setitem(sys.modules, "timm", types.SimpleNamespace(create_model=create_model))
    original = plain("resnet18", num_classes=9)
    model, spec = foreign.load_state_dict(saved_and_read(original), arch="timm:resnet18")
    assert spec == {"arch": "timm:resnet18", "num_classes": 9, "in_channels": 3, "source": "timm", "kwargs": {}}
    assert calls[-1] == ("resnet18", False, 9, 3)
    x = torch.randn(2, 3, 40, 40)
    with torch.no_grad():
        assert torch.equal(model(x), original(x))


# -- ONNX -----------------------------------------------------------------------------------------
class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 7 * 7, 5)

    def forward(self, x):
        x = nn.functional.max_pool2d(torch.relu(self.bn(self.conv(x))), 2)
        return self.fc(torch.flatten(x, 1))


def onnx_bytes(model: nn.Module, example: torch.Tensor) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():  # the TorchScript exporter is deprecated but needs no onnxscript
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), buf, dynamo=False, input_names=["x"], output_names=["y"])
    return buf.getvalue()


def test_an_onnx_file_converts_to_a_module_that_computes_what_onnxruntime_and_torch_do():
    torch.manual_seed(0)
    original = SmallCNN()
    randomise_bn(original)
    original.eval()
    x = torch.randn(1, 1, 14, 14)
    data = onnx_bytes(original, x)
    loaded = foreign.load_file(data, "small.onnx")
    assert loaded is not None
    model, spec = loaded
    assert spec["source"] == "onnx" and spec["input_shape"] == [1, 14, 14] and spec["num_classes"] == 5
    with torch.no_grad():
        ours = model(x).numpy()
        reference = original(x).numpy()
    (runtime,) = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, {"x": x.numpy()})
    np.testing.assert_allclose(ours, runtime, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-5)
    assert foreign.load_file(data) is not None  # recognised from its bytes alone


def hardmax_model() -> bytes:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Hardmax", ["r"], ["y"], axis=1)],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)  # a valid model: only the converter lacks Hardmax
    return model.SerializeToString()


def test_an_onnx_operator_onnx2torch_lacks_is_named_in_one_line():
    with pytest.raises(NNGeoError) as err:
        foreign.load_file(hardmax_model(), "m.onnx")
    text = one_line(err.value)
    assert "has no converter for Hardmax (opset 13)" in text and "Relu" not in text


@pytest.mark.parametrize("data", [b"\x08\x07garbage\xff\xff\xff", b"not onnx at all", b""])
def test_corrupt_onnx_bytes_are_one_line(data):
    with pytest.raises(NNGeoError) as err:
        foreign.load_file(data, "broken.onnx")
    assert "ONNX file" in one_line(err.value)


def test_onnx_weights_in_external_files_are_not_read():
    torch.manual_seed(0)
    model = onnx.load_model_from_string(onnx_bytes(SmallCNN().eval(), torch.randn(1, 1, 14, 14)))
    onnx.external_data_helper.convert_model_to_external_data(model, size_threshold=0, location="../no-such-weights.bin")
    with pytest.raises(NNGeoError) as err:
        foreign.load_onnx(model.SerializeToString())
    assert "separate files" in one_line(err.value)


def test_a_state_dict_is_neither_onnx_nor_pt2():
    buf = io.BytesIO()
    torch.save(SmallCNN().state_dict(), buf)
    assert foreign.load_file(buf.getvalue(), "weights.pt") is None
    assert foreign.load_file(checkpoint.to_bytes(build("mlp")), "ours.safetensors") is None


# -- torch.export programs ------------------------------------------------------------------------
def test_a_torch_export_program_is_refused_without_being_loaded(monkeypatch):
    program = torch.export.export(SmallCNN().eval(), (torch.randn(1, 1, 14, 14),))
    buf = io.BytesIO()
    torch.export.save(program, buf)
    data = buf.getvalue()
    assert any(n.endswith("archive_format") for n in zipfile.ZipFile(io.BytesIO(data)).namelist())

    def never(*args, **kwargs):
        raise AssertionError("torch.export.load must not be called on a foreign file")

    monkeypatch.setattr(torch.export, "load", never)
    for name in ("model.pt2", "upload.bin", ""):  # the layout is recognised, whatever the name
        with pytest.raises(NNGeoError) as err:
            foreign.load_file(data, name)
        text = one_line(err.value)
        assert text.startswith("refusing to load a torch.export program (.pt2)") and "weights_only=False" in text


# -- the activation a zoo match cannot read from the weights --------------------------------------
def plain_mlp(act: type[nn.Module]) -> nn.Sequential:
    torch.manual_seed(3)
    sizes = [784, 100, 100, 100, 100, 100, 10]
    layers: list[nn.Module] = [nn.Flatten()]
    for i, (a, b) in enumerate(zip(sizes, sizes[1:], strict=False)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(act())
    return nn.Sequential(*layers)


def test_an_explicit_activation_is_honoured_on_a_zoo_match():
    reference = plain_mlp(nn.Tanh)
    ckpt = checkpoint.recognise(reference.state_dict(), activation="tanh")
    model, spec = foreign.honour_activation(ckpt.model, "tanh")
    assert spec.name == "mlp" and spec.params["activation"] == "tanh"
    assert spec.params["widths"] == (100,) * 5
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(model(x), reference(x))


def test_relu_keeps_the_zoo_model_and_no_choice_is_ambiguous():
    reference = plain_mlp(nn.ReLU)
    with pytest.raises(AmbiguousArchitecture):  # recognise asks too: a Linear-only match
        checkpoint.recognise(reference.state_dict())
    ckpt = checkpoint.recognise(reference.state_dict(), activation="relu")
    assert ckpt.model_spec.name == "fcn_mnist"
    model, spec = foreign.honour_activation(ckpt.model, "relu")
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(model(x), reference(x))
    assert spec.name == ckpt.model.zoo_name
    with pytest.raises(AmbiguousArchitecture) as err:
        foreign.honour_activation(ckpt.model, None)
    assert err.value.candidates == tuple(ACTIVATIONS) and err.value.option == "activation"
    assert "--activation NAME" in one_line(err.value)


def test_a_conv_zoo_model_with_relu_built_in_refuses_another_activation():
    lenet = build("lenet5")
    with pytest.raises(NNGeoError) as err:
        foreign.honour_activation(lenet, "tanh")
    assert "fixed to relu" in one_line(err.value)


# -- every builder (slow) -------------------------------------------------------------------------
def input_side(name: str) -> int:
    if name.startswith(("vit_", "maxvit")):
        return 224  # fixed image size
    if name.startswith("inception"):
        return 96  # at least 75
    return 64


@pytest.mark.slow
def test_every_torchvision_classification_builder_is_recognised(tmp_path, capsys):
    rows = []
    for name in tvz.builder_names():
        try:
            original = plain(name, num_classes=10)
            side = input_side(name)
            x = torch.randn(1, 3, side, side)
            with torch.no_grad():
                expected = original(x)
            path = tmp_path / "state.pt"
            torch.save(original.state_dict(), path)
            del original  # the largest builders hold 2.5 GB: one copy at a time
            state = torch.load(path, weights_only=True, mmap=True)
            model, spec = foreign.load_state_dict(state)
            with torch.no_grad():
                same = torch.equal(model(x), expected)
            outcome = "loads" if spec["arch"] == name and same else f"wrong: {spec['arch']}, equal={same}"
        except Exception as exc:  # recorded: the table is the point of this test
            outcome = f"fails: {type(exc).__name__}: {str(exc)[:160]}"
        rows.append((name, outcome))
        model = state = None  # free the large ones before the next
    with capsys.disabled():
        print("\n| builder | outcome |\n|---|---|")
        for name, outcome in rows:
            print(f"| {name} | {outcome} |")
    bad = [f"{n}: {o}" for n, o in rows if o != "loads"]
    assert not bad, "\n".join(bad)


@pytest.mark.slow
def test_every_family_shares_its_top_level_names():
    """The cold path's narrowing (torchvision_zoo's docstring) is sound only if this holds."""
    odd = []
    for fam, names in tvz.families().items():
        tops = {n: frozenset(k.split(".")[0] for k in tvz.signature_of(n).keys) for n in names}
        if len(set(tops.values())) > 1:
            odd.append(f"{fam}: {tops}")
    assert not odd, "\n".join(odd)


# -- as a registered model: a FeedForward [body, head] that the store rebuilds ---------------------
@pytest.mark.parametrize(
    ("name", "channels", "side"),
    [("resnet18", 3, 32), ("squeezenet1_1", 3, 64), ("mobilenet_v3_small", 1, 48), ("vgg11", 3, 32)],
)
def test_a_torchvision_model_splits_into_body_and_head_and_rebuilds_from_the_registry(name, channels, side):
    original = plain(name, num_classes=6)
    randomise_bn(original)
    state = saved_and_read(original)
    if channels != 3:  # a 1-channel stem, as a model of greyscale images has
        stem = tvz.stem_conv(original)
        assert stem is not None
        state[f"{stem[0]}.weight"] = state[f"{stem[0]}.weight"].sum(1, keepdim=True)
    found = foreign.load_state_dict(state)
    reference = found.model  # torchvision's own forward, with the weights loaded
    x = torch.randn(2, channels, side, side)
    with torch.no_grad():
        want = reference(x)
    ckpt = checkpoint.recognise(state, input_shape=(channels, side, side))
    model = ckpt.model.eval()
    assert ckpt.model_spec.name == "torchvision" and ckpt.model_spec.params["arch"] == name
    assert model.hidden_activation_indices == [0]  # the pooled features are its representation
    with torch.no_grad():
        assert torch.equal(model(x), want)
        (features,) = model.hidden_outputs(x)
        assert torch.equal(model[1:](features), want)
    # the registry builds the same keys and shapes; loaded with the state, the same function
    rebuilt = build("torchvision", input_shape=(channels, side, side), num_classes=6, **ckpt.model_spec.params)
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}
    rebuilt.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert torch.equal(rebuilt.eval()(x), want)
