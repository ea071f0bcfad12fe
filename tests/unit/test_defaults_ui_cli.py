"""One set of defaults for the dashboard and the CLI: the run the Train page's untouched form asks
for is the run `nngeo train` makes of the same model and data (same spec, same key), and the
fcn_mnist-on-digits run really is the 784-input net. Also the labels that tell two jobs apart, and
training progress that pairs each epoch with its own loss."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nngeo_core import defaults
from nngeo_core.cli import build_parser
from nngeo_core.cli_args import run_spec_from_args
from nngeo_core.dashboard import forms
from nngeo_core.dashboard.jobs_view import label_for
from nngeo_core.data import load
from nngeo_core.errors import NNGeoError
from nngeo_core.progress import Progress
from nngeo_core.pruning import SweepSpec
from nngeo_core.specs import AnalysisSpec, DataSpec, ModelSpec, RunSpec, TrainSpec
from nngeo_core.train import build_for, fit

PAIRS = [
    ("mlp", "xor"),
    ("mlp", "digits"),
    ("fcn_mnist", "digits"),
    ("lenet5", "digits"),
    ("cnn_mnist", "permuted:digits:1"),
    ("fcn_mnist", "moons"),
    ("resnet20", "cifar10"),
]
PAGE_TRAIN_FIELDS = ("epochs", "batch_size", "optimizer", "lr", "schedule", "weight_decay", "seed")


def untouched(declaration: dict, start: dict) -> dict:
    """What each widget of an untouched form hands back, read as the page reads it."""
    out = {}
    for name, param in declaration.items():
        widget = forms.widget_for(name, param, start[name])
        out[name] = widget.read(widget.value)
    return out


def page_spec(model: str, data: str, **train_changes) -> RunSpec:
    """The Train page's spec from its form defaults (as its widgets return them), plus changes."""
    start = defaults.form_defaults(model, data)
    train = {k: start["train"][k] for k in PAGE_TRAIN_FIELDS} | train_changes
    return forms.run_spec(
        model,
        data,
        model_params=untouched(defaults.model_declaration(model), start["model_params"]),
        data_params=untouched(defaults.data_declaration(data), start["data_params"]),
        data_seed=start["data_seed"],
        train={**train, "snapshots": forms.snapshot_epochs_for(train["epochs"], "", None)},
    )


def cli_spec(*argv: str) -> RunSpec:
    return run_spec_from_args(build_parser().parse_args(["train", *argv]))


@pytest.mark.parametrize(("model", "data"), PAIRS)
def test_the_pages_form_defaults_make_the_clis_run(model, data):
    page = page_spec(model, data)
    cli = cli_spec("--model", model, "--data", data)
    assert page == cli and page.hash == cli.hash
    # and it is the CLI's run as it was made before the two shared a path: the family's preset
    # and, for MNIST models on digits, resize=28 (the stable key ignores the filled-in defaults)
    resize = {"resize": 28} if model in ("fcn_mnist", "lenet5", "cnn_mnist") and "digits" in data else {}
    plain = RunSpec(
        data=DataSpec(data, params=resize), model=ModelSpec(model), train=defaults.default_train(model, data)
    )
    assert page.hash == plain.hash


def test_changed_choices_are_the_same_run_both_ways():
    page = forms.run_spec(
        "mlp",
        "xor",
        model_params={"widths": forms.widget_for("widths", (32, 32)).read("8, 8"), "activation": "tanh"},
        data_params={"n_train": 200, "noise": None},
        data_seed=3,
        train={"epochs": 2, "lr": 0.05, "seed": 1, "snapshots": (2, 0)},
    )
    cli = cli_spec(
        *("--model", "mlp", "--widths", "8,8", "--activation", "tanh", "--data", "xor"),
        *("--data-param", "n_train=200", "--data-seed", "3", "--epochs", "2", "--lr", "0.05"),
        *("--seed", "1", "--snapshots", "0,2"),
    )
    assert page == cli and page.hash == cli.hash
    assert page.model.params["widths"] == (8, 8) and page.train.snapshots == (0, 2)
    assert page.hash != cli_spec("--model", "mlp", "--widths", "8,8", "--data", "xor").hash


