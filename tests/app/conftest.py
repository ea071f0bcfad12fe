"""A store with real fixture results, made once per session: a tiny trained run with snapshots,
its analyses, two pruning sweeps and an uploaded example checkpoint."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import pytest

from nngeo_core.settings import home_env

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")


@dataclass
class Fixture:
    home: Path
    run: str  # a trained mlp on xor with snapshots at epochs 0 and 3
    image_run: str  # a trained mlp on 8×8 digits (an image task)
    upload: str  # the mlp-on-xor example, uploaded
    sweeps: list[str]  # random and magnitude sweeps of the run


def env_for(home: Path) -> dict[str, str]:
    return {**home_env(home), "NNGEO_DOWNLOAD": "0", "NNGEO_EMBEDDED_WORKER": "0"}


@pytest.fixture(scope="session")
def fixture_store(tmp_path_factory) -> Fixture:
    home = tmp_path_factory.mktemp("nngeo-app-home")
    with mock.patch.dict(os.environ, env_for(home)):
        from nngeo_core import jobs
        from nngeo_core.dashboard.examples import EXAMPLES, example_bytes
        from nngeo_core.pruning import SweepSpec, run_sweep
        from nngeo_core.runs import train_run
        from nngeo_core.specs import AnalysisSpec, DataSpec, ModelSpec, RunSpec, TrainSpec
        from nngeo_core.store import default_store
        from nngeo_core.uploads import store_upload

        store = default_store()
        spec = RunSpec(
            data=DataSpec("xor", params={"n_train": 200, "n_test": 200}),
            model=ModelSpec("mlp", {"widths": (8, 8)}),
            train=TrainSpec(epochs=3, batch_size=64, lr=0.01, snapshots=(0, 3), device="cpu"),
        )
        run = train_run(spec, store=store)
        for method in ("persistence", "critical_compression", "mst_overlap"):
            jobs.run_job(AnalysisSpec(run=run, method=method), store=store)
        jobs.run_job(AnalysisSpec(run=run, method="persistence", epoch=0), store=store)
        jobs.run_job(AnalysisSpec(run=run, method="volume", params={"resolution": 20}), store=store)
        jobs.run_job(AnalysisSpec(run=run, method="curvature_weights"), store=store)
        jobs.run_job(
            AnalysisSpec(
                run=run,
                method="geodesic",
                params={"sparsity": 0.7, "steps": 4, "method": "exact", "batch_size": 16, "eval_size": 100},
            ),
            store=store,
        )
        image_spec = RunSpec(
            data=DataSpec("digits", params={"n_train": 200, "n_test": 50}),
            model=ModelSpec("mlp", {"widths": (8,)}),
            train=TrainSpec(epochs=1, batch_size=64, lr=0.01, device="cpu"),
        )
        image_run = train_run(image_spec, store=store)
        jobs.run_job(
            AnalysisSpec(run=image_run, method="volume", params={"indices": [0, 1, 2], "resolution": 6}), store=store
        )
        sweeps = [
            run_sweep(SweepSpec(run=spec, strategy=strategy, sparsities=(0.5, 0.75), seeds=(0, 1)), store=store)
            for strategy in ("random", "magnitude")
        ]
        name = "mlp on xor"
        upload = store_upload(example_bytes(name), name=EXAMPLES[name][0], store=store, data_spec=EXAMPLES[name][1]).key
    return Fixture(home=home, run=run, image_run=image_run, upload=upload, sweeps=sweeps)


@pytest.fixture
def with_fixture_store(fixture_store, monkeypatch, tmp_path) -> Fixture:
    """Point this test's environment at the session's fixture store (after the autouse empty
    home), with a job queue of its own so jobs one test submits are not seen by another."""
    for k, v in env_for(fixture_store.home).items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("NNGEO_QUEUE", str(tmp_path / "queue.db"))
    return fixture_store
