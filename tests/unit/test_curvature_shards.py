"""Sharded curvature (nngeo_core.jobs.shards): shards of one neural-curvature analysis run as
separate jobs and merge into exactly the table, and the key, of the unsharded analysis; a failed
or missing shard is the only one computed again; the layer groups are the optimal contiguous
split by edge count (checked against a brute force over every split)."""

from __future__ import annotations

import itertools
import json
import random
import shutil

import pandas as pd
import pytest
import torch

from nngeo_core import jobs
from nngeo_core.errors import NNGeoError
from nngeo_core.jobs import shards as sh
from nngeo_core.jobs.inprocess import InProcessBackend
from nngeo_core.jobs.runner import WorkerContext, execute_job
from nngeo_core.runs import load_run
from nngeo_core.specs import AnalysisSpec, DataSpec, ModelSpec, RunSpec, TrainSpec
from nngeo_core.store import Store

# lenet5_s2 on 16x16 digits: conv 6@6x6 s2 (6x6 out), conv 16@6x6 s2 (1x1 out), fc 16-120-84-10
RUN = RunSpec(
    data=DataSpec("digits", params={"resize": 16, "n_train": 200, "n_test": 100}),
    model=ModelSpec("lenet5_s2"),
    train=TrainSpec(epochs=1, seed=0),
)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """A store holding the run and its unsharded curvature table; (root, run key, spec, table)."""
    root = tmp_path_factory.mktemp("shards") / "store"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NNGEO_HOME", str(root.parent / "home"))
        mp.setenv("NNGEO_DOWNLOAD", "0")
        store = Store(root)
        run_key = jobs.run_job(RUN, store=store)
        spec = jobs.get_job_kind("analyse").prepare(AnalysisSpec(run=run_key, method="curvature"), store)
        key = jobs.run_job(spec, store=store)
        assert key == spec.hash
        table = store.get(key)
        entry = store.entry(key)
    return root, run_key, spec, table, entry


@pytest.fixture
def fresh(reference, tmp_path):
    """A copy of the reference store without the unsharded table: (store, spec, table, entry)."""
    root, _, spec, table, entry = reference
    store = Store(shutil.copytree(root, tmp_path / "store"))
    store.delete(spec.hash)
    assert not store.exists(spec.hash)
    return store, spec, table, entry


@pytest.fixture
def backend():
    b = InProcessBackend()
    yield b
    b.close()


def _catalog_view(entry: dict) -> dict:
    return {k: entry[k] for k in ("kind", "method", "run", "model", "data", "label", "n_rows", "spec")}


@pytest.mark.parametrize("n", [2, 3])
def test_merged_shards_are_the_unsharded_table_under_its_key(fresh, backend, n):
    store, spec, table, entry = fresh
    job = sh.submit_sharded(AnalysisSpec(run=spec.run[:8], method="curvature"), n, store=store, backend=backend)
    assert job.key == spec.hash and not job.done and len(job.jobs) == n == len(job.groups)
    assert all(i.kind == "analyse-shard" and i.state == "queued" for i in job.jobs)
    ran = backend.run_pending()
    assert [i.state for i in ran] == ["done"] * n
    merged = store.get(spec.hash)
    # row for row, value for value, dtype for dtype: the same table as one unsharded job
    pd.testing.assert_frame_equal(merged, table, check_exact=True)
    assert _catalog_view(store.entry(spec.hash)) == _catalog_view(entry)
    # each shard is an ordinary analysis of its layers, stored under the key `--param layers=` gives
    for info, group in zip(ran, job.groups, strict=True):
        alone = jobs.get_job_kind("analyse").prepare(
            AnalysisSpec(run=spec.run, method="curvature", params={"layers": group}), store
        )
        assert info.result == alone.hash and store.entry(alone.hash)["method"] == "curvature"
        assert set(store.get(alone.hash)["layer"]) == set(group.split(","))
    # submitting again finds the merged table: nothing queued
    again = sh.submit_sharded(spec, n, store=store, backend=backend)
    assert again.done and [i.cached for i in again.jobs] == [True] and backend.pending_ids() == []


