"""Model export: every level of real sweeps (magnitude, random, IMP; an MLP on xor and LeNet-5 on
digits, with and without fine-tuning) and stored models, in every format, reloaded in plain
PyTorch (``load_state_dict`` into a freshly built architecture; ``torch.nn.utils.prune`` for the
pruned form) or onnxruntime, must give the accuracy and loss the sweep stored, the logits of a
masked model built here from brute-force masks, and as many zeros as the level's sparsity. Bad
input is one line and writes nothing."""

from __future__ import annotations

import argparse
import json

import numpy as np
import onnxruntime as ort
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load as st_load
from torch import nn
from torch.nn.utils import prune as torch_prune

from nngeo_core import checkpoint
from nngeo_core.data import load as load_data
from nngeo_core.errors import NNGeoError
from nngeo_core.export import (
    Exportable,
    export_bytes,
    export_formats,
    export_model,
    level_artifact,
    model_to_onnx,
    to_format,
)
from nngeo_core.export_cli import MODEL_FORMATS, add_export_arguments, cmd_export_model, is_model_format
from nngeo_core.models import MODELS, build, register_model
from nngeo_core.models.mlp import FeedForward, sequential
from nngeo_core.pruning import SweepSpec, run_sweep
from nngeo_core.runs import load_run, train_run
from nngeo_core.specs import DataSpec, ModelSpec, RunSpec, TrainSpec, spec_from_dict
from nngeo_core.store import Store
from nngeo_core.uploads import store_upload

XOR_RUN = RunSpec(
    data=DataSpec("xor", params={"n_train": 200, "n_test": 200}),
    model=ModelSpec("mlp", {"widths": (16, 16)}),
    train=TrainSpec(epochs=4, batch_size=32, lr=1e-2),
)
LENET_RUN = RunSpec(
    data=DataSpec("digits", params={"resize": 16, "n_train": 300, "n_test": 150}),
    model=ModelSpec("lenet5"),
    train=TrainSpec(epochs=2, batch_size=32, lr=1e-2),
)
LEVELS = (0.5, 0.8)
SWEEPS = {
    "xor-magnitude": SweepSpec(run=XOR_RUN, strategy="magnitude", sparsities=LEVELS, seeds=(0, 1)),
    "xor-random": SweepSpec(run=XOR_RUN, strategy="random", sparsities=LEVELS, seeds=(0,)),
    "xor-imp": SweepSpec(
        run=XOR_RUN, strategy="imp", sparsities=LEVELS, seeds=(0,), params={"rate": 0.5, "round_epochs": 1}
    ),
    "lenet-magnitude-tuned": SweepSpec(
        run=LENET_RUN, strategy="magnitude", sparsities=LEVELS, seeds=(0,), finetune_epochs=1
    ),
    "lenet-random": SweepSpec(run=LENET_RUN, strategy="random", sparsities=LEVELS, seeds=(0,)),
}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return Store(tmp_path_factory.mktemp("export") / "store")


@pytest.fixture(scope="module")
def sweeps(store):
    return {name: run_sweep(spec, store=store) for name, spec in SWEEPS.items()}


# -- independent references ------------------------------------------------------------------
def layer_modules(model: nn.Module) -> dict[str, nn.Module]:
    return {n: m for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))}


def reference_masks(dense: nn.Module, strategy: str, sparsity: float, seed: int) -> dict[str, np.ndarray]:
    """Global one-shot masks by brute force: magnitude (|w|) or the seeded uniform draw, one ranking
    over all dense/conv weights, the round(s·n) lowest pruned, ties by position."""
    layers = layer_modules(dense)
    if strategy == "magnitude":
        scores = [m.weight.detach().abs().double().numpy().ravel() for m in layers.values()]
    else:
        gen = torch.Generator().manual_seed(seed)
        scores = [
            torch.rand(m.weight.shape, generator=gen, dtype=torch.float64).numpy().ravel() for m in layers.values()
        ]
    flat = np.concatenate(scores)
    k = int(np.floor(sparsity * flat.size + 0.5))
    keep = np.ones(flat.size, dtype=bool)
    keep[np.argsort(flat, kind="stable")[:k]] = False
    out, start = {}, 0
    for (name, m), s in zip(layers.items(), scores, strict=True):
        out[name] = keep[start : start + s.size].reshape(m.weight.shape)
        start += s.size
    return out


