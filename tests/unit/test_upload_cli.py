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
    assert main(["upload", str(path), "--data", "xor", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    store = default_store()
    assert info["created"] is True and info["store"] == store.root
    assert data_spec_of(store, info["key"]) == DataSpec("xor")
    page = store_upload(buf.getvalue(), name="net.pt", store=store, data_spec=DataSpec("xor"))
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
