"""Stable result keys: the hash covers only values that differ from their defaults.

Golden hashes pin the keys of a few fixed requests: a change to the hash rule, to a spec's name
or to a default shows here first. Adding a defaulted field to a spec class changes none of them,
and a store written by nngeo 0.1.0 (``tests/fixtures/store-0.1.0``, made by
``tests/fixtures/make_legacy_store.py`` from the landed commit) is found in full after
``nngeo store migrate``.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from nngeo_core.cli import main
from nngeo_core.defaults import complete
from nngeo_core.pruning.specs import SweepSpec
from nngeo_core.specs import (
    AnalysisSpec,
    DataSpec,
    ModelSpec,
    RunSpec,
    SpecBase,
    TrainSpec,
    canonical_json,
    spec_from_dict,
    spec_hash,
)
from nngeo_core.store import Store
from nngeo_core.store.migrate import legacy_key, migrate

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "store-0.1.0"
RUN = RunSpec(
    data=DataSpec("xor", seed=1, params={"n_train": 500, "noise": 0.2}),
    model=ModelSpec("mlp", {"widths": (16, 8), "activation": "tanh"}),
    train=TrainSpec(epochs=3, lr=0.01, snapshots=(0, 3)),
)


def golden_specs():
    return {
        "default run": RunSpec(),
        "xor run": RUN,
        "digits 28x28": RunSpec(data=DataSpec("digits", params={"resize": 28}), model=ModelSpec("fcn_mnist")),
        "persistence p=1": AnalysisSpec(run="0123456789abcdef", method="persistence", params={"p": 1}),
        "magnitude sweep": SweepSpec(run=RUN, strategy="magnitude", sparsities=(0.5, 0.9)),
    }


GOLDEN = {
    "default run": "0a49951a6e4247be",
    "xor run": "771474cf6c22b6f1",
    "digits 28x28": "7de05c335f53b236",
    "persistence p=1": "7db40628dfee72f7",
    "magnitude sweep": "de982cd224c8cb98",
}


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_hashes(name):
    spec = golden_specs()[name]
    assert spec.hash == GOLDEN[name]
    assert complete(spec).hash == GOLDEN[name]  # filling in the defaults changes no key


def test_defaults_name_no_part_of_the_key():
    assert canonical_json(RunSpec()) == '{"__type__":"RunSpec"}'
    explicit = RunSpec(
        data=DataSpec("xor", params={"n_train": 1000, "noise": 0.3}),
        model=ModelSpec("mlp", {"activation": "relu"}),
        train=TrainSpec(epochs=20, optimizer="adam"),
    )
    assert complete(explicit).hash == RunSpec().hash
    assert explicit.hash != RunSpec().hash  # before the defaults are known, an explicit value counts


def test_analysis_params_equal_to_their_default_name_the_same_result():
    bare = complete(AnalysisSpec(run="0123456789abcdef", method="curvature_weights"))
    explicit = complete(AnalysisSpec(run="0123456789abcdef", method="curvature_weights", params={"alpha": 0.5}))
    other = complete(AnalysisSpec(run="0123456789abcdef", method="curvature_weights", params={"alpha": 0.9}))
    assert bare.hash == explicit.hash != other.hash
    assert bare.params["alpha"] == 0.5  # the stored spec says what was computed


def with_extra_field(cls: type) -> type:
    """``cls`` with one more defaulted field, under the same name (as a later version would have)."""
    fields = [(f.name, f.type, f) for f in dataclasses.fields(cls)]
    fields.append(("added_later", int, dataclasses.field(default=7)))
    return dataclasses.make_dataclass(cls.__name__, fields, bases=(SpecBase,), frozen=True)


@pytest.mark.parametrize("cls", [TrainSpec, DataSpec, ModelSpec, RunSpec])
def test_a_new_defaulted_field_changes_no_key(cls):
    newer = with_extra_field(cls)
    for name, spec in golden_specs().items():
        if not isinstance(spec, RunSpec):
            continue
        parts = {f.name: getattr(spec, f.name) for f in dataclasses.fields(spec)}
        if cls is RunSpec:
            rebuilt = newer(**parts)
        else:
            field_name = {TrainSpec: "train", DataSpec: "data", ModelSpec: "model"}[cls]
            inner = parts[field_name]
            parts[field_name] = newer(**{f.name: getattr(inner, f.name) for f in dataclasses.fields(inner)})
            rebuilt = RunSpec(**parts)
        assert rebuilt.hash == GOLDEN[name]
        assert rebuilt.replace(**{}).hash == GOLDEN[name]
    # a non-default value of the new field is part of the key
    assert newer(added_later=8).hash != newer().hash


@pytest.fixture
def legacy_store(tmp_path):
    root = tmp_path / "store"
    shutil.copytree(FIXTURE, root)
    return Store(root)


def table_digest(store: Store, key: str) -> list:
    """A result's rows and artefact bytes (the run column aside: keys it names are re-keyed too)."""
    frame = store.get(key)
    return [
        frame.drop(columns=["run"], errors="ignore").to_json(),
        *(store.read_artifact(key, a) for a in store.artifacts(key)),
    ]