def test_a_failed_or_missing_shard_is_the_only_one_computed_again(fresh, backend, monkeypatch):
    store, spec, table, _ = fresh
    real, calls, failed = sh.analyse, [], []

    def flaky(part, *, store, progress):
        calls.append(part.params["layers"])
        if part.params["layers"] == groups[1] and not failed:
            failed.append(1)
            raise RuntimeError("worker killed")
        return real(part, store=store, progress=progress)

    monkeypatch.setattr(sh, "analyse", flaky)
    groups = tuple(s.groups for s in sh.shard_specs(spec, 3, store=store))[0]
    first = sh.submit_sharded(spec, 3, store=store, backend=backend)
    assert [i.state for i in backend.run_pending()] == ["done", "failed", "done"]
    assert not store.exists(spec.hash)  # no merge while a shard is missing
    calls.clear()
    second = sh.submit_sharded(spec, 3, store=store, backend=backend)
    assert [i.cached for i in second.jobs] == [True, False, True]
    backend.run_pending()
    assert calls == [groups[1]]
    pd.testing.assert_frame_equal(store.get(spec.hash), table, check_exact=True)

    # a shard deleted from the store (and the merged table): only that shard runs again
    shard_keys = [sh.part_spec(spec, g).hash for g in groups]
    created = {k: store.entry(k)["created"] for k in shard_keys}
    store.delete(shard_keys[2])
    store.delete(spec.hash)
    calls.clear()
    third = sh.submit_sharded(spec, 3, store=store, backend=backend)
    assert [i.cached for i in third.jobs] == [True, True, False] and third.groups == first.groups
    backend.run_pending()
    assert calls == [groups[2]]
    assert [store.entry(k)["created"] for k in shard_keys[:2]] == [created[k] for k in shard_keys[:2]]
    pd.testing.assert_frame_equal(store.get(spec.hash), table, check_exact=True)
    # merging twice (two shards finishing together) writes the same table again: harmless
    assert sh.merge_if_complete(spec, groups, store) == spec.hash
    store.delete(spec.hash)
    assert sh.merge_if_complete(spec, groups, store) == spec.hash
    assert sh.merge_if_complete(spec, groups, store) == spec.hash
    pd.testing.assert_frame_equal(store.get(spec.hash), table, check_exact=True)


def _brute_force_best(weights: list[int], n: int) -> int:
    m = len(weights)
    best = None
    for cuts in itertools.combinations(range(1, m), n - 1):
        bounds = (0, *cuts, m)
        worst = max(sum(weights[a:b]) for a, b in itertools.pairwise(bounds))
        best = worst if best is None else min(best, worst)
    assert best is not None
    return best


def test_groups_are_contiguous_nonempty_and_optimal():
    rng = random.Random(0)
    for _ in range(200):
        m = rng.randint(1, 7)
        weights = [rng.choice([1, 10, 100, 1000]) * rng.randint(1, 9) for _ in range(m)]
        n = rng.randint(1, 9)
        groups = sh.balanced_groups(weights, n)
        assert len(groups) == min(n, m) and all(groups)
        assert [k for g in groups for k in g] == list(range(m))  # every layer once, in order
        assert max(sum(weights[k] for k in g) for g in groups) == _brute_force_best(weights, min(n, m))


