import collections
import io
import os
import pickle
import pickletools
import struct
import zipfile

import numpy as np
import pytest
import torch
import torch.nn.utils.prune  # noqa: F401  (registers the submodule)
from safetensors.torch import save as st_save
from safetensors.torch import save_file as st_save_file
from torch import nn

from nngeo_core import checkpoint
from nngeo_core.errors import MAX_LINE, NNGeoError
from nngeo_core.models import build
from nngeo_core.specs import DataSpec, ModelSpec, RunSpec
from nngeo_core.testing.nets import custom_cnn


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _bytes_of(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _legacy_bytes_of(obj) -> bytes:
    """torch.save's pre-1.6 format: pickles back to back, no zip archive."""
    buf = io.BytesIO()
    torch.save(obj, buf, _use_new_zipfile_serialization=False)
    return buf.getvalue()


def test_round_trip_keeps_weights_specs_history_and_masks(tmp_path):
    torch.manual_seed(0)
    model = build("mlp", widths=(8, 4), activation="tanh")
    mask = {
        model_layer: torch.rand(model.get_submodule(model_layer).weight.shape) > 0.5
        for model_layer in [n for n, m in model.named_modules() if isinstance(m, nn.Linear)][:1]
    }
    run = RunSpec(data=DataSpec("xor"), model=ModelSpec("mlp", {"widths": (8, 4), "activation": "tanh"}))
    history = [{"epoch": 0, "test_acc": 0.5}, {"epoch": 1, "test_acc": 0.75}]
    path = checkpoint.save(
        tmp_path / "m.safetensors",
        model,
        model_spec=run.model,
        data_spec=run.data,
        run_spec=run,
        history=history,
        masks=mask,
    )
    ck = checkpoint.load(path)
    assert ck.source == "nngeo" and _same_weights(ck.model, model)
    assert ck.model_spec == run.model and ck.data_spec == run.data and ck.run_spec == run
    assert ck.history == history
    assert set(ck.masks) == set(mask) and all(torch.equal(ck.masks[k], mask[k]) for k in mask)
    assert ck.model.input_shape == model.input_shape


@pytest.mark.parametrize(
    "name,params",
    [("fcn_mnist", {}), ("lenet5", {}), ("cnn_mnist", {}), ("vgg11", {"width": 0.125}), ("resnet20", {"width": 0.5})],
)
def test_foreign_state_dict_of_a_zoo_model_is_recognised(name, params):
    torch.manual_seed(1)
    model = build(name, **params)
    # a Linear-only net's activation is not in its weights: it is given (ReLU, as the zoo model's)
    linear_only = not any(isinstance(m, nn.Conv2d) for m in model.modules())
    ck = checkpoint.load(_bytes_of(model.state_dict()), activation="relu" if linear_only else None)
    assert ck.source == "zoo-state-dict" and ck.model_spec.name == name
    assert _same_weights(ck.model, model)
    x = torch.randn(2, *model.input_shape)
    model.eval()
    ck.model.eval()
    assert torch.allclose(model(x), ck.model(x))


def test_foreign_linear_stack_is_inferred_and_computes_the_same_function():
    torch.manual_seed(2)
    foreign = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 3), nn.ReLU(), nn.Linear(3, 4))
    for wrapped in (
        foreign.state_dict(),
        {"state_dict": foreign.state_dict()},
        {f"module.{k}": v for k, v in foreign.state_dict().items()},
    ):
        ck = checkpoint.load(_bytes_of(wrapped), activation="relu")
        assert ck.source == "linear-stack" and ck.model.input_shape == (5,) and ck.model.num_classes == 4
        x = torch.randn(6, 5)
        assert torch.allclose(ck.model(x), foreign(x), atol=1e-6)
    # named layers (fc1, fc2, fc10) are ordered naturally, not alphabetically
    named = {
        "fc1.weight": torch.randn(7, 5),
        "fc1.bias": torch.randn(7),
        "fc2.weight": torch.randn(3, 7),
        "fc2.bias": torch.randn(3),
        "fc10.weight": torch.randn(2, 3),
        "fc10.bias": torch.randn(2),
    }
    ck = checkpoint.load(st_save(named), activation="relu")
    assert ck.model.num_classes == 2


