"""The Upload page with foreign files, run by Streamlit's AppTest (the real app.py, in-process): an
ambiguous file is asked about (a select box of the candidates) and stored with the choice; a
torchvision net with the input shape typed in; an ONNX file; and the user's own dataset, shown and
checked against the network stored last. Each stored model is reloaded from the store and compared
with the plain torch network it came from."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import torch
from streamlit.testing.v1 import AppTest
from torch import nn

APP = str(Path(__file__).resolve().parents[2] / "app.py")


def open_upload_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    at.switch_page("pages/upload.py").run()
    no_exception(at)
    return at


def no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def torch_bytes(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def tanh_mlp() -> nn.Sequential:
    """A plain torch MLP whose keys and shapes are fcn_mnist's, with tanh between its layers."""
    torch.manual_seed(7)
    sizes = [784, 100, 100, 100, 100, 100, 10]
    layers: list[nn.Module] = [nn.Flatten()]
    for i, (a, b) in enumerate(zip(sizes, sizes[1:], strict=False)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers).eval()


def upload(at: AppTest, name: str, data: bytes) -> None:
    at.file_uploader(key="upload-file").set_value((name, data, "application/octet-stream")).run()
    at.button(key="upload-store").click().run()
    no_exception(at)


def npz_bytes(n_classes: int, shape=(1, 28, 28), n=40, seed=0) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    np.savez(buf, x=rng.random((n, *shape), dtype=np.float32), y=np.arange(n) % n_classes)
    return buf.getvalue()


def test_an_ambiguous_file_is_asked_about_and_stored_with_the_choice_then_data_is_checked_against_it():
    from nngeo_core.models import ACTIVATIONS
    from nngeo_core.runs import load_run
    from nngeo_core.store import default_store
    from nngeo_core.uploads import upload_key

    net = tanh_mlp()
    data = torch_bytes(net.state_dict())
    at = open_upload_page()
    upload(at, "tanh.pt", data)
    assert not at.success and default_store().keys() == []  # asked, nothing stored
    assert len(at.warning) == 1 and "--activation" in at.warning[0].value
    box = at.selectbox(key="upload-choice-activation")
    assert list(box.options) == list(ACTIVATIONS)
    box.set_value("tanh").run()
    at.button(key="upload-choose").click().run()
    no_exception(at)
    assert at.success and "Stored as" in at.success[0].value
    key = upload_key(data, activation="tanh")
    assert default_store().keys() == [key]
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(load_run(key).model(x), net(x))

    # the user's own data: shown with its shape and classes, and checked against that network
    assert len(at.get("file_uploader")) == 1  # the dataset's file input waits for its toggle
    at.toggle(key="upload-dataset-on").set_value(True).run()
    at.file_uploader(key="upload-dataset-file").set_value(("ten.npz", npz_bytes(10), "application/zip")).run()
    at.button(key="upload-dataset-add").click().run()
    no_exception(at)
    shown = " ".join(m.value for m in at.markdown)
    # a stratified split: one of each class's 4 examples is held out
    assert "inputs 1×28×28, 10 classes" in shown and "30 train / 10 test examples" in shown
    assert any("It fits the network stored last" in s.value for s in at.success)
    # the new dataset is at once in the list above, chosen, and its image shape is the input shape
    added = at.session_state["upload-dataset-added"]["id"]
    assert added in at.selectbox(key="upload-data").options and at.selectbox(key="upload-data").value == added
    assert at.text_input(key="upload-input-shape").value == "1,28,28"
    at.file_uploader(key="upload-dataset-file").set_value(("three.npz", npz_bytes(3), "application/zip")).run()
    at.button(key="upload-dataset-add").click().run()
    no_exception(at)
    assert len(at.error) == 1 and "10 classes; dataset" in at.error[0].value and "3 classes" in at.error[0].value
    from nngeo_core.data import list_datasets

    assert sum(n.startswith("user:") for n in list_datasets()) == 2
    # a file that is no dataset: one line, nothing added
    at.file_uploader(key="upload-dataset-file").set_value(("bad.npz", b"not a zip", "application/zip")).run()
    at.button(key="upload-dataset-add").click().run()
    assert len(at.error) == 1 and "cannot read bad.npz" in at.error[0].value
    assert sum(n.startswith("user:") for n in list_datasets()) == 2


def test_a_torchvision_net_is_stored_with_the_input_shape_typed_in_and_an_onnx_file_as_is():
    import torchvision

    from nngeo_core.runs import load_run
    from nngeo_core.store import default_store
    from nngeo_core.uploads import upload_key

    torch.manual_seed(0)
    squeeze = torchvision.models.squeezenet1_1(num_classes=10).eval()
    data = torch_bytes(squeeze.state_dict())
    at = open_upload_page()
    at.text_input(key="upload-input-shape").set_value("3,32,32").run()
    upload(at, "squeeze.pth", data)
    assert at.success and "torchvision" in at.success[0].value
    key = upload_key(data, input_shape=(3, 32, 32))
    assert default_store().keys() == [key]
    model = load_run(key).model.eval()
    assert model.input_shape == (3, 32, 32)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), squeeze(x))

    cnn = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 6 * 6, 4)).eval()
    buf = io.BytesIO()
    with warnings.catch_warnings():  # the TorchScript exporter is deprecated but needs no onnxscript
        warnings.simplefilter("ignore")
        torch.onnx.export(cnn, (torch.zeros(1, 1, 8, 8),), buf, dynamo=False, input_names=["x"], output_names=["y"])
    at.text_input(key="upload-input-shape").set_value("").run()
    upload(at, "mine.onnx", buf.getvalue())
    assert at.success and "onnx" in at.success[0].value
    okey = upload_key(buf.getvalue())
    assert set(default_store().keys()) == {key, okey}
    x = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(load_run(okey).model(x), cnn(x), atol=1e-6)

    # an unsupported file type by content, e.g. a .pt2 program: refused in one line, nothing stored
    upload(at, "prog.pt2", b"PK\x03\x04 anything")
    assert len(at.error) == 1 and "torch.export" in at.error[0].value
    assert set(default_store().keys()) == {key, okey}


def test_a_timm_net_named_in_the_architecture_box_is_stored_as_timms_and_unnamed_it_is_refused():
    import timm

    from nngeo_core.runs import load_run
    from nngeo_core.store import default_store
    from nngeo_core.uploads import upload_key

    torch.manual_seed(0)
    net = timm.create_model("resnet10t", pretrained=False, num_classes=5).eval()
    data = torch_bytes(net.state_dict())
    at = open_upload_page()
    at.text_input(key="upload-input-shape").set_value("3,32,32").run()
    upload(at, "mine.pth", data)  # unnamed: timm models are never guessed from their keys
    assert len(at.error) == 1 and not at.success
    assert default_store().keys() == []

    at.text_input(key="upload-arch").set_value("timm:resnet10t").run()
    upload(at, "mine.pth", data)
    assert at.success and "timm" in at.success[0].value, [e.value for e in at.error]
    key = upload_key(data, arch="timm:resnet10t", input_shape=(3, 32, 32))
    assert default_store().keys() == [key]
    model = load_run(key).model.eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(x), net(x), atol=1e-5)
