"""The command line, run as a real subprocess the way a user runs it."""

import dataclasses
import json
import os
import pprint
import subprocess
import sys

import pandas as pd
import pytest

from nngeo_core import catalogue
from nngeo_core.errors import NNGeoError


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


# -- the catalogue: the registries' names, descriptions and parameters without importing them ---
def _live_registries() -> dict:
    """What the catalogue copies, read from the live registries (importing torch and the rest)."""
    from nngeo_core.analyses import ANALYSES
    from nngeo_core.data import dataset_info, derived, list_datasets
    from nngeo_core.jobs.registry import JOB_KINDS
    from nngeo_core.models import list_models, model_info
    from nngeo_core.params import defaults_of
    from nngeo_core.pruning.strategies.registry import STRATEGIES

    return {
        "MODELS": {n: {k: v for k, v in model_info(n).items() if k != "name"} for n in list_models()},
        "DATASETS": {
            n: {k: v for k, v in dataclasses.asdict(dataset_info(n)).items() if k != "name"} for n in list_datasets()
        },
        "DERIVED_PREFIXES": derived.PREFIXES,
        "DERIVED_FORMS": derived.FORMS,
        "ANALYSES": {n: {**a.info(), "params": defaults_of(a.params)} for n, a in ANALYSES.items()},
        "STRATEGIES": {
            n: {"description": s.description, "needs_data": s.needs_data, "params": s.defaults}
            for n, s in STRATEGIES.items()
        },
        "JOB_KINDS": tuple(sorted(JOB_KINDS.names())),
    }


def test_the_catalogue_equals_the_live_registries():
    live = _live_registries()
    for table, want in live.items():
        have = getattr(catalogue, table)
        # equal entries, in the same order (the order users see)
        assert have == want and list(have) == list(want), (
            f"nngeo_core/catalogue.py is out of date: set {table} = {pprint.pformat(want, sort_dicts=False)}"
        )


def test_the_catalogue_gives_the_registries_own_unknown_name_errors():
    from nngeo_core.analyses import ANALYSES
    from nngeo_core.data import load
    from nngeo_core.models import MODELS
    from nngeo_core.pruning.strategies.registry import STRATEGIES

    for what, registry, check in (
        ("model", MODELS, catalogue.check_model),
        ("analysis", ANALYSES, catalogue.check_analysis),
        ("pruning strategy", STRATEGIES, catalogue.check_strategy),
    ):
        with pytest.raises(NNGeoError) as fast:
            check("nope")
        assert str(fast.value) == str(registry.unknown("nope")), what
    for name in ("nope", "permuted:nope:3", "split:permuted:nope:1:0-4"):
        with pytest.raises(NNGeoError) as live:
            load(name)
        with pytest.raises(NNGeoError) as fast:
            catalogue.check_dataset(name)
        assert str(fast.value) == str(live.value), name
    for known in ("xor", "permuted:digits:3", "split:permuted:mnist:1:0-4", "split:digits"):
        catalogue.check_dataset(known)  # known, or malformed in a way the loader explains itself


def _imported_modules(*args: str) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Run `python -X importtime -m nngeo_core ARGS`; its result and every module it imported."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "nngeo_core", *args], capture_output=True, text=True, timeout=120
    )
    lines = [line for line in proc.stderr.splitlines() if line.startswith("import time:")]
    assert len(lines) > 50, proc.stderr  # importtime was on: the stdlib alone imports dozens
    return proc, {line.rsplit("|", 1)[1].strip() for line in lines}


HEAVY = {"torch", "sklearn", "pandas", "pyarrow", "gudhi", "ot", "scipy"}


@pytest.mark.parametrize(
    "args,code",
    [
        (["--help"], 0),
        (["models"], 0),
        (["models", "--json"], 0),
        (["datasets"], 0),
        (["datasets", "--json"], 0),
        (["analyses", "--json"], 0),
        (["strategies"], 0),
        (["train", "--model", "nope"], 2),
        (["train", "--data", "nope"], 2),
        (["prune", "--strategy", "nope"], 2),
        (["analyse", "abc", "--method", "nope"], 2),
        (["train", "--epochs", "x"], 2),
    ],
)
def test_listings_and_name_errors_do_not_import_torch(args, code):
    proc, imported = _imported_modules(*args)
    assert proc.returncode == code, proc.stderr[-2000:]
    assert not HEAVY & imported, f"{' '.join(args)} imported {sorted(HEAVY & imported)}"


def test_the_listings_are_the_catalogue():
    assert json.loads(nngeo("models", "--json").stdout) == json.loads(json.dumps(catalogue.rows(catalogue.MODELS)))
    names = [r["name"] for r in json.loads(nngeo("strategies", "--json").stdout)]
    assert names == list(catalogue.STRATEGIES)
    analyses = json.loads(nngeo("analyses", "--json").stdout)
    assert [r["name"] for r in analyses] == sorted(catalogue.ANALYSES)
    assert all(set(r) == {"name", "needs_data", "needs_store", "description", "params"} for r in analyses)
    text = nngeo("datasets").stdout.splitlines()
    assert [line.split()[0] for line in text[:-1]] == list(catalogue.DATASETS)
    assert all(form in text[-1] for form in catalogue.DERIVED_FORMS)


# -- argument mistakes: one line, naming the sub-command, exit 2 ---------------------------------
@pytest.mark.parametrize(
    "args,says,command",
    [
        (["bogus"], "argument command: invalid choice: 'bogus'", ""),
        ([], "the following arguments are required: command", ""),
        (["show"], "show: the following arguments are required: run", "show"),
        (["export", "k", "--format", "xml"], "export: argument --format: invalid choice: 'xml'", "export"),
        (["train", "--epochs", "x"], "train: argument --epochs: invalid int value: 'x'", "train"),
        (["train", "--bogus"], "train: unrecognized arguments: --bogus", "train"),
        (["jobs", "list", "--state", "bad"], "jobs list: argument --state: invalid choice: 'bad'", "jobs list"),
        (["store"], "store: the following arguments are required: COMMAND", "store"),
        (["store", "migrate", "--x"], "store migrate: unrecognized arguments: --x", "store migrate"),
        (["prune", "--sparsity", ".5", "--levels", "3"], "prune: argument --levels: not allowed with", "prune"),
    ],
)
def test_argument_mistakes_are_one_line(args, says, command):
    proc = nngeo(*args, check=False)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith(f"nngeo: error: {says}"), proc.stderr
    assert proc.stderr.rstrip().endswith(f"(see `{' '.join(['nngeo', *command.split()])} --help`)"), proc.stderr


def test_a_missing_dataset_says_what_to_do_first_and_whole(nngeo_home):
    env = {k: v for k, v in os.environ.items() if k != "NNGEO_DATA_DIR"}  # the default: $NNGEO_HOME/data
    proc = subprocess.run(
        [sys.executable, "-m", "nngeo_core", "train", "--model", "fcn_mnist", "--data", "mnist"],
        capture_output=True,
        text=True,
        env={**env, "NNGEO_DOWNLOAD": "0"},
        timeout=300,
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    raw = nngeo_home / "data" / "MNIST" / "raw"
    files = "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte"
    hint = f"put {files} (or .gz) in {raw}, or set NNGEO_DOWNLOAD=1 to download (needs network access)"
    assert proc.stderr == f"nngeo: error: mnist: {hint}\n"
