"""The ``forgetting`` analysis through the real analyse job: two tiny mlps trained with the
project's own ``train_run`` on two toy tasks (xor = task A, moons = task B), the second run given
by its key, checked at submission."""

from __future__ import annotations

import numpy as np
import pytest

from nngeo_core import jobs
from nngeo_core.data import load as load_data
from nngeo_core.errors import NNGeoError
from nngeo_core.runs import load_run, train_run
from nngeo_core.specs import AnalysisSpec, DataSpec, ModelSpec, RunSpec, TrainSpec
from nngeo_core.store import Store
from nngeo_core.train import evaluate

COLUMNS = {"step", "path_length", "step_length", "distance_to_b", "accuracy_a", "accuracy_b", "accuracy_mean", "best"}


def _run_spec(data: str, widths=(8, 8), seed: int = 0) -> RunSpec:
    return RunSpec(
        data=DataSpec(data, params={"n_train": 200, "n_test": 200}),
        model=ModelSpec("mlp", {"widths": widths}),
        train=TrainSpec(epochs=3, batch_size=32, lr=0.01, seed=seed, device="cpu"),
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    store = Store(str(tmp_path_factory.mktemp("forgetting-store")))
    keys = {
        "a": train_run(_run_spec("xor"), store=store),
        "b": train_run(_run_spec("moons", seed=1), store=store),
        "narrow": train_run(_run_spec("moons", widths=(4,)), store=store),
    }
    return store, keys


def _forgetting(store, run, **params) -> AnalysisSpec:
    return AnalysisSpec(run=run, method="forgetting", params=params)


def test_the_path_walks_from_run_a_towards_run_b(runs):
    store, k = runs
    key = jobs.run_job(_forgetting(store, k["a"], run_b=k["b"][:6], steps=12), store=store)
    path = store.get(key)
    assert set(path.columns) == COLUMNS
    assert list(path.step) == list(range(13))
    assert store.spec(key)["params"]["run_b"] == k["b"]  # the prefix became the full key
    assert store.entry(key)["method"] == "forgetting" and store.entry(key)["run"] == k["a"]

    d = path.distance_to_b.to_numpy()
    assert np.all(np.diff(d) <= 1e-9) and d[-1] < 0.9 * d[0]

    # the path starts at run A: its accuracies there are run A's own, measured here independently
    model_a = load_run(k["a"], store=store).model
    task_a, task_b = load_data(_run_spec("xor").data), load_data(_run_spec("moons").data)
    assert path.accuracy_a.iloc[0] == evaluate(model_a, task_a.x_test, task_a.y_test)[1]
    assert path.accuracy_b.iloc[0] == evaluate(model_a, task_b.x_test, task_b.y_test)[1]
    assert path.accuracy_mean.iloc[path.best.to_numpy().argmax()] == path.accuracy_mean.max()
    assert path.best.sum() == 1


def test_gradient_steps_pull_all_the_way_towards_run_b(runs):
    store, k = runs
    key = jobs.run_job(_forgetting(store, k["a"], run_b=k["b"], steps=8, method="gradient"), store=store)
    d = store.get(key).distance_to_b.to_numpy()
    assert d[-1] < 0.5 * d[0]


def test_submitting_a_bad_request_fails_at_once_with_one_line(runs):
    store, k = runs
    with pytest.raises(NNGeoError) as err:
        jobs.submit(_forgetting(store, k["a"], run_b=k["narrow"]), store=store)
    assert "\n" not in str(err.value) and "another architecture" in str(err.value)
    assert jobs.list_jobs() == []


@pytest.mark.parametrize(
    "params,match",
    [
        ({}, "give run_b"),
        ({"run_b": 1.5e30}, "got the number 1.5e.30: give more of the key's digits"),  # `--param run_b=15e29`
        ({"run_b": "0123abcd0123abcd"}, "run_b: no result"),
        ({"run_b": "narrow"}, r"another architecture than run \w{8}: 1\.bias is 4 there, 8 here"),
        ({"run_b": "a"}, "the analysed run itself"),
        ({"run_b": "b", "step": 3}, "unknown parameter 'step'"),
    ],
)
def test_bad_requests_give_one_line_errors(runs, params, match):
    store, k = runs
    params = {n: k.get(v, v) if isinstance(v, str) else v for n, v in params.items()}
    before = set(store.keys())
    with pytest.raises(NNGeoError, match=match) as err:
        jobs.run_job(_forgetting(store, k["a"], **params), store=store)
    assert "\n" not in str(err.value)
    assert set(store.keys()) == before


def test_run_b_must_be_a_model(runs):
    store, k = runs
    analysis = jobs.run_job(AnalysisSpec(run=k["a"], method="persistence"), store=store)
    with pytest.raises(NNGeoError, match="is a analyse result, not a model"):
        jobs.run_job(_forgetting(store, k["b"], run_b=analysis), store=store)