def masked_copy(dense: nn.Module, masks: dict[str, np.ndarray]) -> nn.Module:
    model = build(dense.zoo_name, input_shape=dense.input_shape, num_classes=dense.num_classes, **dense.zoo_params)
    model.load_state_dict(dense.state_dict())
    with torch.no_grad():
        for name, m in layer_modules(model).items():
            m.weight.mul_(torch.from_numpy(masks[name]).to(m.weight.dtype))
    return model.eval()


def fresh_architecture(meta: dict[str, str]) -> nn.Module:
    """The original architecture, built anew from the file's metadata (random weights)."""
    spec = spec_from_dict(json.loads(meta["model_spec"]))
    return build(
        spec.name,
        input_shape=tuple(json.loads(meta["input_shape"])),
        num_classes=json.loads(meta["num_classes"]),
        **dict(spec.params),
    )


def loss_and_accuracy(logits: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    loss = float(nn.functional.cross_entropy(logits, y, reduction="sum")) / len(y)
    return loss, float((logits.argmax(1) == y).double().mean())


def reload_all(paths: dict[str, str]) -> tuple[dict[str, nn.Module], dict[str, str], ort.InferenceSession]:
    """Each exported file loaded the plain way: safetensors and state_dict into a fresh
    architecture; the pruned form through prune.identity, then load_state_dict; ONNX in onnxruntime."""
    with safe_open(paths["safetensors"], "pt") as f:
        meta = f.metadata()
        st = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no iteration
    models = {}
    models["safetensors"] = fresh_architecture(meta)
    models["safetensors"].load_state_dict(st)  # strict: exactly the model's own keys
    sd = torch.load(paths["state_dict"], weights_only=True)
    assert isinstance(sd, dict) and all(isinstance(v, torch.Tensor) for v in sd.values())
    models["state_dict"] = fresh_architecture(meta)
    models["state_dict"].load_state_dict(sd)
    pr = torch.load(paths["pruned"], weights_only=True)
    models["pruned"] = fresh_architecture(meta)
    for name, mod in models["pruned"].named_modules():
        if f"{name}.weight_mask" in pr:
            torch_prune.identity(mod, "weight")
    models["pruned"].load_state_dict(pr)
    session = ort.InferenceSession(paths["onnx"], providers=["CPUExecutionProvider"])
    return {k: m.eval() for k, m in models.items()}, meta, session


def export_all(store, key, tmp_path, level=None, seed=None) -> dict[str, str]:
    paths = {}
    for fmt in export_formats():
        dest = tmp_path / f"{fmt}-{level}-{seed}.bin"
        assert export_model(store, key, level=level, seed=seed, fmt=fmt, out=dest) == dest
        paths[fmt] = str(dest)
    return paths


# -- sweeps --------------------------------------------------------------------------------------
def test_formats_are_the_four():
    assert export_formats() == MODEL_FORMATS == ("safetensors", "state_dict", "pruned", "onnx")


@pytest.mark.parametrize("name", list(SWEEPS))
def test_every_level_and_seed_reloads_in_plain_pytorch_and_onnx(name, store, sweeps, tmp_path):
    key, spec = sweeps[name], SWEEPS[name]
    table = store.get(key)
    data = load_data(spec.run.data)
    x, y = data.x_test, data.y_test
    for row in table.to_dict("records"):
        level, seed = row["sparsity_requested"], int(row["seed"])
        paths = export_all(store, key, tmp_path, level=level, seed=seed)
        models, meta, session = reload_all(paths)
        # the metadata names the architecture, the level and where it came from
        source, sparsity = json.loads(meta["source"]), json.loads(meta["sparsity"])
        assert source["key"] == key and source["seed"] == seed and source["run"] == row["run"]
        assert sparsity["requested"] == level and sparsity["achieved"] == row["sparsity_achieved"]
        with torch.no_grad():
            logits = {fmt: m(x) for fmt, m in models.items()}
        onnx_logits = torch.from_numpy(session.run(["logits"], {"input": x.numpy()})[0])
        for fmt in ("state_dict", "pruned"):
            assert torch.equal(logits[fmt], logits["safetensors"]), fmt
        assert torch.allclose(onnx_logits, logits["safetensors"], atol=1e-4, rtol=1e-4)
        # the model whose numbers the sweep stored: its accuracy exactly, its loss to float precision
        for out in (logits["safetensors"], onnx_logits):
            loss, acc = loss_and_accuracy(out, y)
            assert acc == pytest.approx(row["accuracy"], abs=1e-12)
            assert loss == pytest.approx(row["loss"], rel=1e-4)
        # zeros: the level's sparsity over the dense/conv layers, in the weights and in the masks
        layers = layer_modules(models["safetensors"])
        zeros = sum(int((m.weight == 0).sum()) for m in layers.values())
        total = sum(m.weight.numel() for m in layers.values())
        assert zeros / total == pytest.approx(row["sparsity_overall"], abs=1e-12)
        masks = {n: m.weight_mask for n, m in layer_modules(models["pruned"]).items()}
        assert set(masks) == set(layers)
        pruned = sum(int((m == 0).sum()) for m in masks.values())
        assert pruned / total == pytest.approx(row["sparsity_achieved"], abs=1e-12)
        assert pruned == round(level * row["total_weights"])
        for n, m in masks.items():  # a pruned weight is zero in the plain files
            assert bool((layers[n].weight[m == 0] == 0).all())
        if spec.strategy in ("magnitude", "random") and spec.finetune_epochs == 0:
            # one-shot, no fine-tuning: brute-force masks on the stored dense run give the same model
            dense = load_run(row["run"], store=store).model.eval()
            ref = reference_masks(dense, spec.strategy, level, seed)
            for n, m in masks.items():
                assert np.array_equal(m.bool().numpy(), ref[n]), n
            with torch.no_grad():
                assert torch.allclose(masked_copy(dense, ref)(x), logits["safetensors"], atol=1e-6)


def test_tuned_levels_export_the_fine_tuned_weights(store, sweeps, tmp_path):
    """With fine-tuning the exported model is the tuned one (its accuracy, not the one right after
    pruning), and the pruned form keeps the masks the tuning held at zero."""
    key = sweeps["lenet-magnitude-tuned"]
    table = store.get(key)
    row = table[table["sparsity_requested"] == 0.8].iloc[0]
    dense = load_run(row["run"], store=store).model.eval()
    data = load_data(LENET_RUN.data)
    models, _, _ = reload_all(export_all(store, key, tmp_path, level=0.8))
    ref = reference_masks(dense, "magnitude", 0.8, 0)  # the masks are magnitude's; the weights moved
    with torch.no_grad():
        tuned_logits = models["safetensors"](data.x_test)
        masked_dense = masked_copy(dense, ref)(data.x_test)
    for n, m in layer_modules(models["pruned"]).items():
        assert np.array_equal(m.weight_mask.bool().numpy(), ref[n])
    assert not torch.allclose(tuned_logits, masked_dense)
    assert loss_and_accuracy(masked_dense, data.y_test)[1] == pytest.approx(row["accuracy_pruned"], abs=1e-12)
    assert loss_and_accuracy(tuned_logits, data.y_test)[1] == pytest.approx(row["accuracy"], abs=1e-12)


def st_header(data: bytes) -> dict:
    """A safetensors file's header as a dict (the file's key order is not fixed)."""
    n = int.from_bytes(data[:8], "little")
    return json.loads(data[8 : 8 + n])


def drop_level_artifacts(store: Store, key: str) -> None:
    """Make ``key`` a sweep as stored before sweeps kept their levels' models: its table only."""
    for name in store.artifacts(key):
        if name.startswith("level-"):
            store.fs.rm(store.artifact_path(key, name))
    assert not [n for n in store.artifacts(key) if n.startswith("level-")]


def test_every_level_of_a_new_sweep_is_read_from_its_artifact(store, sweeps, tmp_path, monkeypatch):
    """A sweep stores each (seed, level) model; exporting it recomputes nothing (the rebuild and
    the strategies fail here), and the file reproduces the stored accuracy in plain PyTorch."""
    import nngeo_core.export as export_mod
    import nngeo_core.pruning.sweep as sweep_mod

    def refuse(*a, **k):
        raise AssertionError("rebuilt")

    monkeypatch.setattr(export_mod, "rebuild_level", refuse)
    # a rebuild runs the sweep's own level loop: its pruning and fine-tuning
    monkeypatch.setattr(sweep_mod, "prune", refuse)
    monkeypatch.setattr(sweep_mod, "fit", refuse)
    for name in ("xor-imp", "lenet-magnitude-tuned"):
        key, spec = sweeps[name], SWEEPS[name]
        table = store.get(key)
        assert {level_artifact(int(r.seed), int(r.level)) for r in table.itertuples()} <= set(store.artifacts(key))
        data = load_data(spec.run.data)
        for row in table.to_dict("records"):
            with safe_open_bytes(export_model(store, key, level=row["sparsity_requested"], fmt="safetensors")) as (
                meta,
                tensors,
            ):
                model = fresh_architecture(meta)
                model.load_state_dict(tensors)
            with torch.no_grad():
                loss, acc = loss_and_accuracy(model.eval()(data.x_test), data.y_test)
            assert acc == pytest.approx(row["accuracy"], abs=1e-12)
            assert loss == pytest.approx(row["loss"], rel=1e-4)


class safe_open_bytes:
    """safetensors bytes as (metadata, tensors), the plain library's way."""

    def __init__(self, data: bytes):
        self.data = data

    def __enter__(self):
        n = int.from_bytes(self.data[:8], "little")
        return json.loads(self.data[8 : 8 + n]).get("__metadata__", {}), st_load(self.data)

    def __exit__(self, *exc):
        return False


def test_a_sweep_stored_before_level_artifacts_is_rebuilt_to_the_same_model(tmp_path):
    """The rebuild path (sweeps stored with their table only) gives exactly the stored artefact's
    model: iterative IMP with fine-tuning, two seeds."""
    store = Store(tmp_path / "store")
    spec = SweepSpec(
        run=XOR_RUN,
        strategy="imp",
        sparsities=LEVELS,
        seeds=(0, 1),
        finetune_epochs=1,
        params={"rate": 0.5, "round_epochs": 1},
    )
    key = run_sweep(spec, store=store)
    stored = {
        (seed, level): export_model(store, key, level=level, seed=seed, fmt="safetensors")
        for seed in spec.seeds
        for level in LEVELS
    }
    drop_level_artifacts(store, key)
    for (seed, level), want in stored.items():
        got = export_model(store, key, level=level, seed=seed, fmt="safetensors")
        a, b = st_load(got), st_load(want)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), (seed, level)


