import io
import os
import pickle

import pytest
import torch
import torch.nn.utils.prune  # noqa: F401  (registers the submodule)
from safetensors.torch import save as st_save
from torch import nn

from nngeo_core import checkpoint
from nngeo_core.errors import NNGeoError
from nngeo_core.models import build
from nngeo_core.specs import DataSpec, ModelSpec, RunSpec


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _bytes_of(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
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
    ck = checkpoint.load(_bytes_of(model.state_dict()))
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
        ck = checkpoint.load(_bytes_of(wrapped))
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
    ck = checkpoint.load(st_save(named))
    assert ck.model.num_classes == 2


def test_hostile_pickle_is_refused_and_never_executed(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    data = pickle.dumps({"weight": Evil()})
    with pytest.raises(NNGeoError) as err:
        checkpoint.load(data)
    assert not marker.exists()
    assert "\n" not in str(err.value)
    # the same inside a torch.save zip archive
    buf = io.BytesIO()
    torch.save({"a": torch.zeros(1), "evil": Evil()}, buf)
    with pytest.raises(NNGeoError, match="refusing to load"):
        checkpoint.load(buf.getvalue())
    assert not marker.exists()


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
    with pytest.raises(NNGeoError, match="wrong architecture"):
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
