"""The null-model checkbox of the Persistence and Curvature pages: it asks for the analyses with
null models, and a stored result with null models is drawn beside them (its own store, so the
session's fixture store keeps the results other page tests count)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[2] / "app.py")


def open_page(page: str, session: dict) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    for k, v in session.items():
        at.session_state[k] = v
    at.run()
    no_exception(at)
    at.switch_page(f"pages/{page}.py").run()
    return at


def no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def charts(at: AppTest) -> list:
    return at.get("plotly_chart")


@pytest.fixture
def nulls_run(tmp_path):
    from nngeo_core import jobs
    from nngeo_core.models.nulls import NULL_KINDS
    from nngeo_core.runs import train_run
    from nngeo_core.specs import AnalysisSpec, DataSpec, ModelSpec, RunSpec, TrainSpec
    from nngeo_core.store import default_store

    store = default_store()
    run = train_run(
        RunSpec(
            data=DataSpec("xor", params={"n_train": 100, "n_test": 100}),
            model=ModelSpec("mlp", {"widths": (6, 6)}),
            train=TrainSpec(epochs=1, batch_size=50, lr=0.01, device="cpu"),
        ),
        store=store,
    )
    for method in ("mst_overlap", "curvature_weights"):
        jobs.run_job(AnalysisSpec(run=run, method=method, params={"null_models": NULL_KINDS}), store=store)
    return run


def titles(at) -> list[str]:
    out = []
    for chart in charts(at):
        spec = json.loads(chart.proto.spec)
        out.append(" | ".join(str(t.get("name", "")) for t in spec["data"]))
    return out


def test_the_persistence_page_shows_the_mst_overlap_beside_its_null_models(nulls_run):
    from nngeo_core.dashboard.widgets import CURRENT_RUN

    at = open_page("persistence", {CURRENT_RUN: nulls_run})
    no_exception(at)
    assert not any("at initialisation" in t for t in titles(at))  # unchecked: no null figure
    at.checkbox(key="pers-nulls").check().run()
    no_exception(at)
    drawn = titles(at)
    nulls = [t for t in drawn if "at initialisation" in t]
    assert len(nulls) == 1 and "weights shuffled" in nulls[0] and "Gaussian" in nulls[0]
    assert any(t.startswith("overlap |MST") for t in drawn)  # the existing figure, trained rows only
    assert at.button(key="pers-np-go")  # NP with null models is not stored: its button is offered


def test_the_curvature_page_draws_the_null_models_and_the_networks_edges(nulls_run):
    from nngeo_core.dashboard.widgets import CURRENT_RUN

    at = open_page("curvature", {CURRENT_RUN: nulls_run})
    no_exception(at)
    at.checkbox(key="curv-nulls").check().run()
    no_exception(at)
    drawn = titles(at)
    assert sum("at initialisation" in t for t in drawn) == 1
    at.radio(key="curv-null-stat").set_value("negative_share").run()
    no_exception(at)
    assert len(charts(at)) == 5  # the null figure, then graph, histogram, matrix, curvature vs |w|
    # the edge readouts and the edge table are the network's own edges: 2·6 + 6·6 + 6·2
    table = at.dataframe[-1].value
    assert "model" not in table.columns and len(table) == 2 * 6 + 6 * 6 + 6 * 2
