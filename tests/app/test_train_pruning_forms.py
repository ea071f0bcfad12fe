"""The Train and Pruning pages' forms in Streamlit's AppTest (the real app.py, in-process): they
come back as the user left them after a visit to another page, the chosen run carries over
between pages, the Train page's run is the CLI's run, it says "Trained" after its own job, and
a strategy parameter that does not fit its declaration is an error on the page with nothing
queued."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[2] / "app.py")


def open_page(page: str, session: dict | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    for k, v in (session or {}).items():
        at.session_state[k] = v
    at.run()
    return switch(at, page)


def switch(at: AppTest, page: str) -> AppTest:
    at.switch_page(f"pages/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def queued_specs() -> list:
    from nngeo_core import jobs
    from nngeo_core.specs import spec_from_dict

    table = jobs.get_backend().table
    return [spec_from_dict(json.loads(table.get(j.id)["spec"])) for j in jobs.list_jobs()]


def cli_spec(*argv: str):
    from nngeo_core.cli import build_parser
    from nngeo_core.cli_args import run_spec_from_args

    return run_spec_from_args(build_parser().parse_args(["train", *argv]))


def test_the_train_form_comes_back_as_it_was_left():
    at = open_page("train")
    at.selectbox(key="train-model").set_value("mlp").run()
    at.text_input(key="train-mp-mlp-widths").set_value("8, 4").run()
    at.selectbox(key="train-mp-mlp-activation").set_value("tanh").run()
    at.selectbox(key="train-data").set_value("moons").run()
    at.number_input(key="train-dp-mlp-moons-noise").set_value(0.2).run()
    at.number_input(key="train-mlp-moons-epochs").set_value(3).run()
    at.selectbox(key="train-mlp-moons-opt").set_value("sgd").run()
    assert not at.error, [e.value for e in at.error]
    switch(at, "runs")
    switch(at, "train")
    assert at.selectbox(key="train-model").value == "mlp" and at.selectbox(key="train-data").value == "moons"
    assert at.text_input(key="train-mp-mlp-widths").value == "8, 4"
    assert at.selectbox(key="train-mp-mlp-activation").value == "tanh"
    assert at.number_input(key="train-dp-mlp-moons-noise").value == 0.2
    assert at.number_input(key="train-mlp-moons-epochs").value == 3
    assert at.selectbox(key="train-mlp-moons-opt").value == "sgd"
    # the control: Streamlit itself drops the state of widgets a page does not draw, so without
    # the page's memory the same visit elsewhere resets the form
    from nngeo_core.dashboard.widgets import FORM_MEMORY

    at.session_state[FORM_MEMORY] = {}
    switch(at, "runs")
    switch(at, "train")
    assert at.selectbox(key="train-data").value == "xor" and at.number_input(key="train-mlp-xor-epochs").value == 20


def test_the_train_pages_fcn_mnist_on_digits_is_the_clis_run():
    at = open_page("train")
    at.selectbox(key="train-model").set_value("fcn_mnist").run()
    at.selectbox(key="train-data").set_value("digits").run()
    assert "No parameters to set." in [c.value for c in at.caption]
    assert any("input (1, 28, 28)" in c.value for c in at.caption)  # what the net will get
    assert at.number_input(key="train-dp-fcn_mnist-digits-resize").value == 28
    at.number_input(key="train-fcn_mnist-digits-epochs").set_value(1).run()
    at.button(key="train-submit").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    (spec,) = queued_specs()
    assert spec.hash == cli_spec("--model", "fcn_mnist", "--data", "digits", "--epochs", "1").hash
    assert spec.data.params["resize"] == 28


def test_a_train_form_that_cannot_make_its_model_is_an_error_and_queues_nothing():
    at = open_page("train")
    at.text_input(key="train-mp-mlp-widths").set_value("8, x").run()
    assert [e.value for e in at.error] == [
        "model mlp: parameter 'widths' must be whole numbers separated by commas, got '8, x'"
    ]
    assert at.button(key="train-submit").disabled
    at.text_input(key="train-mp-mlp-widths").set_value("8, 0").run()  # parses, but the builder refuses it
    assert len(at.error) == 1 and "\n" not in at.error[0].value and at.button(key="train-submit").disabled
    at.text_input(key="train-mp-mlp-widths").set_value("8").run()
    at.selectbox(key="train-model").set_value("lenet5").run()  # an image model on 2-D points
    assert len(at.error) == 1 and "image" in at.error[0].value and at.button(key="train-submit").disabled
    at.selectbox(key="train-data").set_value("digits").run()  # resized to 28×28 for it: fine
    assert not at.error and not at.button(key="train-submit").disabled
    assert queued_specs() == []


def test_the_train_page_says_trained_after_its_own_job(monkeypatch):
    from nngeo_core import jobs

    monkeypatch.setenv("NNGEO_QUEUE", f"memory://train-page-{uuid.uuid4().hex}")  # a worker thread here
    at = open_page("train")
    at.number_input(key="train-dp-mlp-xor-n_train").set_value(100).run()
    at.number_input(key="train-mlp-xor-epochs").set_value(1).run()
    at.button(key="train-submit").click().run()
    job = at.session_state["train-job"]
    assert jobs.wait(job, timeout=120).state == "done"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    said = [s.value for s in at.success]
    key = cli_spec("--data", "xor", "--data-param", "n_train=100", "--epochs", "1").hash
    assert f"Trained: the run is stored as `{key}`." in said and not any("already" in s for s in said)
    assert at.metric[0].label == "test accuracy"
    # another session, later: the run was there before it came
    later = open_page("train")
    later.number_input(key="train-dp-mlp-xor-n_train").set_value(100).run()
    later.number_input(key="train-mlp-xor-epochs").set_value(1).run()
    assert [s.value for s in later.success] == [f"This run is already in the store as `{key}`."]


@pytest.fixture
def test_strategy():
    """A plugin strategy with typed parameters (how a plugin adds one), removed afterwards."""
    from nngeo_core.params import Param
    from nngeo_core.pruning import STRATEGIES, register_strategy
    from nngeo_core.pruning.strategies.magnitude import magnitude

    strategy = register_strategy(
        "typed_test",
        description="magnitude pruning with typed parameters, for the page test",
        params={
            "levels": Param((2, 4), low=1),
            "method": Param("exact", choices=("exact", "gradient")),
            "k": Param(3, low=1, high=5),
        },
    )(magnitude.fn)
    STRATEGIES.add(strategy.name, strategy)
    yield strategy
    STRATEGIES.remove(strategy.name)


def test_a_strategy_parameter_that_does_not_fit_is_an_error_and_queues_nothing(with_fixture_store, test_strategy):
    from nngeo_core import jobs
    from nngeo_core.dashboard.widgets import CURRENT_RUN

    at = open_page("pruning", {CURRENT_RUN: with_fixture_store.run})
    at.multiselect(key="prune-strategies").set_value(["typed_test"]).run()
    assert at.selectbox(key="prune-p-typed_test-method").options == ["exact", "gradient"]  # no free text
    k = at.number_input(key="prune-p-typed_test-k")
    assert (k.min, k.max) == (1, 5)
    at.text_input(key="prune-p-typed_test-levels").set_value("2, x").run()
    assert [e.value for e in at.error] == [
        "the typed_test strategy: parameter 'levels' must be whole numbers separated by commas, got '2, x'"
    ]
    button = at.button(key="prune-submit")
    assert button.disabled and button.label == "Run 0 sweep(s)"
    at.text_input(key="prune-p-typed_test-levels").set_value("2, 0").run()
    assert len(at.error) == 1 and "at least 1" in at.error[0].value
    assert at.button(key="prune-submit").disabled and queued_specs() == []  # nothing to queue

    at.text_input(key="prune-p-typed_test-levels").set_value("2, 8").run()
    at.selectbox(key="prune-p-typed_test-method").set_value("gradient").run()
    assert not at.error
    at.button(key="prune-submit").click().run()
    (spec,) = queued_specs()
    assert spec.strategy == "typed_test" and dict(spec.params) == {"levels": (2, 8), "method": "gradient", "k": 3}
    # the page names the job by what differs from the defaults, so two requests differ
    (job,) = jobs.list_jobs()
    label = "prune typed_test mlp/xor 5 levels x 1 seeds levels=2,8 method=gradient"
    assert [t.value for t in at.toast] == [f"{label}: job {job.id[:8]} queued"]


def test_the_chosen_run_carries_over_between_pages(with_fixture_store):
    from nngeo_core.dashboard.widgets import CURRENT_RUN

    f = with_fixture_store
    at = open_page("persistence", {CURRENT_RUN: f.run})
    assert at.selectbox(key="pers-run").value == f.run
    at.selectbox(key="pers-run").set_value(f.image_run).run()
    assert at.session_state[CURRENT_RUN] == f.image_run
    switch(at, "volume")
    assert at.selectbox(key="vol-run").value == f.image_run
    switch(at, "pruning")
    assert at.selectbox(key="prune-run").value == f.image_run

    # the Pruning page offers uploads too: the current upload is its model, and stays current elsewhere
    at.session_state[CURRENT_RUN] = f.upload
    switch(at, "curvature")
    assert at.selectbox(key="curv-run").value == f.upload
    switch(at, "pruning")
    assert at.selectbox(key="prune-run").value == f.upload and at.session_state[CURRENT_RUN] == f.upload


def test_an_upload_is_pruned_as_it_is_on_data_that_fits(with_fixture_store):
    """An upload's sweep: the data picker starts at the upload's own data, data the model cannot
    take is an error with nothing queued, IMP runs without rewinding (a rewind asked for is
    refused), and the queued sweep prunes the upload itself."""
    from nngeo_core import jobs
    from nngeo_core.dashboard.widgets import CURRENT_RUN
    from nngeo_core.runs import read_header

    f = with_fixture_store
    at = open_page("pruning", {CURRENT_RUN: f.upload})
    picker = at.selectbox(key=f"prune-data-{f.upload}")
    assert picker.value == read_header(f.upload).data_spec.name == "xor"
    at.multiselect(key="prune-strategies").set_value(["imp"]).run()
    picker.set_value("digits").run()
    assert any("pick a matching dataset" in e.value for e in at.error)
    assert at.button(key="prune-submit").disabled and queued_specs() == []
    at.selectbox(key=f"prune-data-{f.upload}").set_value("xor").run()
    rewind = at.number_input(key="prune-p-imp-rewind_epoch")
    rewind.set_value(0).run()
    assert any("IMP without rewinding" in e.value for e in at.error)
    assert at.button(key="prune-submit").disabled and queued_specs() == []
    at.number_input(key="prune-p-imp-rewind_epoch").set_value(1).run()  # back to the default: not asked for
    assert not at.error, [e.value for e in at.error]
    at.button(key="prune-submit").click().run()
    (spec,) = queued_specs()
    assert spec.source == f.upload and spec.strategy == "imp" and spec.params["rewind_epoch"] is None
    assert spec.run.data.name == "xor"
    (job,) = jobs.list_jobs()
    assert job.label.startswith("prune IMP without rewinding mlp/xor (stored model ")


def test_the_pruning_page_sweeps_chosen_layers_or_each_layer_alone(with_fixture_store):
    """Layers to prune come from the run's checkpoint in forward order; choosing one queues a sweep
    of that layer; the ablation box queues one sweep per layer (each pruned alone)."""
    from nngeo_core.dashboard.widgets import CURRENT_RUN
    from nngeo_core.models import prunable_layers
    from nngeo_core.runs import load_run

    run = with_fixture_store.run
    names = [i.name for i in prunable_layers(load_run(run).model)]
    at = open_page("pruning", {CURRENT_RUN: run})
    at.multiselect(key="prune-strategies").set_value(["magnitude"]).run()
    layers = at.multiselect(key=f"prune-layers-{run}")
    assert len(layers.options) == len(names)
    layers.set_value([names[-1]]).run()
    assert at.button(key="prune-submit").label == "Run 1 sweep(s)"
    at.checkbox(key="prune-ablate").check().run()
    at.multiselect(key=f"prune-layers-{run}").set_value([]).run()
    assert at.button(key="prune-submit").label == f"Run {len(names)} sweep(s)"
    at.button(key="prune-submit").click().run()
    queued = queued_specs()
    assert sorted(s.layers for s in queued) == sorted((n,) for n in names)
    assert {s.strategy for s in queued} == {"magnitude"}