def test_fcn_mnist_on_digits_is_the_784_input_net():
    spec = page_spec("fcn_mnist", "digits", epochs=1)
    assert spec.hash == cli_spec("--model", "fcn_mnist", "--data", "digits", "--epochs", "1").hash
    dataset = load(spec.data)
    assert tuple(dataset.x_train.shape[1:]) == (1, 28, 28)
    model = build_for(spec, dataset)
    first = next(m for m in model.modules() if isinstance(m, nn.Linear))
    assert tuple(first.weight.shape) == (100, 28 * 28)
    # a model given the 8×8 digits (resize asked off) would not be: the default decides it
    small = forms.run_spec("fcn_mnist", "digits", data_params={"resize": 8})
    small_first = next(m for m in build_for(small, load(small.data)).modules() if isinstance(m, nn.Linear))
    assert tuple(small_first.weight.shape) == (100, 64) and small.hash != spec.hash


def test_run_spec_refuses_unknown_settings_and_late_snapshots_in_one_line():
    for bad in (
        dict(train={"warp_speed": 9}),
        dict(train={"epochs": 3, "snapshots": (4,)}),
        dict(model_params={"depth": 3}),
        dict(data_params={"colour": True}),
    ):
        with pytest.raises(NNGeoError) as info:
            defaults.run_spec("mlp", "xor", **bad)
        assert "\n" not in str(info.value)


def test_labels_name_the_parameters_that_are_not_defaults():
    """The queue's labels (the job kinds' describe), as the pages show them before submitting."""
    run = defaults.run_spec("mlp", "xor", train={"epochs": 1})
    plain = defaults.complete(SweepSpec(run=run, strategy="curvature"))
    odd = defaults.complete(SweepSpec(run=run, strategy="curvature", params={"method": "exact", "alpha": 0.25}))
    assert label_for(plain) == "prune curvature mlp/xor 6 levels x 1 seeds"
    assert label_for(odd) == "prune curvature mlp/xor 6 levels x 1 seeds alpha=0.25 method=exact"
    wide = defaults.run_spec("mlp", "digits", model_params={"widths": (8, 8)}, data_params={"n_train": 100})
    assert label_for(wide) == "train mlp on digits (seed 0, 15 epochs) widths=8,8 n_train=100"
    assert label_for(run) == "train mlp on xor (seed 0, 1 epochs)"
    analysis = defaults.complete(AnalysisSpec(run="abcdef0123456789", method="curvature", params={"preset": "nngeo"}))
    assert label_for(analysis) == "analyse curvature of abcdef01"  # the default preset is no choice
    # a setting given explicitly is one, even at the preset's value (it would win over another preset)
    alpha = defaults.complete(AnalysisSpec(run="abcdef0123456789", method="curvature", params={"alpha": 0.5}))
    assert label_for(alpha) == "analyse curvature of abcdef01 alpha=0.5"
    grid = defaults.complete(AnalysisSpec(run="abcdef0123456789", method="volume", params={"resolution": 20}, epoch=3))
    assert label_for(grid) == "analyse volume of abcdef01 epoch 3 resolution=20"


def test_each_epochs_progress_carries_that_epochs_own_loss():
    torch.manual_seed(0)
    dataset = load(DataSpec("xor", params={"n_train": 1000, "n_test": 100}))
    t = TrainSpec(epochs=3, batch_size=10, lr=0.01, device="cpu")  # 100 steps an epoch: 2 reports inside each
    reports: list[tuple[str, dict]] = []
    progress = Progress(lambda fraction, phase, metrics: reports.append((phase, dict(metrics))), min_interval=0.0)
    history = fit(build_for(RunSpec(data=DataSpec("xor"), train=t), dataset), dataset, t, progress=progress).history
    final_loss = dict(zip(history["epoch"], history["train_loss"], strict=True))
    for phase, m in reports:
        assert phase == f"epoch {m['epoch']}/3"
    inside = [m for _, m in reports if m["step"] % 100 != 0]
    assert [m["step"] for m in inside] == [50, 150, 250]  # halfway through each epoch
    for m in inside:
        # the running loss of the epoch so far, never the previous epoch's final loss
        assert m["epoch"] == 1 + m["step"] // 100 and m["loss"] != final_loss[m["epoch"] - 1]
    ends = [m for _, m in reports if m["step"] % 100 == 0]  # the epoch's last step, and its end
    assert sorted({m["epoch"] for m in ends}) == [1, 2, 3]
    for m in ends:
        assert m["loss"] == pytest.approx(final_loss[m["epoch"]], rel=1e-6)
