"""Every `--json` the CLI prints is strict JSON: no NaN or Infinity (which JSON does not have),
whatever the stored results hold. The commands are found by walking ``build_parser``, so one
added later without a case here fails the test."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from nngeo_core import checkpoint
from nngeo_core.cli import build_parser, main
from nngeo_core.cli_args import jsonable, print_json
from nngeo_core.jobs.queues import get_backend
from nngeo_core.jobs.table.base import metrics_json
from nngeo_core.models import build
from nngeo_core.store import default_store

TINY = ["--model", "mlp", "--data", "xor", "--widths", "4", "--epochs", "1"]
TINY += ["--data-param", "n_train=64", "--data-param", "n_test=64"]


def strict_loads(text: str):
    """json.loads that refuses NaN, Infinity and -Infinity instead of reading them as floats."""

    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def json_commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """Every (sub-)command path whose parser has a --json flag, nested ones included."""
    found = {path} if any("--json" in a.option_strings for a in parser._actions) else set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found |= json_commands(sub, (*path, name))
    return found


def test_strict_loads_and_jsonable_are_what_they_claim():
    with pytest.raises(ValueError):
        strict_loads('{"a": NaN}')
    with pytest.raises(ValueError):
        strict_loads("[-Infinity]")
    weird = {
        "nan": float("nan"),
        "inf": -math.inf,
        "np": np.float32("nan"),
        "i": np.int64(3),
        "arr": np.array([1.0, np.inf]),
        "t": torch.tensor([0.5, float("nan")]),
        np.int64(7): (1, {2}),
        "path": Path("/x/y"),
    }
    assert jsonable(weird) == {
        "nan": None,
        "inf": None,
        "np": None,
        "i": 3,
        "arr": [1.0, None],
        "t": [0.5, None],
        7: [1, [2]],
        "path": "/x/y",
    }


def test_print_json_writes_strict_json(capsys):
    print_json([float("nan"), {"x": np.float64("inf")}, pd.Timestamp(0)])
    assert strict_loads(capsys.readouterr().out) == [None, {"x": None}, "1970-01-01T00:00:00"]


def run_json(capsys, *args: str):
    assert main(list(args)) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    return strict_loads(out)


def test_every_json_command_prints_strict_json(capsys, tmp_path):
    store = default_store()
    # a run, trained by the CLI itself
    run = run_json(capsys, "train", *TINY, "--json")["run"]
    # a result holding NaN and infinities, in its catalogue row, its attributes and its table
    table = pd.DataFrame({"x": [1.0, np.nan, np.inf], "n": np.arange(3, dtype=np.int64)})
    nan_key = store.put(
        "nan-test", {"kind": "nan-test"}, table, attrs={"metric": float("nan"), "sparsity": -np.inf, "extra": np.nan}
    )
    assert math.isnan(store.entry(nan_key)["metric"])  # the store does hold NaN: the test has something to catch
    # an uploaded checkpoint file
    torch.manual_seed(0)
    upload = tmp_path / "m.safetensors"
    upload.write_bytes(checkpoint.to_bytes(build("mlp", widths=(3,))))
    # a dataset of your own: a tensor file of 2-D points
    np.savez(tmp_path / "pts.npz", x=np.random.default_rng(0).normal(size=(20, 2)), y=np.arange(20) % 2)
    # a queued job with NaN among its metrics (no worker runs it)
    job = run_json(capsys, "jobs", "submit", "train", *TINY, "--seed", "1", "--json")["id"]
    get_backend().table.update(job, {"metrics": metrics_json({"loss": float("nan"), "accuracy": 0.5})})

    cases: dict[tuple[str, ...], list[str]] = {
        ("train",): ["train", *TINY, "--json"],
        ("list",): ["list", "--json"],
        ("show",): ["show", nan_key, "--json"],
        ("export",): ["export", nan_key, "-o", str(tmp_path / "t.csv"), "--json"],
        ("models",): ["models", "--json"],
        ("datasets",): ["datasets", "--json"],
        ("analyses",): ["analyses", "--json"],
        ("strategies",): ["strategies", "--json"],
        ("store", "migrate"): ["store", "migrate", "--dry-run", "--json"],
        ("upload",): ["upload", str(upload), "--data", "xor", "--json"],
        ("data", "add"): ["data", "add", str(tmp_path / "pts.npz"), "--json"],
        ("data", "list"): ["data", "list", "--json"],
        ("analyse",): ["analyse", run, "--method", "mst_overlap", "--json"],
        ("prune",): ["prune", *TINY, "--sparsity", "0.5", "--quiet", "--json"],
        ("compare",): ["compare", "--json"],
        ("jobs", "status"): ["jobs", "status", job, "--json"],
        ("jobs", "list"): ["jobs", "list", "--json"],
        ("jobs", "logs"): ["jobs", "logs", job, "--json"],
        ("jobs", "workers"): ["jobs", "workers", "--json"],
        ("jobs", "cancel"): ["jobs", "cancel", job, "--json"],
        ("jobs", "clean"): ["jobs", "clean", "--older-than", "1", "--json"],
        ("reproduce",): ["reproduce", "balwani2022_eta_tau", "--size", "test", "--json"],
        ("reproductions",): ["reproductions", "--json"],
    }
    discovered = json_commands(build_parser())
    assert discovered == set(cases), f"--json commands without a case here: {sorted(discovered - set(cases))}"
    out = {path: run_json(capsys, *args) for path, args in cases.items()}

    listed = {r["key"]: r for r in out[("list",)]}
    assert listed[nan_key]["metric"] is None and listed[nan_key]["sparsity"] is None
    shown = out[("show",)]
    assert [r["x"] for r in shown["rows"]] == [1.0, None, None] and shown["entry"]["attrs"]["extra"] is None
    assert out[("jobs", "status")]["metrics"] == {"loss": None, "accuracy": 0.5}
    assert out[("jobs", "cancel")]["state"] == "cancelled"
    # one seed: the comparison's standard deviations are NaN, printed as null
    assert out[("compare",)] and "NaN" not in json.dumps(out[("compare",)])
