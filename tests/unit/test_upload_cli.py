"""`nngeo upload FILE`: the Upload page's validation and storing, from the command line."""

from __future__ import annotations

import io
import json
import os

import numpy as np
import torch

from nngeo_core import checkpoint
from nngeo_core.cli import main
from nngeo_core.models import build
from nngeo_core.runs import load_run
from nngeo_core.specs import DataSpec, ModelSpec
from nngeo_core.store import default_store
from nngeo_core.store.queries import data_spec_of, model_runs
from nngeo_core.uploads import store_upload, upload_key


def _mlp_bytes(widths=(5,), seed=0) -> bytes:
    torch.manual_seed(seed)
    model = build("mlp", widths=widths)
    return checkpoint.to_bytes(model, model_spec=ModelSpec("mlp", {"widths": widths}), data_spec=DataSpec("xor"))


def test_upload_prints_the_key_the_store_finds(tmp_path, capsys):
    data = _mlp_bytes()
    path = tmp_path / "model.safetensors"
    path.write_bytes(data)
    assert main(["upload", str(path)]) == 0
    out = capsys.readouterr()
    key = out.out.strip()
    assert key == upload_key(data, DataSpec("xor"))  # the key the Upload page gives the same bytes
    assert "stored" in out.err and "\n" not in out.err.strip()
    store = default_store()
    entry = store.entry(key)
    assert entry["kind"] == "upload" and entry["label"] == "mlp from model.safetensors"
    assert key in set(model_runs(store)["key"])  # offered by the pages' run pickers
    assert load_run(key, store=store).data_spec == DataSpec("xor")

    # the same bytes again, under another name: the same key, nothing replaced
    assert main(["upload", str(path), "--name", "other.pt", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["key"] == key and again["created"] is False and again["model"] == "mlp"
    assert store.keys() == [key] and store.entry(key)["label"] == "mlp from model.safetensors"


def test_upload_stores_what_the_upload_page_stores(tmp_path, capsys):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(2, 7), torch.nn.ReLU(), torch.nn.Linear(7, 2))
    buf = io.BytesIO()
    torch.save(net.state_dict(), buf)
    path = tmp_path / "net.pt"
    path.write_bytes(buf.getvalue())
    assert main(["upload", str(path), "--data", "xor", "--activation", "relu", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    store = default_store()
    assert info["created"] is True and info["store"] == store.root
    assert data_spec_of(store, info["key"]) == DataSpec("xor")
    page = store_upload(buf.getvalue(), name="net.pt", store=store, data_spec=DataSpec("xor"), activation="relu")
    assert page.key == info["key"] and not page.created and page.source == info["source"]


def test_a_corrupt_file_is_a_one_line_error_and_stores_nothing(tmp_path, capsys):
    data = _mlp_bytes()
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(data[: len(data) // 2])
    assert main(["upload", str(bad)]) == 2
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err.startswith("nngeo: error: ") and out.err.count("\n") == 1
    assert default_store().keys() == []


def test_a_dataset_that_does_not_fit_and_a_missing_file_are_one_line_errors(tmp_path, capsys):
    path = tmp_path / "model.safetensors"
    path.write_bytes(_mlp_bytes())
    assert main(["upload", str(path), "--data", "digits"]) == 2
    err = capsys.readouterr().err
    assert "inputs of shape" in err and err.count("\n") == 1
    assert main(["upload", str(tmp_path / "missing.pt")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nngeo: error: ") and "missing.pt" in err and err.count("\n") == 1
    assert default_store().keys() == []


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_hostile_or_random_file_is_named_for_what_it_is(tmp_path, capsys):
    marker = tmp_path / "pwned"
    hostile = tmp_path / "model.pt"
    buf = io.BytesIO()
    torch.save({"w": torch.zeros(2), "x": _RunsCode(marker)}, buf)
    hostile.write_bytes(buf.getvalue())
    assert main(["upload", str(hostile)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nngeo: error: refusing to load: the file's pickle references ") and err.count("\n") == 1
    assert "(os.system)" in err and "weights_only" not in err and not marker.exists()
    # random bytes: the file's name says which format it claims, and the message diagnoses that one
    junk = tmp_path / "model.safetensors"
    junk.write_bytes(np.random.default_rng(1).bytes(500))
    assert main(["upload", str(junk)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nngeo: error: not a valid safetensors file: its first 8 bytes give a header length")
    assert default_store().keys() == []


# -- foreign networks: the user's choices, torchvision, ONNX, and what stores nothing ----------------
def _torch_file(tmp_path, state, name="net.pt"):
    path = tmp_path / name
    buf = io.BytesIO()
    torch.save(state, buf)
    path.write_bytes(buf.getvalue())
    return path


def _tanh_mlp() -> torch.nn.Sequential:
    """A plain torch MLP whose keys and shapes are fcn_mnist's, with tanh between its layers."""
    torch.manual_seed(5)
    sizes = [784, 100, 100, 100, 100, 100, 10]
    layers: list[torch.nn.Module] = [torch.nn.Flatten()]
    for i, (a, b) in enumerate(zip(sizes, sizes[1:], strict=False)):
        layers.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(torch.nn.Tanh())
    return torch.nn.Sequential(*layers).eval()


def test_an_ambiguous_activation_is_one_line_exit_2_and_each_choice_its_own_key(tmp_path, capsys):
    net = _tanh_mlp()
    path = _torch_file(tmp_path, net.state_dict())
    assert main(["upload", str(path)]) == 2
    out = capsys.readouterr()
    assert out.out == "" and out.err.count("\n") == 1
    assert out.err.startswith("nngeo: error: ambiguous: ") and "--activation NAME" in out.err
    assert "relu, tanh, gelu, erf, sigmoid, softplus" in out.err
    assert default_store().keys() == []
    keys: dict[str, set[str]] = {}
    for act in ("tanh", "tanh", "relu"):
        assert main(["upload", str(path), "--activation", act]) == 0
        keys.setdefault(act, set()).add(capsys.readouterr().out.strip())
    assert len(keys["tanh"]) == 1 and keys["tanh"] != keys["relu"]  # same choice, same key; another, another
    (key,) = keys["tanh"]
    assert key == upload_key(path.read_bytes(), activation="tanh")
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(load_run(key).model(x), net(x))
    assert len(default_store().keys()) == 2


# a fresh process (as a worker is) rebuilds each stored upload from the store alone
FRESH = """
import sys, torch
from nngeo_core.runs import load_run
x = torch.load(sys.argv[1], weights_only=True)  # a dict of tensors: nothing else is unpickled
outs = {}
for key in sys.argv[2:]:
    model = load_run(key).model.eval()
    with torch.no_grad():
        outs[key] = model(x[key])
torch.save(outs, sys.argv[1])
"""


def test_torchvision_and_onnx_uploads_rebuild_in_a_fresh_process(tmp_path, capsys):
    import subprocess
    import sys
    import warnings

    import torchvision

    torch.manual_seed(0)
    resnet = torchvision.models.resnet18(num_classes=10).eval()
    with torch.no_grad():  # non-trivial running statistics: a model that ignored them would differ
        for m in resnet.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    rpath = _torch_file(tmp_path, resnet.state_dict(), "resnet18.pt")
    assert main(["upload", str(rpath), "--input-shape", "3,32,32", "--json"]) == 0
    rinfo = json.loads(capsys.readouterr().out)
    assert rinfo["model"] == "torchvision" and rinfo["source"] == "torchvision" and rinfo["created"]
    assert rinfo["key"] == upload_key(rpath.read_bytes(), input_shape=(3, 32, 32))
    assert default_store().entry(rinfo["key"])["label"] == "resnet18 from resnet18.pt"

    cnn = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(4, 8, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(8 * 14 * 14, 10),
    ).eval()
    # its state_dict fits no architecture: named, nothing stored
    assert main(["upload", str(_torch_file(tmp_path, cnn.state_dict(), "cnn.pt"))]) == 2
    err = capsys.readouterr().err
    assert "unrecognised architecture" in err and "closest: zoo cnn_mnist" in err and err.count("\n") == 1
    # its ONNX export is the route for it
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(cnn, (torch.zeros(1, 1, 28, 28),), buf, dynamo=False, input_names=["x"], output_names=["y"])
    opath = tmp_path / "cnn.onnx"
    opath.write_bytes(buf.getvalue())
    assert main(["upload", str(opath), "--json"]) == 0
    oinfo = json.loads(capsys.readouterr().out)
    assert oinfo["model"] == "onnx" and oinfo["source"] == "onnx"
    assert set(default_store().keys()) == {rinfo["key"], oinfo["key"]}

    inputs = {rinfo["key"]: torch.randn(1, 3, 32, 32), oinfo["key"]: torch.randn(1, 1, 28, 28)}
    io_path = tmp_path / "io.pt"
    torch.save(inputs, io_path)
    subprocess.run([sys.executable, "-c", FRESH, str(io_path), *inputs], check=True, timeout=300)
    outs = torch.load(io_path, weights_only=True)
    with torch.no_grad():
        assert torch.equal(outs[rinfo["key"]], resnet(inputs[rinfo["key"]]))
        assert torch.allclose(outs[oinfo["key"]], cnn(inputs[oinfo["key"]]), atol=1e-5)


def test_bad_foreign_files_store_nothing(tmp_path, capsys):
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Hardmax", ["x"], ["y"], axis=1)],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    unsupported = tmp_path / "hardmax.onnx"
    unsupported.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString())
    big = _torch_file(tmp_path, {"w.weight": torch.zeros(600, 600)}, "big.pt")  # 1.4 MB
    pt2 = tmp_path / "model.pt2"
    pt2.write_bytes(b"PK\x03\x04 not even a zip")
    tanh = _torch_file(tmp_path, _tanh_mlp().state_dict(), "tanh.pt")
    cases = [
        ([str(unsupported)], "no converter for Hardmax (opset 13)"),
        ([str(big), "--max-mb", "1"], "the file is 1.4 MB; the limit is 1 MB"),
        ([str(pt2)], "refusing to load a torch.export program"),
        ([str(tanh)], "--activation NAME"),
        ([str(tanh), "--activation", "tanh", "--input-shape", "3,x"], "input shape '3,x'"),
    ]
    for args, expected in cases:
        assert main(["upload", *args]) == 2
        out = capsys.readouterr()
        assert out.out == "" and out.err.count("\n") == 1 and expected in out.err, out.err
    assert default_store().keys() == []


def test_the_datasets_image_shape_is_the_default_input_shape_of_an_onnx_file_with_open_sizes(tmp_path, capsys):
    import warnings

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 3, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(3, 10),
    ).eval()
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            (torch.zeros(1, 1, 8, 8),),
            buf,
            dynamo=False,
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": {0: "n", 2: "h", 3: "w"}, "y": {0: "n"}},
        )
    path = tmp_path / "open.onnx"
    path.write_bytes(buf.getvalue())
    assert main(["upload", str(path)]) == 2
    assert "input shape is not fixed" in capsys.readouterr().err
    digits = DataSpec("digits")  # 1×8×8 images, 10 classes
    assert main(["upload", str(path), "--data", "digits"]) == 0
    key = capsys.readouterr().out.strip()
    assert key == upload_key(path.read_bytes(), digits)  # the data's shape is no choice of the user's
    # the same shape typed in is the same upload; another shape is another
    assert main(["upload", str(path), "--data", "digits", "--input-shape", "1,8,8"]) == 0
    assert capsys.readouterr().out.strip() == key
    model = load_run(key).model
    assert model.input_shape == (1, 8, 8)
    x = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(model(x), net(x), atol=1e-6)
    assert main(["upload", str(path), "--input-shape", "1,12,12"]) == 0
    other = capsys.readouterr().out.strip()
    assert other != key and load_run(other).model.input_shape == (1, 12, 12)
