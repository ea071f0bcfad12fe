"""The command line, run as a real subprocess the way a user runs it."""

import json
import os
import subprocess
import sys

import pandas as pd


def nngeo(*args, check=True):
    proc = subprocess.run(
        [sys.executable, "-m", "nngeo_core", *args], capture_output=True, text=True, env=os.environ.copy(), timeout=300
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


TINY = [
    "--model",
    "mlp",
    "--data",
    "xor",
    "--widths",
    "8",
    "--epochs",
    "3",
    "--data-param",
    "n_train=200",
    "--data-param",
    "n_test=200",
]


def test_train_list_show_export(tmp_path):
    out = json.loads(nngeo("train", *TINY, "--json").stdout)
    assert out["cached"] is False and 0.0 <= out["test_accuracy"] <= 1.0
    again = json.loads(nngeo("train", *TINY, "--json").stdout)
    assert again["run"] == out["run"] and again["cached"] is True
    runs = json.loads(nngeo("list", "--json").stdout)
    assert [r["key"] for r in runs] == [out["run"]] and runs[0]["model"] == "mlp"
    shown = json.loads(nngeo("show", out["run"][:8], "--json").stdout)
    assert shown["entry"]["spec"]["train"]["epochs"] == 3 and "checkpoint.safetensors" in shown["artifacts"]
    dest = tmp_path / "h.csv"
    nngeo("export", out["run"], "--format", "csv", "-o", str(dest))
    hist = pd.read_csv(dest)
    assert list(hist["epoch"]) == [0, 1, 2, 3]


def test_plain_train_prints_progress_and_is_listed():
    proc = nngeo("train", *TINY)
    assert "trained: run" in proc.stdout and "%" in proc.stderr  # the progress bar
    assert "mlp" in nngeo("list").stdout


def test_errors_are_one_line_with_nonzero_exit():
    for args in (
        ["train", "--model", "nonexistent"],
        ["train", "--data", "nonexistent"],
        ["show", "ffffffff"],
        ["train", *TINY, "--epochs", "-1"],
        ["export", "zz"],
    ):
        proc = nngeo(*args, check=False)
        assert proc.returncode == 2, args
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("nngeo: error:"), proc.stderr


def test_registries_are_listed():
    models = {m["name"] for m in json.loads(nngeo("models", "--json").stdout)}
    assert {"mlp", "fcn_mnist", "lenet5", "cnn_mnist", "vgg11", "resnet20"} <= models
    data = {d["name"] for d in json.loads(nngeo("datasets", "--json").stdout)}
    assert {"xor", "sinusoid", "moons", "circles", "spirals", "digits", "mnist"} <= data


def _fresh_python(code: str) -> str:
    """Run code in a new interpreter (nothing imported yet) and return its stdout."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_help_starts_without_torch():
    # every subcommand's parser is built for --help; torch (seconds to import) must stay out of it
    code = (
        "import sys\nfrom nngeo_core.cli import build_parser\nbuild_parser().format_help()\n"
        "print(sorted(m for m in ('torch', 'pandas', 'pyarrow') if m in sys.modules))"
    )
    assert _fresh_python(code).strip() == "[]"


def test_sweep_spec_json_rebuilds_in_a_fresh_process():
    # a queued prune-sweep spec must load in a worker that has not imported the pruning lab yet
    from nngeo_core.pruning import SweepSpec
    from nngeo_core.specs import DataSpec, ModelSpec, RunSpec, to_dict

    spec = SweepSpec(
        run=RunSpec(model=ModelSpec("mlp"), data=DataSpec("xor")), strategy="random", sparsities=(0.5, 0.9)
    )
    # as a worker does: the job system is imported (it tells specs how to find job-kind spec types),
    # the pruning lab is not
    code = (
        f"import json, sys\nimport nngeo_core.jobs\nfrom nngeo_core.specs import spec_from_dict\n"
        f"assert 'nngeo_core.pruning.specs' not in sys.modules\n"
        f"s = spec_from_dict({json.dumps(json.dumps(to_dict(spec)))})\n"
        f"print(type(s).__name__, s.hash)"
    )
    assert _fresh_python(code).split() == ["SweepSpec", spec.hash]


def test_pruning_exports_are_the_objects_not_submodules():
    # the package loads its names lazily; a submodule of the same name must never shadow one
    import importlib
    import types

    import nngeo_core.pruning as pruning

    for mod in ("comparison", "masks", "specs", "strategies", "sweep", "jobs", "cli"):
        importlib.import_module(f"nngeo_core.pruning.{mod}")
    for name in pruning.__all__:
        assert not isinstance(getattr(pruning, name), types.ModuleType), name
    assert callable(pruning.compare) and callable(pruning.prune)
