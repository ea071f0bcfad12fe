"""timm models (optional, named ``timm:NAME``): the registered ``timm`` model, an upload stored as
it, rebuilt in a fresh process, pruned and exported; every reference is plain timm
(``timm.create_model`` + ``load_state_dict``). Small models only (resnet18 / mobilenetv3_small_050 /
dla46_c at 32x32 or digits' 8x8); never pretrained weights (nothing is downloaded)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import timm  # a test dependency: when missing these tests fail, never skip
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

from nngeo_core import checkpoint
from nngeo_core.cli import main
from nngeo_core.errors import NNGeoError
from nngeo_core.export import export_model
from nngeo_core.models import build, model_info, prunable_layers
from nngeo_core.runs import load_run
from nngeo_core.store import default_store


def one_line(exc: BaseException | str) -> str:
    text = str(exc).strip()
    assert text and "\n" not in text and len(text) <= 300, text
    return text


def plain_timm(name: str, seed: int = 0, **kwargs) -> nn.Module:
    """timm's own model, fresh, with non-trivial running statistics (a model that ignored the
    loaded ones would differ)."""
    torch.manual_seed(seed)
    model = timm.create_model(name, pretrained=False, **kwargs)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    return model.eval()


def safetensors_file(tmp_path, model: nn.Module, name: str):
    path = tmp_path / name
    path.write_bytes(st_save({k: v.contiguous() for k, v in model.state_dict().items()}))
    return path


# -- the registered model ---------------------------------------------------------------------------
@pytest.mark.parametrize("arch", ["resnet18", "mobilenetv3_small_050", "dla46_c"])  # dla46_c: a 1x1 conv head
def test_the_registered_model_is_timms_split_into_body_and_head(arch):
    torch.manual_seed(0)
    ours = build("timm", arch=arch, input_shape=(3, 32, 32), num_classes=10).eval()
    torch.manual_seed(0)  # the same seed: the same initialisation
    reference = timm.create_model(arch, pretrained=False, num_classes=10).eval()
    assert ours.zoo_name == "timm" and ours.zoo_params == {"arch": arch}
    assert ours.hidden_activation_indices == [0]
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(ours(x), reference(x))
        # the representation is timm's pre-logit features
        (features,) = ours.hidden_outputs(x)
        pre_logits = reference.forward_head(reference.forward_features(x), pre_logits=True)
        assert torch.equal(features.flatten(1), pre_logits.flatten(1))
    # the classifier timm's config names is the last prunable layer, with one output per class
    last = prunable_layers(ours)[-1]
    classifier = reference.get_submodule(reference.pretrained_cfg["classifier"])
    assert last.name == "1.head" and last.weight_shape == tuple(classifier.weight.shape)


def test_the_registered_model_takes_the_inputs_channels_and_refuses_bad_names():
    one = build("timm", arch="timm:mobilenetv3_small_050", input_shape=(1, 16, 16), num_classes=4)
    assert one.zoo_params == {"arch": "mobilenetv3_small_050"}  # the prefix is the upload's spelling
    assert one(torch.zeros(2, 1, 16, 16)).shape == (2, 4)
    with pytest.raises(NNGeoError, match="no_such_net") as err:
        build("timm", arch="no_such_net", input_shape=(3, 32, 32))
    one_line(err.value)
    for bad in ("", 3, None):
        with pytest.raises(NNGeoError, match="arch") as err:
            build("timm", arch=bad, input_shape=(3, 32, 32))
        one_line(err.value)
    assert model_info("timm")["params"] == {"arch": "resnet18"}


def test_without_timm_building_one_is_a_one_line_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)  # importing it now raises ImportError
    with pytest.raises(NNGeoError, match="timm is not installed") as err:
        build("timm", arch="resnet18", input_shape=(3, 32, 32))
    one_line(err.value)


# -- an upload, stored as the registered model --------------------------------------------------------
FRESH = """
import sys, torch
from nngeo_core.runs import load_run
x = torch.load(sys.argv[1], weights_only=True)  # a dict of tensors: nothing else is unpickled
model = load_run(sys.argv[2]).model.eval()
with torch.no_grad():
    torch.save({"y": model(x["x"]), "spec": torch.tensor(list(model.input_shape))}, sys.argv[1])