def test_edge_counts_follow_the_layer_shapes(reference):
    root, run_key, spec, _, _ = reference
    store = Store(root)
    model = load_run(run_key, store=store).model
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    denses = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    x, out_positions = torch.zeros(1, 1, 16, 16), []
    for conv in convs:
        x = conv(x)
        out_positions.append(x.shape[2] * x.shape[3])
    assert out_positions == [36, 1]
    for preset, cap in (("nngeo", 4), ("tan2026", None)):
        whole = jobs.get_job_kind("analyse").prepare(
            AnalysisSpec(run=run_key, method="curvature", params={"preset": preset}), store
        )
        counts = [e for _, e in sh.layer_edges(whole, store)]
        want = [
            min(p, cap or p) * c.out_channels * (c.in_channels // c.groups) * c.kernel_size[0] * c.kernel_size[1]
            for c, p in zip(convs, out_positions, strict=True)
        ] + [d.out_features * d.in_features for d in denses]
        assert counts == want
    # the curvature table's own layers, in its order, are the ones split
    assert [name for name, _ in sh.layer_edges(spec, store)] == list(dict.fromkeys(reference[3]["layer"]))


def test_more_shards_than_layers_gives_one_layer_each(reference):
    root, _, spec, table, _ = reference
    groups = sh.shard_specs(spec, 9, store=Store(root))[0].groups
    assert list(groups) == list(dict.fromkeys(table["layer"]))
    sub = spec.replace(params={**dict(spec.params), "layers": "9,5"})  # a chosen subset, in layer order
    assert sh.shard_specs(sub, 4, store=Store(root))[0].groups == ("5", "9")


def test_bad_requests_are_one_line_errors_and_store_nothing(fresh, backend):
    store, spec, _, _ = fresh
    before = set(store.keys())
    for n in (0, -1, True, 2.5, "2"):
        with pytest.raises(NNGeoError, match="number of shards") as err:
            sh.submit_sharded(spec, n, store=store, backend=backend)
        assert "\n" not in str(err.value)
        with pytest.raises(NNGeoError, match="number of shards"):
            sh.run_sharded(spec, n, store=store)
    other = AnalysisSpec(run=spec.run, method="persistence")
    with pytest.raises(NNGeoError, match="only the curvature and curvature_weights analyses") as err:
        sh.submit_sharded(other, 2, store=store, backend=backend)
    assert "\n" not in str(err.value)
    with pytest.raises(NNGeoError, match="no weight layer named 'nope'"):
        sh.submit_sharded(spec.replace(params={**dict(spec.params), "layers": "nope"}), 2, store=store, backend=backend)
    with pytest.raises(NNGeoError, match="does not exist"):
        backend.submit(sh.ShardSpec(analysis=spec, groups=("0", "2"), index=2), store=store)
    weights = AnalysisSpec(run=spec.run, method="curvature_weights", params={"null_models": ("shuffled",)})
    with pytest.raises(NNGeoError, match="null models are not split into shards") as err:
        sh.submit_sharded(weights, 2, store=store, backend=backend)
    assert "\n" not in str(err.value)
    assert set(store.keys()) == before and backend.list() == []


def test_analyse_command_computes_or_queues_the_shards(fresh, capsys, monkeypatch):
    from nngeo_core.cli import main
    from nngeo_core.jobs.queues import get_backend

    store, spec, table, _ = fresh
    monkeypatch.setenv("NNGEO_STORE", store.root)
    # queued on the real (SQLite) queue, then claimed from it by the runner a Huey worker uses
    assert main(["analyse", spec.run[:8], "--method", "curvature", "--shards", "2", "--submit", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["result"] == spec.hash and out["done"] is False and len(out["jobs"]) == 2
    table_of_jobs = get_backend().table
    ctx = WorkerContext(worker_id="test-shards")
    assert [execute_job(table_of_jobs, j["id"], ctx) for j in out["jobs"]] == ["done", "done"]
    pd.testing.assert_frame_equal(store.get(spec.hash), table, check_exact=True)

    # here and now: stored shards are reused, the merge is rewritten
    store.delete(spec.hash)
    assert main(["analyse", spec.run, "--method", "curvature", "--shards", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["result"] == spec.hash and out["rows"] == len(table)
    assert main(["analyse", spec.run, "--method", "curvature", "--shards", "0"]) == 2
    assert "number of shards must be a whole number >= 1" in capsys.readouterr().err
    assert main(["analyse", spec.run, "--method", "curvature", "--submit"]) == 2
    assert "--submit queues shards" in capsys.readouterr().err