def test_a_rebuild_that_differs_from_the_stored_row_is_refused(tmp_path):
    store = Store(tmp_path / "store")
    spec = SweepSpec(run=XOR_RUN, strategy="magnitude", sparsities=LEVELS, seeds=(0,))
    key = run_sweep(spec, store=store)
    drop_level_artifacts(store, key)  # only a sweep stored before level artefacts is rebuilt
    table = store.get(key)
    table.loc[table["level"] == 1, "accuracy"] = table.loc[table["level"] == 1, "accuracy"] - 0.01
    store.put("prune-sweep", spec, table)  # the same key, a row the rebuild cannot reproduce
    out = tmp_path / "x.safetensors"
    with pytest.raises(NNGeoError, match="not exporting a different model") as err:
        export_model(store, key, level=0.8, fmt="safetensors", out=out)
    assert "\n" not in str(err.value) and not out.exists()
    assert export_model(store, key, level=0.5, fmt="safetensors")  # the untouched level still exports


# -- stored models ---------------------------------------------------------------------------
def test_trained_runs_and_uploads_export_in_every_format(store, sweeps, tmp_path):
    run_key = train_run(LENET_RUN.replace(train=LENET_RUN.train.replace(seed=3)), store=store)
    dense = load_run(run_key, store=store).model.eval()
    data = load_data(LENET_RUN.data)
    (tmp_path / "run").mkdir()
    models, meta, session = reload_all(export_all(store, run_key, tmp_path / "run"))
    with torch.no_grad():
        want = dense(data.x_test)
        for fmt, m in models.items():
            assert torch.equal(m(data.x_test), want), fmt
    assert torch.allclose(torch.from_numpy(session.run(None, {"input": data.x_test.numpy()})[0]), want, atol=1e-4)
    assert json.loads(meta["source"])["kind"] == "train" and json.loads(meta["sparsity"])["achieved"] == 0
    assert all(bool((m.weight_mask == 1).all()) for m in layer_modules(models["pruned"]).values())
    # an upload: the safetensors export of a sweep level, stored back as a foreign state_dict (its
    # activation named: a Linear stack's weights cannot tell it)
    level_bytes = export_model(store, sweeps["xor-random"], level=0.8, fmt="safetensors")
    up = store_upload(level_bytes, name="level.safetensors", store=store, data_spec=XOR_RUN.data, activation="relu")
    assert up.model == "mlp" and up.source == "linear-stack"
    (tmp_path / "up").mkdir()
    models, meta, _ = reload_all(export_all(store, up.key, tmp_path / "up"))
    assert json.loads(meta["source"])["kind"] == "upload"
    level_model, _, _ = reload_all(export_all(store, sweeps["xor-random"], tmp_path, level=0.8))
    x = load_data(XOR_RUN.data).x_test
    with torch.no_grad():
        assert torch.equal(models["safetensors"](x), level_model["safetensors"](x))
    layers = layer_modules(models["safetensors"]).values()
    zeros = sum(int((m.weight == 0).sum()) for m in layers)
    assert zeros == round(0.8 * sum(m.weight.numel() for m in layers))
    assert json.loads(meta["sparsity"])["overall"] == pytest.approx(zeros / sum(m.weight.numel() for m in layers))