# words of torch's own refusal that invite loading the file unsafely; a message must never carry them
UNSAFE_ADVICE = ("weights_only", "trust", "two options", "can still be loaded", "safe_globals", "\x1b")


class Evil:
    """Unpickling this runs ``touch MARKER``: the file must be refused before anything runs."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class Custom:
    def __init__(self):
        self.x = 1


def _refusal(data: bytes, **kwargs) -> str:
    with pytest.raises(NNGeoError) as err:
        checkpoint.load(data, **kwargs)
    msg = str(err.value)
    assert "\n" not in msg and not any(w in msg for w in UNSAFE_ADVICE), msg
    assert len(msg) <= MAX_LINE, msg  # whole on the one line the app shows (errors.one_line's limit)
    return msg


def _zip_with_data_pkl(pickled: bytes) -> bytes:
    """A torch.save archive of a real state dict whose data.pkl is replaced by ``pickled``."""
    src = zipfile.ZipFile(io.BytesIO(_bytes_of({"w": torch.zeros(2)})))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        for name in src.namelist():
            z.writestr(name, pickled if name.endswith("/data.pkl") else src.read(name))
    return out.getvalue()


def test_hostile_pickle_is_refused_named_and_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    # by hand, opcode by opcode: {"w": posix.system("touch MARKER")}, protocol 2 as torch.save writes
    command = f"touch {marker}".encode()
    by_hand = (
        b"\x80\x02}q\x00X\x01\x00\x00\x00w"
        + b"c" + os.system.__module__.encode() + b"\nsystem\n"
        + b"X" + struct.pack("<I", len(command)) + command
        + b"\x85Rs."
    )  # fmt: skip
    assert [op.name for op, _, _ in pickletools.genops(by_hand)][-4:] == ["TUPLE1", "REDUCE", "SETITEM", "STOP"]
    hostile = {
        "zip, data.pkl by hand": _zip_with_data_pkl(by_hand),
        "zip, torch.save": _bytes_of({"a": torch.zeros(1), "evil": Evil(marker)}),
        "legacy torch.save": _legacy_bytes_of({"a": torch.zeros(1), "evil": Evil(marker)}),
        "bare pickle, protocol 2": pickle.dumps({"weight": Evil(marker)}, protocol=2),
        "bare pickle, protocol 4 (STACK_GLOBAL)": pickle.dumps({"weight": Evil(marker)}, protocol=4),
    }
    for what, data in hostile.items():
        for name in (None, "model.pt", "model.safetensors"):  # the name never changes what the bytes are
            msg = _refusal(data, name=name)
            assert msg.startswith("refusing to load") and f"{os.system.__module__}.system (os.system)" in msg, what
            assert "only safe formats are accepted" in msg, what
    assert not marker.exists()


def test_a_pickled_class_or_whole_model_is_named():
    msg = _refusal(_bytes_of({"c": Custom(), "a": torch.zeros(2)}))
    assert f"{Custom.__module__}.Custom," in msg and "which is not a tensor" in msg
    msg = _refusal(_bytes_of(build("mlp")))  # torch.save(model) instead of its state_dict
    assert "torch.nn.modules.linear.Linear" in msg and "which are not tensors" in msg


def test_pickle_globals_are_read_from_the_opcodes():
    # the reference: pickletools' own disassembly, read as text
    for protocol in (2, 4, 5):
        data = pickle.dumps({"c": Custom(), "d": collections.OrderedDict(), "s": {1}}, protocol=protocol)
        listing = io.StringIO()
        pickletools.dis(data, out=listing)
        text = listing.getvalue()
        found = checkpoint.pickle_globals(data)
        assert f"{Custom.__module__}.Custom" in found and "collections.OrderedDict" in found
        for g in found:
            module, name = g.rsplit(".", 1)
            assert f"'{module} {name}'" in text or (f"'{module}'" in text and f"'{name}'" in text), g
    assert checkpoint.torch_refuses(f"{os.system.__module__}.system") and checkpoint.torch_refuses("builtins.eval")
    assert not checkpoint.torch_refuses("collections.OrderedDict")
    assert not checkpoint.torch_refuses("torch._utils._rebuild_tensor_v2")


def test_a_pickle_torch_cannot_read_is_refused_with_its_reason():
    # INST (opcode 105) is not in torch's safe unpickler; no global of it is refused by name
    msg = _refusal(b"\x80\x02(ibuiltins\nlist\n.")
    assert "Unsupported operand 105" in msg and "only safe formats are accepted" in msg
    # a pickle's first bytes, then garbage: damaged, not hostile
    msg = _refusal(b"\x80\x04garbage" * 20, name="model.pt")
    assert msg.startswith("corrupt or truncated PyTorch checkpoint: its pickle is malformed")


def _safetensors_with_header(header: bytes, body: bytes = b"") -> bytes:
    return struct.pack("<Q", len(header)) + header + body


@pytest.mark.parametrize(
    "data,expected",
    [
        (b"\x01\x02\x03", "3 bytes long, too short for a safetensors header"),
        (struct.pack("<Q", 0) + b"{}", "header length (the first 8 bytes) is 0"),
        (struct.pack("<Q", 500) + b'{"a": 1}', "header length of 500 bytes, beyond the 8 bytes that follow"),
        (_safetensors_with_header(b"{not json}"), "its header is not JSON"),
        (_safetensors_with_header(b"{\xff\xfe}"), "its header is not text"),
        (_safetensors_with_header(b"[1, 2]"), "its header is JSON but a list, not an object"),
        (_safetensors_with_header(b'{"w": {"dtype": "F32"}}'), "tensor 'w' lacks a valid dtype, shape or data_offsets"),
        (
            _safetensors_with_header(b'{"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}', b"\0" * 8),
            "tensor 'w' ends at byte 16 of the data but the file holds 8",
        ),
    ],
    ids=["short", "zero-length", "length-beyond-file", "not-json", "not-utf8", "not-object", "bad-entry", "cut-data"],
)
def test_a_broken_safetensors_header_is_diagnosed(data, expected, tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(data)
    with pytest.raises(NNGeoError) as err:
        checkpoint.load(path)
    msg = str(err.value)
    assert msg.startswith("not a valid safetensors file: ") and expected in msg and "\n" not in msg
    assert "Python objects" not in msg and "pickle" not in msg


def test_random_bytes_and_a_truncated_header_are_diagnosed(tmp_path):
    rng = np.random.default_rng(0)
    for seed in range(20):  # random bytes: never taken for pickled Python objects
        junk = np.random.default_rng(seed).bytes(300)
        path = tmp_path / "junk.safetensors"
        path.write_bytes(junk)
        n = struct.unpack("<Q", junk[:8])[0]
        with pytest.raises(NNGeoError, match="^not a valid safetensors file: ") as err:
            checkpoint.load(path)
        assert f"header length of {n:,} bytes, beyond the 292 bytes that follow" in str(err.value)
        with pytest.raises(NNGeoError, match="^not a checkpoint: not safetensors .* and not a PyTorch file"):
            checkpoint.load(junk)  # no name to go by: both formats are ruled out
    torch.manual_seed(0)
    good = checkpoint.to_bytes(build("mlp"))
    n = struct.unpack("<Q", good[:8])[0]
    cut = int(rng.integers(9, 8 + n))  # inside the JSON header
    with pytest.raises(NNGeoError) as err:
        checkpoint.load(good[:cut], name="model.safetensors")
    assert f"header length of {n:,} bytes, beyond the {cut - 8:,} bytes that follow" in str(err.value)
    with pytest.raises(NNGeoError, match="is cut short"):  # read_header sees only what the store returns
        checkpoint.read_header(lambda start, end: good[:cut][start:end])


@pytest.mark.parametrize("num_classes", [10, 3])
def test_the_container_never_changes_the_model(num_classes, tmp_path):
    torch.manual_seed(3)
    model = build("fcn_mnist", num_classes=num_classes).eval()
    state = model.state_dict()
    files = {"pt": tmp_path / "m.pt", "safetensors": tmp_path / "m.safetensors", "legacy": tmp_path / "m.pth"}
    files["pt"].write_bytes(_bytes_of(state))
    st_save_file(state, str(files["safetensors"]))
    files["legacy"].write_bytes(_legacy_bytes_of(state))
    rng_before = torch.get_rng_state()
    loaded = {what: checkpoint.load(path, activation="relu") for what, path in files.items()}
    assert torch.equal(torch.get_rng_state(), rng_before)  # recognising builds candidates off the caller's RNG
    x = torch.randn(5, 1, 28, 28)
    with torch.no_grad():
        want = model(x)
    for what, ck in loaded.items():
        assert ck.source == "zoo-state-dict" and ck.model_spec.name == "fcn_mnist", what
        assert ck.model.num_classes == num_classes and _same_weights(ck.model, model), what
        with torch.no_grad():
            assert torch.equal(ck.model.eval()(x), want), what


def test_recognition_orders_layers_naturally():
    # one function for every container: keys in any order give the same model
    torch.manual_seed(4)
    state = build("fcn_mnist", num_classes=3).state_dict()
    shuffled = dict(sorted(state.items()))  # "11.weight" before "3.weight"
    ck = checkpoint.recognise(dict(reversed(list(shuffled.items()))), activation="relu")
    assert ck.model_spec.name == "fcn_mnist" and ck.model.num_classes == 3
    assert list(ck.model.state_dict()) == list(state)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "flip-header"])
def test_corrupt_files_get_a_clear_error(damage, tmp_path):
    torch.manual_seed(0)
    good = checkpoint.to_bytes(build("mlp"))
    bad = {
        "truncate": good[: len(good) // 2],
        "garbage": os.urandom(300),
        "empty": b"",
        "flip-header": good[:8] + b"{" + b"\xff" * 20 + good[29:],
    }[damage]
    with pytest.raises(NNGeoError) as err:
        checkpoint.load(bad)
    assert "\n" not in str(err.value)
    tz = _bytes_of(build("mlp").state_dict())
    with pytest.raises(NNGeoError, match="corrupt|truncated|unreadable"):
        checkpoint.load(tz[: len(tz) - 40])


def test_wrong_architecture_is_named():
    with pytest.raises(NNGeoError, match="wrong architecture"):
        checkpoint.load(_bytes_of({"a.weight": torch.randn(4, 3), "b.weight": torch.randn(2, 5)}))
    with pytest.raises(NNGeoError, match="unrecognised architecture"):
        checkpoint.load(_bytes_of({"conv.weight": torch.randn(4, 3, 3, 3)}))
    with pytest.raises(NNGeoError, match="no state_dict"):
        checkpoint.load(_bytes_of([1, 2, 3]))
    # our format with a tensor of the wrong shape
    torch.manual_seed(0)
    m = build("mlp", widths=(8,))
    data = checkpoint.to_bytes(m)
    import json
    import struct

    from safetensors.torch import load as st_load

    tensors = st_load(data)
    n = struct.unpack("<Q", data[:8])[0]
    meta = json.loads(data[8 : 8 + n])["__metadata__"]
    meta["model_spec"] = json.dumps({"__type__": "ModelSpec", "name": "mlp", "params": {"widths": [9]}})
    with pytest.raises(NNGeoError, match="wrong architecture"):
        checkpoint.load(st_save(tensors, metadata=meta))


def test_nan_weights_are_reported():
    torch.manual_seed(0)
    m = build("mlp")
    with torch.no_grad():
        next(m.parameters())[0, 0] = float("nan")
    data = checkpoint.to_bytes(m)
    with pytest.raises(NNGeoError, match="NaN"):
        checkpoint.load(data)
    assert torch.isnan(next(checkpoint.load(data, allow_nonfinite=True).model.parameters())).any()


def test_missing_file(tmp_path):
    with pytest.raises(NNGeoError, match="no checkpoint file"):
        checkpoint.load(tmp_path / "nope.pt")


def test_pruned_parametrisation_is_folded():
    torch.manual_seed(0)
    m = build("mlp", widths=(6,))
    lin = [mod for mod in m.modules() if isinstance(mod, nn.Linear)][0]
    mask = torch.rand(lin.weight.shape) > 0.5
    torch.nn.utils.prune.custom_from_mask(lin, "weight", mask)
    sd = checkpoint.effective_state_dict(m)
    assert not any(k.endswith(("_orig", "_mask")) for k in sd)
    name = [k for k in sd if k.endswith("weight")][0]
    assert torch.equal(sd[name] == 0, ~mask | (lin.weight_orig == 0))


def test_header_gives_shapes_and_dataset_without_loading_tensors():
    model = build("mlp", widths=(8, 4))
    data = checkpoint.to_bytes(model, model_spec=ModelSpec("mlp", {"widths": (8, 4)}), data_spec=DataSpec("moons"))
    reads = []

    def read_range(start, end):
        reads.append((start, end))
        return data[start:end]

    head = checkpoint.read_header(read_range)
    assert dict(head.shapes) == {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert head.data_spec == DataSpec("moons")
    assert max(end for _, end in reads) <= len(data) - sum(v.numel() * 4 for v in model.state_dict().values())
    for damaged in (data[:5], b"\x08" + b"\x00" * 7 + b"not json", st_save({"w": torch.zeros(2)})):
        with pytest.raises(NNGeoError, match="checkpoint header|not an nngeo checkpoint"):
            checkpoint.read_header(lambda start, end, damaged=damaged: damaged[start:end])


# -- the user's choices: activation, architecture, input shape; ONNX ------------------------------
def _plain_mlp(act: type[nn.Module], sizes=(784, 100, 100, 100, 100, 100, 10), seed=3) -> nn.Sequential:
    """A plain torch MLP (not from our zoo) whose keys and shapes are fcn_mnist's."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = [nn.Flatten()]
    for i, (a, b) in enumerate(zip(sizes, sizes[1:], strict=False)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(act())
    return nn.Sequential(*layers).eval()


def test_a_tanh_mlp_with_fcn_mnist_shapes_is_asked_for_then_loaded_with_its_activation(tmp_path):
    from nngeo_core.models import ACTIVATIONS
    from nngeo_core.models.foreign import AmbiguousArchitecture

    reference = _plain_mlp(nn.Tanh)
    data = _bytes_of(reference.state_dict())
    with pytest.raises(AmbiguousArchitecture) as err:  # never loaded as fcn_mnist's ReLU
        checkpoint.load(data)
    assert err.value.option == "activation" and err.value.candidates == tuple(ACTIVATIONS)
    msg = str(err.value)
    assert "\n" not in msg and len(msg) <= MAX_LINE and "--activation" in msg and "tanh" in msg
    ck = checkpoint.load(data, activation="tanh")
    assert ck.model_spec == ModelSpec("mlp", {"widths": (100,) * 5, "activation": "tanh", "bias": True})
    x = torch.randn(6, 1, 28, 28)
    with torch.no_grad():
        want = reference(x)
        assert torch.equal(ck.model(x), want)
        # the same weights under ReLU compute another function: the choice matters
        assert not torch.allclose(checkpoint.load(data, activation="relu").model(x), want)
    # our checkpoint records the spec: it reloads with no choice, the same logits
    again = checkpoint.load(checkpoint.save(tmp_path / "m.safetensors", ck.model, model_spec=ck.model_spec))
    with torch.no_grad():
        assert torch.equal(again.model(x), want)
    with pytest.raises(NNGeoError, match="unknown activation"):
        checkpoint.load(data, activation="swish")


def test_a_linear_stack_with_hidden_layers_is_ambiguous_one_without_is_not():
    from nngeo_core.models.foreign import AmbiguousArchitecture

    stack = _plain_mlp(nn.GELU, sizes=(5, 7, 3))
    with pytest.raises(AmbiguousArchitecture, match="Linear stack 5-7-3"):
        checkpoint.recognise(stack.state_dict())
    ck = checkpoint.recognise(stack.state_dict(), activation="gelu")
    x = torch.randn(4, 5)
    with torch.no_grad():
        assert torch.allclose(ck.model(x), stack(x), atol=1e-6)
    single = nn.Linear(5, 3)  # no hidden layer: no activation is applied anywhere
    ck = checkpoint.recognise(single.state_dict())
    with torch.no_grad():
        assert torch.allclose(ck.model(x), single(x), atol=1e-6)


def test_a_conv_zoo_model_keeps_relu_and_an_explicit_other_activation_is_refused():
    torch.manual_seed(0)
    state = build("lenet5").state_dict()
    assert checkpoint.recognise(state).model_spec.name == "lenet5"
    with pytest.raises(NNGeoError, match="fixed to relu"):
        checkpoint.recognise(state, activation="tanh")


def test_an_explicit_zoo_arch_is_used_and_a_misfit_says_why():
    torch.manual_seed(0)
    state = build("cnn_mnist").state_dict()
    assert checkpoint.recognise(state, arch="cnn_mnist").model_spec.name == "cnn_mnist"
    with pytest.raises(NNGeoError, match="wrong architecture for zoo model 'lenet5'"):
        checkpoint.recognise(state, arch="lenet5")


def _onnx_of(model: nn.Module, shape, dynamic_batch=True) -> bytes:
    import warnings

    buf = io.BytesIO()
    axes = {"x": {0: "n"}, "y": {0: "n"}} if dynamic_batch else None
    with warnings.catch_warnings():  # the TorchScript exporter is deprecated but needs no onnxscript
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (torch.zeros(1, *shape),),
            buf,
            dynamo=False,
            input_names=["x"],
            output_names=["y"],
            dynamic_axes=axes,
        )
    return buf.getvalue()