def test_the_fixture_was_written_under_the_old_rule(legacy_store):
    catalog = legacy_store.catalog()
    assert len(catalog) == 10 and set(catalog["kind"]) == {"train", "analyse", "prune-sweep", "upload"}
    for row in catalog.to_dict("records"):
        assert legacy_key(row["spec"]) == row["key"]


def test_migrate_finds_every_old_result_under_its_new_key(legacy_store):
    before = {row["key"]: row for row in legacy_store.catalog().to_dict("records")}
    digests = {key: table_digest(legacy_store, key) for key in before}
    done = migrate(legacy_store, complete)
    assert set(done.renamed) == set(before) and not done.kept
    after = legacy_store.catalog()
    assert len(after) == len(before) and set(after["key"]) == set(done.renamed.values())
    for old, new in done.renamed.items():
        assert table_digest(legacy_store, new) == digests[old]  # nothing lost
    # every result is where today's code looks for the same request
    for row in after.to_dict("records"):
        stored = json.loads(row["spec"])
        assert spec_hash(complete(spec_from_dict(stored))) == row["key"]
        assert (
            pq.read_schema(legacy_store.result_path(row["kind"], row["key"])).metadata[b"nngeo.key"].decode()
            == row["key"]
        )
    runs = after[after["kind"] == "train"]
    xor = next(
        r
        for r in runs.to_dict("records")
        if json.loads(r["spec"])["data"]["name"] == "xor"
        and r["key"] in {a["run"] for a in after[after["kind"] == "analyse"].to_dict("records")}
    )
    persistence = complete(AnalysisSpec(run=xor["key"], method="persistence"))
    assert legacy_store.exists(persistence.hash)
    forgetting = after[after["method"] == "forgetting"].iloc[0]
    assert json.loads(forgetting["spec"])["params"]["run_b"] in set(runs["key"])
    sweep = after[after["kind"] == "prune-sweep"].iloc[0]
    assert set(legacy_store.get(sweep["key"])["run"]) <= set(runs["key"])
    # a second run has nothing left to do
    again = migrate(legacy_store, complete)
    assert not again.renamed and len(again.unchanged) == len(before)


def test_migrate_cli_dry_run_changes_nothing(legacy_store, monkeypatch, capsys):
    monkeypatch.setenv("NNGEO_STORE", legacy_store.root)
    keys = set(legacy_store.keys())
    assert main(["store", "migrate", "--dry-run", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["renamed"]) == keys and set(legacy_store.keys()) == keys
    assert main(["store", "migrate"]) == 0
    assert set(legacy_store.keys()) == set(out["renamed"].values())
