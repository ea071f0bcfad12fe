"""Every page renders without an exception on an empty store and on a store with real results,
and the pages' actions (submit, upload, delete) do what they say. Streamlit's AppTest runs the
real app.py (st.navigation) in-process; NNGEO_EMBEDDED_WORKER=0 keeps it from spawning a worker."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[2] / "app.py")

PAGES = [
    "runs",
    "train",
    "persistence",
    "curvature",
    "volume",
    "pruning",
    "compare",
    "geodesics",
    "upload",
    "reproduce",
]


def open_page(page: str, session: dict | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    for k, v in (session or {}).items():
        at.session_state[k] = v
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    at.switch_page(f"pages/{page}.py").run()
    return at


def no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def n_values(array) -> int:
    """Length of an array in a plotly JSON spec (plain list or base64 typed array)."""
    if isinstance(array, dict):
        import base64

        import numpy as np

        return len(np.frombuffer(base64.b64decode(array["bdata"]), dtype=np.dtype(array["dtype"])))
    return len(array)


def charts(at: AppTest) -> list:
    return at.get("plotly_chart")


@pytest.mark.parametrize("page", PAGES)
def test_page_renders_on_an_empty_store(page):
    at = open_page(page)
    no_exception(at)
    assert at.title and at.title[0].value  # the page itself ran, not only the sidebar


@pytest.mark.parametrize("page", PAGES)
def test_page_renders_on_a_store_with_results(page, with_fixture_store):
    from nngeo_core.dashboard.widgets import CURRENT_RUN

    at = open_page(page, {CURRENT_RUN: with_fixture_store.run})
    no_exception(at)
    assert not at.error, [e.value for e in at.error]


def test_sidebar_shows_store_worker_and_a_cancellable_job(nngeo_home):
    # AppTest keeps the sidebar only on an app's first run under st.navigation, so check it there
    from nngeo_core import jobs
    from nngeo_core.specs import DataSpec, ModelSpec, RunSpec

    info = jobs.submit(RunSpec(data=DataSpec("xor"), model=ModelSpec("mlp", {"widths": (4,)})))
    at = AppTest.from_file(APP, default_timeout=120).run()
    no_exception(at)
    captions = [c.value for c in at.sidebar.caption]
    assert any(str(nngeo_home / "store") in c for c in captions)
    assert any(c.startswith("Worker:") and "no worker running" in c for c in captions)
    bars = at.sidebar.get("progress")
    assert len(bars) == 1 and "train mlp on xor" in bars[0].proto.text
    at.sidebar.button(key=f"cancel-{info.id}").click().run()
    assert jobs.status(info.id).state == "cancelled"


def test_runs_page_lists_the_catalog(with_fixture_store):
    from nngeo_core.store import default_store

    at = open_page("runs")
    table = at.dataframe[0].value
    assert set(table["key"]) == set(default_store().keys())
    at.text_input(key="runs-text").set_value("upload").run()
    assert list(at.dataframe[0].value["kind"].unique()) == ["upload"]


def test_runs_page_exports_a_stored_model_that_plain_torch_loads(with_fixture_store):
    """The Runs page's model download: the file it offers is a safetensors state_dict that loads
    into a freshly built architecture and computes what the stored model computes."""
    import copy

    import torch
    from safetensors.torch import load as st_load

    from nngeo_core.models import model_input_shape
    from nngeo_core.runs import load_run

    at = open_page("runs")
    at.selectbox(key="runs-chosen").set_value(with_fixture_store.run).run()
    no_exception(at)
    at.selectbox(key="runs-model-format").set_value("safetensors").run()
    at.button(key="runs-model-prepare").click().run()
    no_exception(at)
    wanted, data, name, mime = at.session_state["runs-model-file"]
    assert wanted[1] == with_fixture_store.run and name.endswith(".safetensors")
    stored = load_run(with_fixture_store.run)
    fresh = copy.deepcopy(stored.model)  # the same architecture, its weights scrambled before loading
    with torch.no_grad():
        for p in fresh.parameters():
            p.normal_()
    fresh.load_state_dict(st_load(data))
    x = torch.randn(16, *model_input_shape(stored.model))
    with torch.no_grad():
        assert torch.equal(fresh.eval()(x), stored.model.eval()(x))


def test_persistence_page_shows_stored_figures_and_submits_missing_epochs(with_fixture_store):
    from nngeo_core import jobs
    from nngeo_core.dashboard.widgets import CURRENT_RUN
    from nngeo_core.specs import AnalysisSpec

    at = open_page("persistence", {CURRENT_RUN: with_fixture_store.run})
    no_exception(at)
    assert len(charts(at)) >= 4  # NP per layer, NP over training, eta, MST overlap
    button = at.button(key="pers-train-go")
    assert "1 snapshot" in button.label  # epoch 0 is stored, epoch 3 is not
    button.click().run()
    no_exception(at)
    want = AnalysisSpec(run=with_fixture_store.run, method="persistence", params={}, epoch=3).hash
    assert [j.spec_hash for j in jobs.list_jobs()] == [want]


def test_volume_page_2d_heatmap_with_points_and_boundary(with_fixture_store):
    from nngeo_core.dashboard.widgets import CURRENT_RUN

    at = open_page("volume", {CURRENT_RUN: with_fixture_store.run})
    no_exception(at)
    assert len(charts(at)) == 1
    # the snapshots are epochs 0 and 3, and epoch 3 is the final model itself (stored already):
    # only epoch 0 is missing
    from nngeo_core.dashboard.results import final_epoch
    from nngeo_core.runs import snapshot_epochs
    from nngeo_core.store import default_store

    assert final_epoch(default_store(), with_fixture_store.run) in snapshot_epochs(with_fixture_store.run)
    assert "1 model" in at.button(key="vol-go").label


def test_volume_page_image_plane_and_line(with_fixture_store):
    from nngeo_core.dashboard.widgets import CURRENT_RUN

    at = open_page("volume", {CURRENT_RUN: with_fixture_store.image_run})
    no_exception(at)
    assert len(at.image) == 3  # thumbnails of the three chosen inputs
    assert len(charts(at)) == 2  # the plane and the line
    at.number_input(key="vol-idx-2").set_value(5).run()
    no_exception(at)
    assert len(charts(at)) == 0 and at.button(key="vol-plane-go")  # another plane: not computed yet


def test_curvature_page_graph_histogram_and_top_k(with_fixture_store):
    from nngeo_core.dashboard.widgets import CURRENT_RUN

    at = open_page("curvature", {CURRENT_RUN: with_fixture_store.run})
    no_exception(at)
    assert len(charts(at)) == 4  # the layer graph, the histogram, the curvature matrix, curvature vs |w|
    at.slider(key="curv-k").set_value(3).run()
    no_exception(at)
    import json

    graph = json.loads(charts(at)[0].proto.spec)
    edges = next(t for t in graph["data"] if t.get("name") == "edges")
    assert n_values(edges["x"]) == 3 * 3  # three layers, three edges each


def test_geodesics_page_draws_the_stored_path(with_fixture_store):
    from nngeo_core.dashboard.widgets import CURRENT_RUN

    at = open_page("geodesics", {CURRENT_RUN: with_fixture_store.run})
    no_exception(at)
    at.number_input(key="geo-steps").set_value(4).run()
    no_exception(at)
    assert len(charts(at)) == 1


def _train_tiny(data: str, widths=(8, 8)) -> str:
    from nngeo_core.runs import train_run
    from nngeo_core.specs import DataSpec, ModelSpec, RunSpec, TrainSpec

    return train_run(
        RunSpec(
            data=DataSpec(data, params={"n_train": 100, "n_test": 100}),
            model=ModelSpec("mlp", {"widths": widths}),
            train=TrainSpec(epochs=1, batch_size=50, lr=0.01, device="cpu"),
        )
    )


def test_geodesics_forgetting_tab_picks_a_second_run_and_submits_the_path():
    from nngeo_core import jobs
    from nngeo_core.dashboard.widgets import CURRENT_RUN
    from nngeo_core.defaults import complete
    from nngeo_core.specs import AnalysisSpec

    run_a, run_b = _train_tiny("xor"), _train_tiny("moons")
    _train_tiny("moons", widths=(4,))  # another architecture: not offered
    at = open_page("geodesics", {CURRENT_RUN: run_a})
    no_exception(at)
    picker = at.selectbox(key="geo-f-run-b")
    assert picker.value == run_b and len(picker.options) == 1 and run_b[:8] in picker.options[0]
    at.number_input(key="geo-f-steps").set_value(10).run()
    at.button(key="geo-f-go").click().run()
    no_exception(at)
    # defaults filled in, as every submission is (method and direction are defaults: not in the key)
    want = complete(
        AnalysisSpec(
            run=run_a,
            method="forgetting",
            epoch=None,
            params={"run_b": run_b, "steps": 10, "method": "exact", "direction": "target"},
        )
    )
    queued = jobs.list_jobs()
    assert [(j.kind, j.spec_hash) for j in queued] == [("analyse", want.hash)]

    jobs.run_job(want)  # what the worker would do
    at.run()
    no_exception(at)
    import json

    (chart,) = charts(at)  # the sparsification tab has no path yet
    names = [t["name"] for t in json.loads(chart.proto.spec)["data"]]
    assert names[:4] == ["task A (xor)", "task B (moons)", "mean of both", "distance to run B"]
    assert len(at.dataframe[0].value) == 11 and all(b.key != "geo-f-go" for b in at.button)


def test_geodesics_forgetting_tab_without_a_second_run_says_to_train_one():
    from nngeo_core.dashboard.widgets import CURRENT_RUN

    run = _train_tiny("xor")
    at = open_page("geodesics", {CURRENT_RUN: run})
    no_exception(at)
    assert any("train the same model on another task" in i.value for i in at.info)
    assert not at.get("selectbox") or all(s.key != "geo-f-run-b" for s in at.selectbox)
    assert all(b.key != "geo-f-go" for b in at.button)


def test_train_page_submits_a_training_job():
    from nngeo_core import jobs

    at = open_page("train")
    at.number_input(key="train-mlp-xor-epochs").set_value(4).run()
    at.button(key="train-submit").click().run()
    no_exception(at)
    queued = jobs.list_jobs()
    assert len(queued) == 1 and queued[0].kind == "train" and queued[0].state == "queued"
    import json

    from nngeo_core.specs import spec_from_dict

    spec = spec_from_dict(json.loads(jobs.get_backend().table.get(queued[0].id)["spec"]))
    assert spec.model.name == "mlp" and spec.data.name == "xor" and spec.train.epochs == 4
    assert at.session_state["train-job"] == queued[0].id


def test_pruning_page_submits_one_sweep_per_strategy(with_fixture_store):
    from nngeo_core import jobs
    from nngeo_core.dashboard.widgets import CURRENT_RUN

    at = open_page("pruning", {CURRENT_RUN: with_fixture_store.run})
    at.multiselect(key="prune-strategies").set_value(["random", "snip"]).run()
    at.button(key="prune-submit").click().run()
    no_exception(at)
    kinds = sorted((j.kind, j.label.split()[1]) for j in jobs.list_jobs())
    assert kinds == [("prune-sweep", "random"), ("prune-sweep", "snip")]


def test_compare_page_draws_the_sweeps(with_fixture_store):
    at = open_page("compare")
    no_exception(at)
    assert len(charts(at)) == 1
    assert len(at.dataframe) >= 3  # within-Δ, Pareto, mean ± std


def test_upload_page_stores_a_checkpoint_under_its_hash():
    from nngeo_core.dashboard.examples import example_bytes
    from nngeo_core.store import default_store
    from nngeo_core.uploads import upload_key

    data = example_bytes("mlp on xor")
    at = open_page("upload")
    at.file_uploader(key="upload-file").set_value(
        ("../../evil name.safetensors", data, "application/octet-stream")
    ).run()
    at.button(key="upload-store").click().run()
    no_exception(at)
    assert at.success and "Stored as" in at.success[0].value
    from nngeo_core.checkpoint import load

    key = upload_key(data, load(data).data_spec)
    assert default_store().keys() == [key]


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # torch, about the garbage bytes
def test_upload_page_refuses_a_bad_file_with_a_message():
    from nngeo_core.store import default_store

    at = open_page("upload")
    at.file_uploader(key="upload-file").set_value(
        ("model.pt", b"\x80\x04garbage" * 20, "application/octet-stream")
    ).run()
    at.button(key="upload-store").click().run()
    no_exception(at)
    assert len(at.error) == 1 and "\n" not in at.error[0].value
    assert default_store().keys() == []


def test_try_an_example_button():
    from nngeo_core.store import default_store

    at = open_page("upload")
    at.button(key="upload-example-0").click().run()
    no_exception(at)
    assert at.success and len(default_store().keys()) == 1


def test_delete_asks_for_confirmation():
    from nngeo_core.dashboard.examples import example_bytes
    from nngeo_core.store import default_store
    from nngeo_core.uploads import store_upload

    key = store_upload(example_bytes("mlp on xor")).key
    at = open_page("runs")
    at.selectbox(key="runs-chosen").set_value(key).run()
    at.button(key="runs-delete").click().run()
    assert at.warning and key in at.warning[0].value
    assert default_store().exists(key)  # nothing deleted before the confirmation
    at.button(key="runs-delete-no").click().run()
    assert default_store().exists(key) and not at.warning
    at.button(key="runs-delete").click().run()
    at.button(key="runs-delete-yes").click().run()
    no_exception(at)
    assert not default_store().exists(key)


def test_curvature_page_readouts_of_a_neural_curvature_result(fixture_store, monkeypatch, tmp_path):
    """On a copy of the fixture store with a neural-curvature result (the session's store must not
    have one: test_polling submits it), the page draws the curvature matrix, curvature vs |w| with
    the Spearman table, and the dead-edge shares, and the table matches its builder."""
    import json
    import shutil

    from nngeo_core import jobs
    from nngeo_core.dashboard.widgets import CURRENT_RUN, read_result
    from nngeo_core.figures.curvature import curvature_weight_correlation
    from nngeo_core.settings import home_env
    from nngeo_core.specs import AnalysisSpec
    from nngeo_core.store import default_store
    from nngeo_core.store.queries import find_analysis

    home = tmp_path / "home"
    shutil.copytree(fixture_store.home / "store", home / "store")
    for k, v in {**home_env(home), "NNGEO_DOWNLOAD": "0", "NNGEO_EMBEDDED_WORKER": "0"}.items():
        monkeypatch.setenv(k, v)
    jobs.run_job(AnalysisSpec(run=fixture_store.run, method="curvature"), store=default_store())
    at = open_page("curvature", {CURRENT_RUN: fixture_store.run})
    at.radio(key="curv-method").set_value("curvature").run()
    no_exception(at)
    assert not at.error, [e.value for e in at.error]
    specs = [json.loads(c.proto.spec) for c in charts(at)]
    titles = [s["layout"].get("title", {}).get("text", "") for s in specs]
    assert len(specs) == 5, titles  # graph, histogram, matrix, curvature vs |w|, dead edges
    assert titles[2].startswith("curvature matrix: ") and titles[3] == "curvature vs |w|"
    assert specs[2]["data"][0]["type"] == "heatmap" and specs[4]["data"][0]["type"] == "bar"
    table = next(d.value for d in at.dataframe if "spearman" in d.value.columns)
    store = default_store()
    key = find_analysis(store, fixture_store.run, "curvature")
    assert key is not None
    edges = read_result(store, key)
    want = curvature_weight_correlation(edges)
    assert list(table.columns) == ["layer", "spearman", "n_edges", "dead_share"]
    assert table["n_edges"].tolist() == want["n_edges"].tolist()
    last = edges.loc[edges["kind"] != "skipped", "layer"].astype(str).iloc[-1]
    at.selectbox(key=f"curv-matrix-layer-{fixture_store.run}").set_value(last).run()
    assert json.loads(charts(at)[2].proto.spec)["layout"]["title"]["text"].startswith("curvature matrix: fc3")
    at.radio(key="curv-matrix-agg").set_value("min").run()
    no_exception(at)
