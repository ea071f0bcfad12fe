"""Curvature scores kept in the store (``strategies.curvature.store_scores``): a sweep in a fresh
process (the in-memory memo cleared) reads them instead of computing them, and what it reads
equals a computation from scratch; another preset, other weights or other calibration inputs
are another entry; a stored entry that does not fit the model is computed again."""

from __future__ import annotations

import pytest
import torch

import nngeo_core.pruning.strategies.curvature as curv
from nngeo_core.pruning import SweepSpec, run_sweep
from nngeo_core.pruning.strategies.registry import reset_caches
from nngeo_core.specs import DataSpec, ModelSpec, RunSpec, TrainSpec
from nngeo_core.store import Store

RUN = RunSpec(
    data=DataSpec("xor", params={"n_train": 200, "n_test": 200}),
    model=ModelSpec("mlp", {"widths": (8,)}),
    train=TrainSpec(epochs=3, batch_size=32, lr=1e-2),
)


@pytest.fixture
def store(nngeo_home):
    return Store(nngeo_home / "store")


def scores_entries(store: Store) -> list[str]:
    cat = store.catalog(kind=curv.SCORES_KIND)
    return list(cat["key"])


def test_a_second_process_reads_the_stored_scores_and_they_equal_a_fresh_computation(store, monkeypatch):
    first = SweepSpec(run=RUN, strategy="curvature", sparsities=(0.5,))
    table_a = store.get(run_sweep(first, store=store))
    (entry,) = scores_entries(store)

    computed = []
    real = curv.curvature_scores
    monkeypatch.setattr(curv, "curvature_scores", lambda *a, **k: computed.append(1) or real(*a, **k))
    reset_caches()  # a new process: nothing in memory
    neg = SweepSpec(run=RUN, strategy="curvature_neg", sparsities=(0.5, 0.8))
    run_sweep(neg, store=store)
    assert computed == [] and scores_entries(store) == [entry]  # read, not computed, not stored twice

    # what was read equals a computation from scratch in an empty store
    reset_caches()
    fresh = Store(store.root + "-fresh")
    table_b = fresh.get(run_sweep(first, store=fresh))
    assert computed == [1]
    assert table_a["accuracy"].tolist() == table_b["accuracy"].tolist()
    assert table_a["layer_sparsity"].tolist() == table_b["layer_sparsity"].tolist()
    stored_a = store.get(entry).sort_values(["layer", "index"]).reset_index(drop=True)
    stored_b = fresh.get(scores_entries(fresh)[0]).sort_values(["layer", "index"]).reset_index(drop=True)
    assert stored_a.equals(stored_b)


def test_another_preset_is_another_entry_and_a_misfit_entry_is_computed_again(store, monkeypatch):
    run_sweep(SweepSpec(run=RUN, strategy="curvature", sparsities=(0.5,)), store=store)
    run_sweep(SweepSpec(run=RUN, strategy="curvature", sparsities=(0.5,), params={"preset": "tan2026"}), store=store)
    assert len(scores_entries(store)) == 2

    model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    model.input_shape, model.num_classes = (2,), 2
    scores = {"0": torch.rand(3, 2), "2": torch.rand(2, 3)}
    curv.store_scores(store, "fp-test", scores, {"preset": "nngeo"})
    back = curv.stored_scores(store, "fp-test", model)
    assert back is not None and all(torch.equal(back[n], scores[n]) for n in scores)
    wider = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    wider.input_shape, wider.num_classes = (2,), 2
    assert curv.stored_scores(store, "fp-test", wider) is None  # does not fit: computed again
    assert curv.stored_scores(store, "fp-other", model) is None


def test_a_stored_score_set_names_the_weights_it_was_computed_on(store):
    import json

    from nngeo_core.runs import load_run

    key = run_sweep(SweepSpec(run=RUN, strategy="curvature", sparsities=(0.5,)), store=store)
    dense = load_run(store.get(key)["run"].iloc[0], store=store).model
    (entry,) = scores_entries(store)
    attrs = json.loads(store.entry(entry)["attrs"])
    assert attrs["weights"] == curv.weights_digest(dense) and attrs["settings"]["preset"] == "nngeo"
