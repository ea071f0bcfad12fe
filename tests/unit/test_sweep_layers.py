"""A sweep over chosen layers (``SweepSpec.layers``; ``nngeo prune --layers`` / ``--ablate-layers``,
the neural-curvature paper's one-layer-at-a-time ablation): only those layers lose weights, their
sparsity is the requested one, the other layers stay the dense model's bit for bit; the field
leaves earlier sweeps' keys as they were; bad names are one line and store nothing."""

from __future__ import annotations

import json

import pytest
import torch

from nngeo_core import checkpoint
from nngeo_core.cli import main
from nngeo_core.errors import NNGeoError
from nngeo_core.models import prunable_layers
from nngeo_core.pruning import SweepSpec, run_sweep
from nngeo_core.pruning.sweep import level_artifact
from nngeo_core.runs import load_run
from nngeo_core.specs import DataSpec, ModelSpec, RunSpec, TrainSpec, canonical_json
from nngeo_core.store import Store

RUN = RunSpec(
    data=DataSpec("xor", params={"n_train": 200, "n_test": 200}),
    model=ModelSpec("mlp", {"widths": (16, 16)}),
    train=TrainSpec(epochs=3, batch_size=32, lr=1e-2),
)


@pytest.fixture
def store(nngeo_home):
    return Store(nngeo_home / "store")


def level_state(store: Store, key: str, level: int) -> dict[str, torch.Tensor]:
    data = store.read_artifact(key, level_artifact(0, level))
    return checkpoint.load(data).model.state_dict()


def test_a_sweep_of_one_layer_prunes_that_layer_alone_to_each_level(store):
    spec = SweepSpec(run=RUN, strategy="magnitude", sparsities=(0.5, 0.9), layers=("3",))
    key = run_sweep(spec, store=store)
    table = store.get(key).sort_values("level")
    dense = load_run(table["run"].iloc[0], store=store).model.state_dict()
    names = [i.name for i in prunable_layers(load_run(table["run"].iloc[0], store=store).model)]
    assert "3" in names and len(names) == 3
    for level, (_, row) in enumerate(table.iterrows()):
        state = level_state(store, key, level)
        w, ref = state["3.weight"], dense["3.weight"]
        pruned = (w == 0) & (ref != 0)
        # the requested share of that layer's weights, the smallest in magnitude (an independent count)
        k = round(row["sparsity_requested"] * ref.numel())
        assert int(pruned.sum()) == k == round(json.loads(row["layer_sparsity"])["3"] * ref.numel())
        assert ref[pruned].abs().max() <= ref[~pruned].abs().min()
        for name in names:
            if name != "3":  # every other layer is the dense model's, bit for bit
                assert torch.equal(state[f"{name}.weight"], dense[f"{name}.weight"]), name
        assert row["layers"] == "3"
        assert json.loads(row["layer_sparsity"]).keys() == {"3"}


def test_the_layers_field_keeps_earlier_keys_and_is_canonical():
    plain = SweepSpec(run=RUN, strategy="magnitude")
    assert "layers" not in canonical_json(plain)  # the default is left out of the hash
    a = SweepSpec(run=RUN, strategy="magnitude", layers=("3", "1"))
    b = SweepSpec(run=RUN, strategy="magnitude", layers=["1", "3", "1"])
    assert a.hash == b.hash != plain.hash and a.layers == ("1", "3")


def test_ablate_layers_makes_one_sweep_per_layer_and_unknown_layers_are_one_line(nngeo_home, capsys):
    args = ["prune", "--model", "mlp", "--widths", "16", "--data", "xor", "--epochs", "2", "--sparsity", "0.5"]
    assert main([*args, "--ablate-layers", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert sorted(r["layers"] for r in rows) == ["1", "3"]  # mlp 2-16-2: two prunable layers
    for r in rows:
        assert r["layer_sparsity"] == {r["layers"]: 0.5}  # --json gives it decoded
    store = Store(nngeo_home / "store")
    before = set(store.keys())
    assert main([*args, "--layers", "1,conv9"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no prunable layer named 'conv9'" in err[0]
    assert set(store.keys()) == before


def test_a_layer_the_model_lacks_stops_the_sweep_in_one_line_and_stores_nothing(store):
    spec = SweepSpec(run=RUN, strategy="magnitude", sparsities=(0.5,), layers=("9",))
    with pytest.raises(NNGeoError, match=r"no prunable layer named '9'") as info:
        run_sweep(spec, store=store)
    assert "\n" not in str(info.value)
    assert not store.exists(spec.hash)