def test_a_custom_cnn_state_dict_says_what_it_holds_and_what_came_closest():
    with pytest.raises(NNGeoError) as err:
        checkpoint.load(_bytes_of(custom_cnn(28, channels=1, widths=(4, 8)).state_dict()))
    msg = str(err.value)
    assert "\n" not in msg and len(msg) <= MAX_LINE, msg
    assert msg.startswith("unrecognised architecture") and "ONNX" in msg
    assert "holds 2 conv, 1 linear (6 tensors)" in msg
    # cnn_mnist (conv, conv, linear, numbered like an nn.Sequential) is the closest zoo model
    assert "closest: zoo cnn_mnist: " in msg and "0.weight 4×1×3×3 vs 32×1×3×3" in msg


def test_the_same_cnn_as_onnx_loads_reproduces_its_outputs_and_rebuilds_from_our_checkpoint(tmp_path):
    import onnxruntime

    cnn = custom_cnn(28, channels=1, widths=(4, 8))
    data = _onnx_of(cnn, (1, 28, 28))
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        want = cnn(x)
    (runtime,) = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, {"x": x.numpy()})
    for ck in (checkpoint.load(data, name="cnn.onnx"), checkpoint.load(data)):  # by name, or by its bytes
        assert ck.source == "onnx" and ck.model.input_shape == (1, 28, 28) and ck.model.num_classes == 10
        with torch.no_grad():
            got = ck.model(x)
        assert torch.allclose(got, want, atol=1e-5)
        np.testing.assert_allclose(got.numpy(), runtime, rtol=1e-5, atol=1e-5)
    path = checkpoint.save(tmp_path / "cnn.safetensors", ck.model, model_spec=ck.model_spec, onnx=ck.onnx)
    again = checkpoint.load(path)
    assert again.model_spec == ck.model_spec and again.onnx == data
    with torch.no_grad():
        assert torch.equal(again.model(x), got)
    # the loaded model carries its file, so a copy of it (as pruning makes) saves without being told
    import copy

    assert checkpoint.load(checkpoint.to_bytes(copy.deepcopy(again.model))).onnx == data
    with pytest.raises(NNGeoError, match="needs its ONNX file"):
        checkpoint.to_bytes(ck.model[0], model_spec=ck.model_spec)
    with pytest.raises(NNGeoError, match="do not apply"):
        checkpoint.load(data, activation="tanh")


