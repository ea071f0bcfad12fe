"""Jobs with the in-process backend: the same submit/claim/run/record code the worker uses, with
the transport replaced by a FIFO in this process."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass

import pytest
import torch

from nngeo_core import jobs
from nngeo_core.analyses import register_analysis
from nngeo_core.errors import NNGeoError
from nngeo_core.jobs.inprocess import InProcessBackend
from nngeo_core.jobs.kinds import HealthSpec
from nngeo_core.jobs.runner import WorkerContext, execute_job
from nngeo_core.jobs.table import SqliteJobTable, blank_row
from nngeo_core.progress import Cancelled, Progress
from nngeo_core.runs import load_run
from nngeo_core.specs import AnalysisSpec, DataSpec, ModelSpec, RunSpec, SpecBase, TrainSpec, register_spec
from nngeo_core.store import Store


def tiny_run(seed: int = 0, epochs: int = 1, **train) -> RunSpec:
    return RunSpec(
        data=DataSpec("xor", params={"n_train": 64, "n_test": 64}),
        model=ModelSpec("mlp", {"widths": (4,)}),
        train=TrainSpec(epochs=epochs, seed=seed, **train),
    )


@pytest.fixture
def store(tmp_path):
    return Store(tmp_path / "store")


@pytest.fixture
def backend():
    b = InProcessBackend()
    yield b
    b.close()


# -- test-only job kinds and analyses ----------------------------------------------------------
@register_spec
@dataclass(frozen=True, eq=True)
class CountSpec(SpecBase):
    n: int = 0
    sleep: float = 0.0
    fail: str = ""
    kind: str = "test-count"


CALLS: list[int] = []


def count_job(spec: CountSpec, *, store, progress) -> str:
    CALLS.append(spec.n)
    time.sleep(spec.sleep)
    if spec.fail:
        raise RuntimeError(spec.fail)
    import pandas as pd

    return store.put("test-count", spec, pd.DataFrame({"n": [spec.n]}))


@pytest.fixture(autouse=True, scope="module")
def test_only_registrations():
    """Register the test-only kind and analyses for this module, and remove them afterwards so
    other tests that enumerate kinds or analyses never see them."""
    from nngeo_core import analyses
    from nngeo_core.jobs.registry import JOB_KINDS

    analyses.ANALYSES.load()
    jobs.register_job_kind("test-count", CountSpec, count_job)
    norms = register_analysis("test_weight_norms", description="Frobenius norm of each parameter (test only)")
    accuracy = register_analysis("test_test_accuracy", needs_data=True, description="test accuracy (test only)")
    analyses.ANALYSES.add("test_weight_norms", norms(weight_norms))
    analyses.ANALYSES.add("test_test_accuracy", accuracy(accuracy_analysis))
    yield
    JOB_KINDS.pop("test-count", None)
    for name in ("test_weight_norms", "test_test_accuracy"):
        analyses.ANALYSES.pop(name, None)


@register_spec
@dataclass(frozen=True, eq=True)
class OrphanSpec(SpecBase):
    kind: str = "test-not-registered"


def weight_norms(model, dataset, params, progress):
    import pandas as pd

    rows = []
    for name, p in model.named_parameters():
        progress.check()
        rows.append({"param": name, "norm": float(torch.linalg.norm(p.detach())) * params.get("scale", 1.0)})
    return pd.DataFrame(rows)


def accuracy_analysis(model, dataset, params, progress):
    import pandas as pd

    with torch.no_grad():
        acc = (model(dataset.x_test).argmax(1) == dataset.y_test).float().mean()
    return pd.DataFrame({"accuracy": [float(acc)], "n": [len(dataset.y_test)]})


# -- submit, dedupe, cache, states --------------------------------------------------------------
def test_submit_runs_and_resubmit_is_served_from_store(backend, store):
    spec = tiny_run()
    info = backend.submit(spec, store=store)
    assert info.state == "queued" and not info.cached and info.kind == "train" and info.result is None
    assert info.spec_hash == spec.hash and "mlp" in info.label

    done = backend.run_pending()
    assert [d.id for d in done] == [info.id]
    final = backend.status(info.id)
    assert final.state == "done" and final.result == spec.hash and final.progress == 1.0
    assert final.started <= final.ended and final.device == "cpu" and final.attempts == 1 and final.error is None
    assert "test_accuracy" in final.metrics
    assert store.exists(spec.hash) and store.entry(spec.hash)["kind"] == "train"

    again = backend.submit(spec, store=store)
    assert again.cached and again.state == "done" and again.result == spec.hash and again.id == info.id
    assert backend.run_pending() == []  # nothing was queued
    assert len(backend.list()) == 1
    logs = backend.logs(info.id)
    assert any("started on worker" in line for line in logs) and any(
        f"done: result {spec.hash}" in line for line in logs
    )


def test_result_stored_outside_the_queue_is_cached(backend, store):
    spec = tiny_run(seed=3)
    assert jobs.run_job(spec, store=store) == spec.hash  # direct, no queue
    info = backend.submit(spec, store=store)
    assert info.cached and info.state == "done" and info.result == spec.hash
    assert backend.run_pending() == []


def test_duplicate_of_queued_job_returns_existing(backend, store):
    a = backend.submit(tiny_run(seed=1), store=store)
    b = backend.submit(tiny_run(seed=1), store=store)
    c = backend.submit(tiny_run(seed=2), store=store)
    assert b.id == a.id and b.existing and not a.existing
    assert c.id != a.id
    # device is not part of the hash: the same computation on another device is the same job
    d = backend.submit(tiny_run(seed=1, device="cpu"), store=store)
    assert d.id == a.id
    assert len(backend.pending_ids()) == 2
    backend.run_pending()
    assert {j.state for j in backend.list()} == {"done"}


def test_duplicate_of_running_job_returns_existing(backend, store):
    CALLS.clear()
    spec = CountSpec(n=7, sleep=1.0)
    first = backend.submit(spec, store=store)
    t = threading.Thread(target=backend.run_pending)
    t.start()
    _wait_for(lambda: backend.status(first.id).state == "running")
    second = backend.submit(spec, store=store)
    assert second.id == first.id and second.state == "running"
    t.join()
    assert CALLS == [7] and backend.status(first.id).state == "done"


def test_cancel_queued_job_never_runs(backend, store):
    CALLS.clear()
    info = backend.submit(CountSpec(n=1), store=store)
    cancelled = backend.cancel(info.id)
    assert cancelled.state == "cancelled" and cancelled.ended is not None
    backend.enqueue(info.id)  # even a stray delivery must not run it
    backend.run_pending()
    assert CALLS == [] and backend.status(info.id).state == "cancelled"
    assert not store.exists(CountSpec(n=1).hash)
    # a cancelled job does not block a new submission of the same spec
    again = backend.submit(CountSpec(n=1), store=store)
    assert again.id != info.id and again.state == "queued"


def test_cancel_running_job_stops_it_and_stores_nothing(backend, store):
    spec = HealthSpec(seconds=60, tag="cancel-me")
    info = backend.submit(spec, store=store)
    t = threading.Thread(target=backend.run_pending)
    t.start()
    _wait_for(lambda: backend.status(info.id).state == "running")
    t0 = time.monotonic()
    assert backend.cancel(info.id).cancel_requested
    t.join(10)
    assert not t.is_alive() and time.monotonic() - t0 < 5
    final = backend.status(info.id)
    assert final.state == "cancelled" and final.result is None and final.error is None
    assert not store.exists(spec.hash) and store.temp_files() == [] and store.keys() == []
    assert any("cancelled" in line for line in backend.logs(info.id))


def test_cancel_running_training_stops_within_an_epoch(backend, store):
    spec = tiny_run(seed=5, epochs=100_000)
    info = backend.submit(spec, store=store)
    t = threading.Thread(target=backend.run_pending)
    t.start()
    _wait_for(lambda: backend.status(info.id).progress > 0, timeout=60)
    backend.cancel(info.id)
    t.join(10)
    assert not t.is_alive()
    assert backend.status(info.id).state == "cancelled" and store.keys() == []


def test_cancel_finished_job_changes_nothing(backend, store):
    info = backend.submit(CountSpec(n=11), store=store)
    backend.run_pending()
    assert backend.cancel(info.id).state == "done"


# -- errors ------------------------------------------------------------------------------------
def test_unknown_kind_and_wrong_spec_type_are_refused_at_submit(backend, store):
    with pytest.raises(NNGeoError, match="unknown job kind 'test-not-registered'"):
        backend.submit(OrphanSpec(), store=store)
    with pytest.raises(NNGeoError, match="takes a HealthSpec, got a CountSpec"):
        backend.submit(CountSpec(kind="health"), store=store)
    with pytest.raises(NNGeoError, match="not a job spec"):
        backend.submit(DataSpec("xor"), store=store)
    assert backend.list() == []


def test_bad_spec_fails_with_the_one_line_error_of_a_direct_run(backend, store):
    # defaults are filled in at submission, so a spec naming no registered model is refused there,
    # with the same one line as a direct run, and nothing is queued or stored
    spec = RunSpec(data=DataSpec("xor"), model=ModelSpec("no-such-model"), train=TrainSpec(epochs=1))
    with pytest.raises(NNGeoError) as direct:
        jobs.run_job(spec, store=store)
    with pytest.raises(NNGeoError) as submitted:
        backend.submit(spec, store=store)
    assert str(submitted.value) == str(direct.value)
    assert "\n" not in str(submitted.value) and "no-such-model" in str(submitted.value)
    assert backend.list() == [] and store.keys() == []


def test_unexpected_error_gives_one_line_and_a_logged_traceback(backend, store):
    info = backend.submit(CountSpec(n=2, fail="boom\nsecond line"), store=store)
    backend.run_pending()
    final = backend.status(info.id)
    assert final.state == "failed" and final.error == "RuntimeError: boom"
    text = "\n".join(backend.logs(info.id))
    assert "Traceback" in text and "count_job" in text


def test_kind_missing_on_the_worker_fails_the_job(backend, store):
    # a job queued by a submitter that knows a kind this worker lacks
    row = blank_row(
        id="feedc0ffee00",
        kind="vanished-kind",
        spec_hash="0" * 16,
        spec=json.dumps({"__type__": "HealthSpec", "kind": "vanished-kind"}),
        store=store.path,
        state="queued",
        submitted=time.time(),
    )
    backend.table.create(row)
    backend.enqueue("feedc0ffee00")
    backend.run_pending()
    final = backend.status("feedc0ffee00")
    assert final.state == "failed" and final.error.startswith("unknown job kind 'vanished-kind'")


def test_status_of_unknown_job_and_prefix_lookup(backend, store):
    info = backend.submit(CountSpec(n=3), store=store)
    assert backend.status(info.id[:5]).id == info.id
    with pytest.raises(NNGeoError, match="no job"):
        backend.status("zzzz")


# -- claims and progress -----------------------------------------------------------------------
def test_concurrent_claims_run_a_job_exactly_once(tmp_path, store):
    """Eight 'workers', each with its own connection to one job table file, race for one job."""
    CALLS.clear()
    path = tmp_path / "jobs.db"
    submitter = InProcessBackend(table=SqliteJobTable(path))
    info = submitter.submit(CountSpec(n=42, sleep=0.2), store=store)
    results, barrier = [], threading.Barrier(8)

    def race(i):
        table = SqliteJobTable(path)
        barrier.wait()
        results.append(execute_job(table, info.id, WorkerContext(worker_id=f"w{i}")))

    threads = [threading.Thread(target=race, args=(i,)) for i in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert results.count("done") == 1 and results.count(None) == 7
    assert CALLS == [42] and submitter.status(info.id).attempts == 1


def test_cancel_flag_is_read_at_most_every_half_second(backend, store):
    info = backend.submit(CountSpec(n=5), store=store)
    reads = []
    real_get = backend.table.get
    backend.table.get = lambda job_id: (reads.append(time.monotonic()), real_get(job_id))[1]
    from nngeo_core.jobs.runner import JobLog, JobProgress

    progress = JobProgress(backend.table, info.id, WorkerContext(worker_id="w"), JobLog(backend.table, info.id))
    t0 = time.monotonic()
    n = 0
    while time.monotonic() - t0 < 1.2:
        progress.check()
        n += 1
    assert n > 1000 and 2 <= len(reads) <= 4
    backend.table.update(info.id, {"cancel_requested": 1})
    time.sleep(0.55)
    with pytest.raises(Cancelled):
        progress.check()


def test_progress_phases_reach_the_table_and_logs(backend, store):
    spec = tiny_run(seed=9, epochs=3)
    info = backend.submit(spec, store=store)
    backend.run_pending()
    logs = backend.logs(info.id)
    assert any("] epoch " in line for line in logs)
    assert backend.status(info.id).metrics["epoch"] == 3


def test_background_backend_runs_jobs_by_itself(store):
    b = InProcessBackend(background=True)
    try:
        info = b.submit(CountSpec(n=77), store=store)
        final = b.wait(info.id, timeout=20)
        assert final.state == "done" and store.exists(CountSpec(n=77).hash)
        assert b.workers() and b.workers()[0]["state"] in ("idle", "busy")
    finally:
        b.close()


# -- analyse kind ------------------------------------------------------------------------------
def test_analyse_job_matches_recomputation_and_records_its_run(backend, store):
    run = tiny_run(seed=4, epochs=2, snapshots=(0,))
    run_key = jobs.run_job(run, store=store)
    spec = AnalysisSpec(run=run_key[:6], method="test_weight_norms", params={"scale": 2.0})
    info = backend.submit(spec, store=store)
    full = AnalysisSpec(run=run_key, method="test_weight_norms", params={"scale": 2.0})
    assert info.spec_hash == full.hash  # a key prefix names the same analysis
    backend.run_pending()
    final = backend.status(info.id)
    assert final.state == "done" and final.result == full.hash
    table = store.get(final.result)
    model = load_run(run_key, store=store).model
    expected = {n: 2.0 * float(torch.linalg.norm(p.detach())) for n, p in model.named_parameters()}
    assert dict(zip(table["param"], table["norm"], strict=False)) == pytest.approx(expected)
    entry = store.entry(final.result)
    assert (entry["kind"], entry["method"], entry["run"], entry["model"], entry["data"]) == (
        "analyse",
        "test_weight_norms",
        run_key,
        "mlp",
        "xor",
    )

    # epoch 0 is the initial snapshot: different weights from the trained model
    snap = backend.submit(AnalysisSpec(run=run_key, method="test_weight_norms", epoch=0), store=store)
    backend.run_pending()
    snap_table = store.get(backend.status(snap.id).result)
    init = load_run(run_key, store=store, epoch=0).model
    assert dict(zip(snap_table["param"], snap_table["norm"], strict=False)) == pytest.approx(
        {n: float(torch.linalg.norm(p.detach())) for n, p in init.named_parameters()}
    )
    assert snap_table["norm"].tolist() != pytest.approx((table["norm"] / 2).tolist())


def test_analyse_job_loads_the_runs_dataset_when_needed(backend, store):
    from nngeo_core.data import load as load_data

    run_key = jobs.run_job(tiny_run(seed=6, epochs=2), store=store)
    info = backend.submit(AnalysisSpec(run=run_key, method="test_test_accuracy"), store=store)
    backend.run_pending()
    table = store.get(backend.status(info.id).result)
    data = load_data(DataSpec("xor", params={"n_train": 64, "n_test": 64}))
    model = load_run(run_key, store=store).model.eval()
    with torch.no_grad():
        expected = float((model(data.x_test).argmax(1) == data.y_test).float().mean())
    assert table["accuracy"][0] == pytest.approx(expected) and table["n"][0] == 64


def test_analyse_refuses_unknown_methods_non_models_and_missing_snapshots(backend, store):
    run_key = jobs.run_job(tiny_run(seed=8), store=store)
    with pytest.raises(NNGeoError, match="unknown analysis"):
        backend.submit(AnalysisSpec(run=run_key, method="no-such-method"), store=store)
    health = jobs.run_job(HealthSpec(tag="x"), store=store)
    with pytest.raises(NNGeoError, match="not a model"):
        backend.submit(AnalysisSpec(run=health, method="test_weight_norms"), store=store)
    with pytest.raises(NNGeoError, match="no result"):
        backend.submit(AnalysisSpec(run="abcdef0123", method="test_weight_norms"), store=store)
    info = backend.submit(AnalysisSpec(run=run_key, method="test_weight_norms", epoch=7), store=store)
    backend.run_pending()
    final = backend.status(info.id)
    assert final.state == "failed" and "no snapshot for epoch 7" in final.error


def test_health_job_reports_who_ran_it(store):
    import os

    key = jobs.run_job(HealthSpec(seconds=0.1, tag="direct"), store=store)
    row = store.get(key).iloc[0]
    assert row["pid"] == os.getpid() and row["device"] == "cpu" and row["waited"] >= 0.1
    with pytest.raises(NNGeoError, match="seconds"):
        jobs.run_job(HealthSpec(seconds=-1), store=store)


def test_run_job_takes_a_progress(store):
    seen = []
    jobs.run_job(
        tiny_run(seed=10, epochs=2), Progress(lambda f, p, m: seen.append((f, p)), min_interval=0), store=store
    )
    assert seen and seen[-1][0] == 1.0


def _wait_for(cond, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached in time")


def test_analyse_command_runs_directly_and_then_finds_the_stored_table(store, capsys, monkeypatch):
    from nngeo_core.cli import main

    monkeypatch.setenv("NNGEO_STORE", store.root)
    run_key = jobs.run_job(tiny_run(seed=12), store=store)
    assert main(["analyse", run_key[:7], "--method", "test_weight_norms", "--param", "scale=3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    spec = AnalysisSpec(run=run_key, method="test_weight_norms", params={"scale": 3})
    assert out["result"] == spec.hash and out["cached"] is False and out["run"] == run_key
    assert out["rows"] == len(list(load_run(run_key, store=store).model.parameters()))
    assert main(["analyse", run_key, "--method", "test_weight_norms", "--param", "scale=3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["cached"] is True
    assert main(["analyse", run_key, "--method", "nope"]) == 2
    assert "unknown analysis 'nope'" in capsys.readouterr().err