"""


def test_an_upload_named_timm_is_stored_as_the_timm_model_and_rebuilds_in_a_fresh_process(tmp_path, capsys):
    original = plain_timm("resnet18", num_classes=10, in_chans=1)  # digits: 1×8×8, 10 classes
    path = safetensors_file(tmp_path, original, "weights.safetensors")
    assert main(["upload", str(path), "--arch", "timm:resnet18", "--data", "digits", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["model"] == "timm" and info["source"] == "timm" and info["created"]
    assert info["note"] == "timm resnet18, 10 classes, input 1×8×8"
    store = default_store()
    assert store.entry(info["key"])["label"] == "resnet18 from weights.safetensors"
    stored = checkpoint.load(store.read_artifact(info["key"], "checkpoint.safetensors"))
    assert stored.model_spec.name == "timm" and dict(stored.model_spec.params) == {"arch": "resnet18"}

    x = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        want = original(x)
        assert torch.equal(load_run(info["key"], store=store).model.eval()(x), want)
    io_path = tmp_path / "io.pt"
    torch.save({"x": x}, io_path)
    subprocess.run([sys.executable, "-c", FRESH, str(io_path), info["key"]], check=True, timeout=300)
    out = torch.load(io_path, weights_only=True)
    assert torch.equal(out["y"], want) and out["spec"].tolist() == [1, 8, 8]


def test_unknown_names_and_weights_that_do_not_fit_store_nothing(tmp_path, capsys):
    path = safetensors_file(tmp_path, plain_timm("resnet18", num_classes=10), "r18.safetensors")
    cases = [
        (["--arch", "timm:no_such_net"], "no_such_net"),
        (["--arch", "timm:resnet34"], "do not fit timm:resnet34"),  # resnet18's weights
        (["--arch", "timm:mobilenetv3_small_050"], "do not fit"),
        (["--arch", "timm"], "timm:NAME"),
        (["--arch", "timm:resnet18", "--activation", "tanh"], "activations built in"),
    ]
    for args, message in cases:
        assert main(["upload", str(path), *args, "--input-shape", "3,32,32"]) == 2, args
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, (args, err)
    assert default_store().keys() == []


# -- pruned and exported ---------------------------------------------------------------------------
def test_a_stored_timm_model_exports_with_timms_own_keys_and_prunes(tmp_path, capsys):
    from nngeo_core.export import level_artifact
    from nngeo_core.pruning import run_sweep
    from nngeo_core.pruning.cli import source_sweeps

    original = plain_timm("mobilenetv3_small_050", num_classes=10, in_chans=1)
    path = safetensors_file(tmp_path, original, "mnv3.safetensors")
    assert main(["upload", str(path), "--arch", "timm:mobilenetv3_small_050", "--data", "digits", "--json"]) == 0
    key = json.loads(capsys.readouterr().out)["key"]
    store = default_store()

    # the export loads strictly into a plain timm model and computes what the uploaded weights do
    exported = st_load(export_model(store, key, fmt="safetensors"))
    fresh = timm.create_model("mobilenetv3_small_050", pretrained=False, num_classes=10, in_chans=1).eval()
    fresh.load_state_dict(exported, strict=True)
    x = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert torch.equal(fresh(x), original(x))

    # global magnitude pruning at 0.5 of the upload as it is: half its prunable weights, the smallest
    (spec,) = source_sweeps(store, key, ["magnitude"], {}, sparsities=(0.5,), seeds=(0,), finetune_epochs=0)
    sweep = run_sweep(spec, store=store)
    level = checkpoint.load(store.read_artifact(sweep, level_artifact(0, 0)))
    layers = {li.name: li for li in prunable_layers(level.model)}
    assert set(level.masks) == set(layers)
    dense = load_run(key, store=store).model
    magnitudes = {n: dense.get_parameter(f"{n}.weight").detach().abs() for n in level.masks}
    kept = torch.cat([magnitudes[n][m].flatten() for n, m in level.masks.items()])
    gone = torch.cat([magnitudes[n][~m].flatten() for n, m in level.masks.items()])
    total = sum(li.n_weights for li in layers.values())
    assert abs(gone.numel() - total / 2) <= 1 and kept.numel() + gone.numel() == total
    assert float(gone.max()) <= float(kept.min())