def test_an_onnx_file_with_open_dimensions_needs_an_input_shape():
    from onnx import TensorProto, helper

    node = helper.make_node("Relu", ["x"], ["y"])
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", "d"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", "d"])],
    )
    data = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString()
    with pytest.raises(NNGeoError, match="input shape is not fixed"):
        checkpoint.load(data, name="relu.onnx")
    ck = checkpoint.load(data, name="relu.onnx", input_shape=(4,))
    assert ck.model.num_classes == 4 and torch.equal(
        ck.model(torch.tensor([[-1.0, 2.0, -3.0, 4.0]])), torch.tensor([[0.0, 2.0, 0.0, 4.0]])
    )


def test_an_onnx_operator_without_a_converter_and_a_pt2_are_refused():
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Hardmax", ["x"], ["y"], axis=1)],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    data = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString()
    with pytest.raises(NNGeoError, match="no converter for Hardmax"):
        checkpoint.load(data, name="m.onnx")
    with pytest.raises(NNGeoError, match="refusing to load a torch.export program"):
        checkpoint.load(b"PK\x03\x04 whatever", name="model.pt2")


def test_a_torchvision_state_dict_loads_with_the_chosen_input_shape_and_rebuilds(tmp_path):
    import torchvision

    torch.manual_seed(0)
    original = torchvision.models.resnet18(num_classes=10).eval()
    data = _bytes_of(original.state_dict())
    ck = checkpoint.load(data, input_shape=(3, 32, 32))
    assert ck.source == "torchvision" and ck.model_spec == ModelSpec(
        "torchvision", {"arch": "resnet18", "aux_logits": True}
    )
    assert ck.model.input_shape == (3, 32, 32) and ck.model.num_classes == 10
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        want = original(x)
        assert torch.equal(ck.model.eval()(x), want)
    again = checkpoint.load(checkpoint.save(tmp_path / "r.safetensors", ck.model, model_spec=ck.model_spec))
    with torch.no_grad():
        assert torch.equal(again.model.eval()(x), want)
    assert "assumed" in checkpoint.load(data).meta["inferred"]  # no choice: 3×224×224, said so
    with pytest.raises(NNGeoError, match="3-channel images"):
        checkpoint.load(data, input_shape=(1, 32, 32))
    with pytest.raises(NNGeoError, match="activations built in"):
        checkpoint.load(data, activation="tanh")
    assert checkpoint.load(data, arch="resnet18", input_shape=(3, 32, 32)).model_spec.params["arch"] == "resnet18"
    with pytest.raises(NNGeoError, match="do not fit torchvision's resnet34"):
        checkpoint.load(data, arch="resnet34")