ZOO = [("mlp", {}), ("fcn_mnist", {}), ("lenet5", {}), ("cnn_mnist", {}), ("vgg11", {"width": 0.125}), ("resnet20", {})]


@pytest.mark.parametrize(("name", "params"), ZOO)
def test_every_zoo_architecture_exports_and_reloads(name, params, tmp_path):
    """Batch norm, residual shortcuts and pooling included: half the weights masked at random, the
    four files reloaded the plain way compute the masked model."""
    torch.manual_seed(0)
    model = build(name, **params).eval()
    gen = torch.Generator().manual_seed(1)
    masks = {n: torch.rand(m.weight.shape, generator=gen) > 0.5 for n, m in layer_modules(model).items()}
    ex = Exportable(model=model, masks=masks, model_spec=ModelSpec(name, dict(model.zoo_params)), source={})
    paths = {}
    for fmt in export_formats():
        paths[fmt] = str(tmp_path / fmt)
        (tmp_path / fmt).write_bytes(to_format(ex, fmt))
    models, _, session = reload_all(paths)
    x = torch.rand((3, *model.input_shape), generator=gen)
    with torch.no_grad():
        want = masked_copy(model, {n: m.numpy() for n, m in masks.items()})(x)
        for fmt, m in models.items():
            assert torch.allclose(m(x), want, atol=1e-6), fmt
    assert torch.allclose(torch.from_numpy(session.run(None, {"input": x.numpy()})[0]), want, atol=1e-4)


def test_export_bytes_names_the_file_and_type(store, sweeps):
    data, name, mime = export_bytes(store, sweeps["xor-magnitude"], 0.5, 1, "onnx")
    assert name.startswith("mlp-magnitude-s0.5-seed1-") and name.endswith(".onnx") and mime
    assert ort.InferenceSession(data, providers=["CPUExecutionProvider"]).get_inputs()[0].shape[1:] == [2]
    # a level typed as listed (6 digits) finds the stored one
    assert export_bytes(store, sweeps["xor-magnitude"], 0.5000004, 1, "state_dict")[1] == name[: -len(".onnx")] + ".pt"


# -- bad input -------------------------------------------------------------------------------
def one_line_refusal(fn, match: str, dest) -> None:
    with pytest.raises(NNGeoError, match=match) as err:
        fn()
    assert "\n" not in str(err.value)
    assert not dest.exists() and not [p for p in dest.parent.iterdir() if p.name.startswith(".tmp-")]


def test_bad_requests_are_one_line_and_write_nothing(store, sweeps, tmp_path):
    out = tmp_path / "out.safetensors"
    sweep, run = sweeps["xor-magnitude"], store.get(sweeps["xor-magnitude"])["run"].iloc[0]
    cases = [
        (dict(key=sweep, level=0.6), r"has no level 0\.6; its levels: 0\.5, 0\.8"),
        (dict(key=sweep, level=None), r"choose one with --level \(its levels: 0\.5, 0\.8\)"),
        (dict(key=sweep, level=0.5, seed=7), r"has no seed 7; its seeds: 0, 1"),
        (dict(key=run, level=0.5), r"not a pruning sweep"),
        (dict(key=sweep, level=0.5, fmt="tflite"), r"unknown export format 'tflite'"),
        (dict(key="ffffffffffff", level=None), r"no result"),
    ]
    for kwargs, match in cases:
        kwargs.setdefault("fmt", "safetensors")
        one_line_refusal(lambda kwargs=kwargs: export_model(store, out=out, **kwargs), match, out)
    other = store.put("analyse", {"kind": "analyse", "what": "a table"}, None)
    one_line_refusal(lambda: export_model(store, other, fmt="onnx", out=out), "neither a model nor a pruning", out)
    one_line_refusal(
        lambda: export_model(store, run, fmt="onnx", out=tmp_path / "no" / "x.onnx"), "does not exist", out
    )


class Histogram(nn.Module):
    def forward(self, x):
        return torch.stack([torch.histc(row, bins=4) for row in x])


def build_histogram_net(input_shape, num_classes):
    torch.manual_seed(0)
    return sequential(FeedForward, [nn.Flatten(), nn.Linear(4, 4), Histogram(), nn.Linear(4, num_classes)]), {}


@pytest.fixture
def histogram_model():
    register_model("histnet", description="an op ONNX lacks", default_input_shape=(4,), image=False)(
        build_histogram_net
    )
    yield
    MODELS.remove("histnet")


def test_onnx_failure_names_the_operator_and_writes_nothing(histogram_model, tmp_path, capfd):
    store = Store(tmp_path / "store")
    model = build("histnet", num_classes=3)
    key = store_upload(checkpoint.to_bytes(model), name="h.safetensors", store=store).key
    out = tmp_path / "h.onnx"
    capfd.readouterr()
    one_line_refusal(lambda: export_model(store, key, fmt="onnx", out=out), r"operator aten::histc has no ONNX", out)
    captured = capfd.readouterr()
    assert "graph" not in captured.out + captured.err  # torch's IR dump does not reach the terminal
    with pytest.raises(NNGeoError, match="aten::histc"):
        model_to_onnx(model, (4,), name="histnet")
    assert export_model(store, key, fmt="state_dict", out=tmp_path / "h.pt")  # the other formats still work


# -- the command line ------------------------------------------------------------------------
def parse(argv):
    p = argparse.ArgumentParser()
    add_export_arguments(p)
    return p.parse_args(argv)


def test_cli_exports_a_level_and_keeps_table_formats_apart(store, sweeps, tmp_path, capsys):
    key = sweeps["xor-random"]
    out = tmp_path / "cli.pruned.pt"
    a = parse([key[:10], "--level", "0.8", "--format", "pruned", "-o", str(out), "--json"])
    a.store = store.root
    assert is_model_format(a) and cmd_export_model(a) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["path"] == str(out) and record["source"]["key"] == key and record["sparsity"]["requested"] == 0.8
    assert (
        torch.load(out, weights_only=True).keys()
        == torch.load(export_all(store, key, tmp_path, level=0.8)["pruned"], weights_only=True).keys()
    )
    assert not is_model_format(parse([key, "--format", "csv"]))
    with pytest.raises(NNGeoError, match="--level and --seed choose a model"):
        is_model_format(parse([key, "--format", "csv", "--level", "0.5"]))
    bad = parse([key, "--level", "0.3", "--format", "onnx", "-o", str(tmp_path / "bad.onnx")])
    bad.store = store.root
    with pytest.raises(NNGeoError, match="its levels: 0.5, 0.8"):
        cmd_export_model(bad)
    assert not (tmp_path / "bad.onnx").exists()
