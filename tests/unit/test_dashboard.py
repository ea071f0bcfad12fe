"""Dashboard helpers without Streamlit: uploads, forms, store views, job rows, downloads."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
import torch

from nngeo_core import checkpoint, defaults
from nngeo_core.dashboard import forms, jobs_view
from nngeo_core.dashboard.downloads import figure_html, safe_filename, table_bytes
from nngeo_core.dashboard.examples import EXAMPLES, available_examples, example_bytes
from nngeo_core.dashboard.results import run_label, runs_table
from nngeo_core.defaults import default_train
from nngeo_core.errors import NNGeoError
from nngeo_core.models import build, prunable_layers
from nngeo_core.params import Param
from nngeo_core.runs import load_run
from nngeo_core.specs import AnalysisSpec, DataSpec, ModelSpec, RunSpec
from nngeo_core.store import Store
from nngeo_core.store.queries import analyses_over_epochs, find_analysis
from nngeo_core.uploads import content_hash, display_name, store_upload, upload_key


@pytest.fixture
def store(tmp_path):
    return Store(tmp_path / "store")


def _mlp_bytes(widths=(5,), seed=0) -> bytes:
    torch.manual_seed(seed)
    model = build("mlp", widths=widths)
    return checkpoint.to_bytes(model, model_spec=ModelSpec("mlp", {"widths": widths}), data_spec=DataSpec("xor"))


# -- uploads ---------------------------------------------------------------------------------------
def test_upload_is_stored_under_its_content_hash_and_loads_as_a_run(store):
    data = _mlp_bytes()
    result = store_upload(data, name="model.safetensors", store=store)
    assert result.created and result.key == upload_key(data, DataSpec("xor"))
    entry = store.entry(result.key)
    assert entry["kind"] == "upload" and json.loads(entry["spec"])["sha256"] == content_hash(data)
    ckpt = load_run(result.key, store=store)
    ref = checkpoint.load(data)
    for (k, a), (_, b) in zip(ckpt.model.state_dict().items(), ref.model.state_dict().items(), strict=False):
        assert torch.equal(a, b), k
    assert ckpt.data_spec == DataSpec("xor")
    assert list(store.get(result.key)["layer"]) == [li for li in result.layers["layer"]]
    assert result.layers["n_weights"].sum() == 2 * 5 + 5 * 2


def test_same_bytes_give_the_same_key_whatever_the_name_and_never_replace_another(store):
    a, b = _mlp_bytes(seed=0), _mlp_bytes(seed=1)
    ka = store_upload(a, name="../../etc/passwd", store=store)
    kb = store_upload(b, name="../../etc/passwd", store=store)
    assert ka.key != kb.key
    again = store_upload(a, name="other.pt", store=store)
    assert again.key == ka.key and not again.created
    assert sorted(store.keys()) == sorted([ka.key, kb.key])
    # the browser's name only shows up, cleaned, in the label
    assert store.entry(ka.key)["label"] == "mlp from passwd"
    assert not any("passwd" in p for p in store.artifacts(ka.key))


def test_display_name_strips_paths_and_odd_characters():
    assert display_name("..\\..\\windows\\evil<script>.pt") == "evil_script_.pt"
    assert display_name("") == "checkpoint"
    assert len(display_name("a" * 500)) == 80


def test_a_pickle_that_runs_code_is_refused_and_never_executed(store, tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    buf = io.BytesIO()
    torch.save({"weight": torch.zeros(2, 2), "evil": Evil()}, buf)
    with pytest.raises(NNGeoError) as err:
        store_upload(buf.getvalue(), name="evil.pt", store=store)
    assert "\n" not in str(err.value)
    assert not marker.exists()
    assert store.keys() == []


@pytest.mark.parametrize(
    "data, match",
    [(b"", "empty"), (b"not a checkpoint at all" * 10, "checkpoint|refusing"), (b"PK\x03\x04garbage", "corrupt")],
)
def test_bad_files_get_one_line_errors(store, data, match):
    with pytest.raises(NNGeoError, match=match) as err:
        store_upload(data, store=store)
    assert "\n" not in str(err.value)
    assert store.keys() == []


def test_truncated_safetensors_is_refused(store):
    data = _mlp_bytes()
    with pytest.raises(NNGeoError):
        store_upload(data[: len(data) // 2], store=store)


def test_size_limit(store):
    with pytest.raises(NNGeoError, match="limit"):
        store_upload(_mlp_bytes(), store=store, max_bytes=100)


def test_plain_linear_state_dict_is_inferred(store):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(2, 7), torch.nn.ReLU(), torch.nn.Linear(7, 2))
    buf = io.BytesIO()
    torch.save(net.state_dict(), buf)
    with pytest.raises(NNGeoError, match="choose one with --activation"):  # weights carry no activation
        store_upload(buf.getvalue(), name="net.pt", store=store, data_spec=DataSpec("xor"))
    assert not store.keys()
    result = store_upload(buf.getvalue(), name="net.pt", store=store, data_spec=DataSpec("xor"), activation="relu")
    assert result.source in ("linear-stack", "zoo-state-dict")
    model = load_run(result.key, store=store).model
    x = torch.randn(5, 2)
    torch.testing.assert_close(model(x), net(x))


def test_dataset_must_fit_the_model(store):
    with pytest.raises(NNGeoError, match="inputs of shape"):
        store_upload(_mlp_bytes(), store=store, data_spec=DataSpec("digits"))


def test_examples_exist_are_small_and_load():
    names = available_examples()
    assert sorted(names) == sorted(EXAMPLES)
    for name in names:
        data = example_bytes(name)
        assert len(data) < 1_000_000
        ckpt = checkpoint.load(data)
        assert (
            ckpt.model_spec.name
            == {"mlp_xor.safetensors": "mlp", "fcn_mnist_digits.safetensors": "fcn_mnist"}[EXAMPLES[name][0]]
        )
        assert ckpt.data_spec == EXAMPLES[name][1]


# -- forms -----------------------------------------------------------------------------------------
def test_run_spec_from_default_values_equals_the_plain_default_spec():
    plain = RunSpec(data=DataSpec("xor"), model=ModelSpec("mlp"), train=default_train("mlp", "xor"))
    spec = forms.run_spec(
        "mlp",
        "xor",
        model_params={"widths": (32, 32), "activation": "relu", "bias": True},
        data_params={"n_train": 1000, "noise": 0.3},
    )
    assert spec.hash == plain.hash
    changed = forms.run_spec("mlp", "xor", model_params={"widths": (8,)}, train={"epochs": 5})
    assert changed.model.params == {"widths": (8,), "activation": "relu", "bias": True}  # defaults filled in
    assert changed.train.epochs == 5
    assert (
        changed.hash
        == RunSpec(
            data=DataSpec("xor"),
            model=ModelSpec("mlp", {"widths": (8,)}),
            train=default_train("mlp", "xor").replace(epochs=5),
        ).hash
    )


def test_run_spec_refuses_nonsense():
    with pytest.raises(NNGeoError):
        forms.run_spec("mlp", "xor", train={"warp_speed": 9})
    with pytest.raises(NNGeoError):
        forms.run_spec("mlp", "xor", train={"epochs": 2, "snapshots": (3,)})


def test_lists_and_snapshots():
    assert forms.parse_int_list("32, 16,8", "widths") == (32, 16, 8)
    assert forms.parse_int_list("", "widths") == ()
    with pytest.raises(NNGeoError):
        forms.parse_int_list("3, x", "widths")
    assert forms.parse_float_list("0.5,0.9", "s", low=0, high=1) == (0.5, 0.9)
    with pytest.raises(NNGeoError):
        forms.parse_float_list("1.5", "s", low=0, high=1)
    assert forms.snapshot_epochs_for(10, every=4) == (0, 4, 8, 10)
    assert forms.snapshot_epochs_for(10, "5, 0, 5") == (0, 5)
    with pytest.raises(NNGeoError):
        forms.snapshot_epochs_for(10, "11")
    assert forms.param_text((1, 2)) == "1, 2" and forms.param_text(None) == "" and forms.param_text(0.5) == "0.5"


def one_line_error(widget: forms.WidgetSpec, raw) -> str:
    with pytest.raises(NNGeoError) as info:
        widget.read(raw)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_each_declared_type_gets_its_widget():
    choice = forms.widget_for("method", Param("sinkhorn", choices=("sinkhorn", "exact")))
    assert (choice.widget, choice.options, choice.value) == ("select", ("sinkhorn", "exact"), "sinkhorn")
    auto = forms.widget_for("split", Param(None, choices=("train", "test")))
    assert auto.options == (None, "train", "test") and auto.value is None  # None: the owner's choice
    assert forms.widget_for("bias", True).widget == "checkbox"
    assert forms.widget_for("bias", Param(True, choices=(True, False))).widget == "checkbox"
    count = forms.widget_for("k", Param(1, low=1, high=9.5))
    assert (count.widget, count.low, count.high, count.nullable) == ("int", 1, 9, False)
    size = forms.widget_for("resize", Param(None, kind=int, low=1))
    assert (size.widget, size.value, size.nullable) == ("int", None, True)
    alpha = forms.widget_for("alpha", Param(0.5, low=0.0, high=1.0), 0.25)
    assert (alpha.widget, alpha.value, alpha.low, alpha.high) == ("float", 0.25, 0.0, 1.0)
    widths = forms.widget_for("widths", (32, 32))
    assert (widths.widget, widths.value) == ("text", "32, 32")
    assert forms.widget_for("name", "relu").widget == "text"
    assert forms.widget_for("anything", None).widget == "text"


def test_widgets_read_back_checked_values_with_one_line_errors():
    widths = forms.widget_for("widths", (32, 32), what="model mlp")
    assert widths.read("8, 8") == (8, 8) and widths.read("8") == (8,) and widths.read(" ") == (32, 32)
    assert "whole numbers" in one_line_error(widths, "8, x") and "model mlp" in one_line_error(widths, "8, x")
    positive = forms.widget_for("widths", Param((32,), low=1))
    assert "at least 1" in one_line_error(positive, "4, 0")
    floats = forms.widget_for("bounds", Param((0.0, 1.0)))
    assert floats.read("-1, 2.5") == (-1.0, 2.5)
    anything = forms.widget_for("indices", Param(None, kind=tuple))
    assert anything.read("0, 1, 2") == (0, 1, 2) and anything.read("") is None
    alpha = forms.widget_for("alpha", Param(0.5, low=0.0, high=1.0), what="the curvature strategy")
    assert alpha.read(1) == 1.0 and isinstance(alpha.read(1), float)
    assert "at most 1.0" in one_line_error(alpha, 1.5)
    count = forms.widget_for("k", Param(1, low=1))
    assert count.read(3.0) == 3 and isinstance(count.read(3.0), int) and count.read(None) is None
    assert "at least 1" in one_line_error(count, 0)
    method = forms.widget_for("method", Param("sinkhorn", choices=("sinkhorn", "exact")))
    assert "one of" in one_line_error(method, "foo")
    text = forms.widget_for("method", "sinkhorn")
    assert text.read("exact") == "exact" and text.read("") == "sinkhorn"
    loose = forms.widget_for("round_epochs", None)
    assert loose.read("3") == 3 and loose.read("") is None and loose.read("0.5") == 0.5
    # what a widget may start from (a remembered value is checked so before it is used)
    assert method.accepts("exact") and not method.accepts("foo")
    assert count.accepts(4) and not count.accepts(0) and not count.accepts(None) and not count.accepts(True)
    assert forms.widget_for("resize", Param(None, kind=int)).accepts(None)


def every_declaration():
    from nngeo_core.analyses import ANALYSES
    from nngeo_core.data import list_datasets
    from nngeo_core.models import list_models
    from nngeo_core.pruning import STRATEGIES

    for name in list_models():
        yield f"model {name}", defaults.model_declaration(name)
    for name in list_datasets():
        yield f"dataset {name}", defaults.data_declaration(name)
    for name, strategy in STRATEGIES.items():
        yield f"strategy {name}", strategy.params
    for name, analysis in ANALYSES.items():
        yield f"analysis {name}", analysis.params


def test_every_registered_parameter_gets_a_widget_whose_untouched_value_is_its_default():
    from nngeo_core.params import declare

    kinds = set()
    for owner, declaration in every_declaration():
        for name, param in declare(declaration).items():
            widget = forms.widget_for(name, param, what=owner)
            kinds.add(widget.widget)
            assert widget.accepts(widget.value), (owner, name, widget)
            assert widget.read(widget.value) == param.default, (owner, name, widget)
    assert kinds == {"select", "checkbox", "int", "float", "text"}


def test_a_model_that_cannot_be_built_for_its_data_is_said_before_anything_is_queued():
    forms.check_buildable(forms.run_spec("fcn_mnist", "digits"))
    forms.check_buildable(forms.run_spec("lenet5", "digits"))  # resized to 28×28 for it
    for model, data, params in (("lenet5", "xor", {}), ("vgg11", "digits", {}), ("mlp", "xor", {"widths": (4, 0)})):
        with pytest.raises(NNGeoError) as info:
            forms.check_buildable(forms.run_spec(model, data, model_params=params))
        assert "\n" not in str(info.value)


def test_form_memory_brings_a_form_back_as_it_was_left():
    session: dict = {}  # what outlives the widgets (Streamlit drops theirs on a page switch)
    memory = forms.FormMemory(session)
    assert memory.start("train-model", "mlp") == "mlp"
    memory.keep("train-model", "fcn_mnist")
    again = forms.FormMemory(session)  # the next visit to the page
    assert again.start("train-model", "mlp") == "fcn_mnist"
    models = ("mlp", "lenet5")  # a choice that is no longer offered falls back to the default
    assert again.start("train-model", "mlp", lambda v: v in models) == "mlp"


def test_model_and_data_declarations_are_typed():
    decl = defaults.model_declaration("mlp")
    assert decl["activation"].choices[0] == "relu" and "tanh" in decl["activation"].choices
    assert forms.widget_for("bias", decl["bias"]).widget == "checkbox"
    digits = defaults.data_declaration("permuted:digits:1")
    assert digits["resize"].value_kind is int and digits["test_fraction"].value_kind is float
    assert forms.widget_for("resize", digits["resize"]).widget == "int"
    assert defaults.form_defaults("fcn_mnist", "digits")["data_params"]["resize"] == 28
    assert defaults.form_defaults("mlp", "digits")["data_params"]["resize"] is None


# -- store views -----------------------------------------------------------------------------------
def test_runs_table_filters_and_finds_analyses(store):
    run = store.put("train", {"x": 1}, pd.DataFrame({"epoch": [0]}), attrs=dict(model="mlp", data="xor", metric=0.9))
    store.put("upload", {"x": 2}, attrs=dict(model="fcn_mnist", data="digits"))
    for epoch, p in ((None, {}), (3, {}), (3, {"p": 1})):
        spec = AnalysisSpec(run=run, method="persistence", params=p, epoch=epoch)
        store.put(
            "analyse",
            spec,
            pd.DataFrame({"layer": ["1"], "np": [float(epoch or 0) + len(p)]}),
            attrs=dict(run=run, method="persistence"),
        )
    table = runs_table(store.catalog(), kinds=["train", "upload"])
    assert set(table["kind"]) == {"train", "upload"} and len(table) == 2
    assert len(runs_table(store.catalog(), text="DIGITS")) == 1
    assert (
        find_analysis(store, run, "persistence", epoch=3, params={"p": 1})
        == AnalysisSpec(run=run, method="persistence", params={"p": 1}, epoch=3).hash
    )
    assert find_analysis(store, run, "persistence", epoch=7) is None
    assert find_analysis(store, run, "persistence", epoch=None) == AnalysisSpec(run=run, method="persistence").hash
    over = analyses_over_epochs(store, run, "persistence", params={})
    assert list(over["epoch"]) == [3] and list(over["np"]) == [3.0]
    assert run_label(store.entry(run)).startswith(run[:8]) and "acc 0.900" in run_label(store.entry(run))


# -- jobs ------------------------------------------------------------------------------------------
def test_job_rows_from_real_job_infos(tmp_path, monkeypatch):

    monkeypatch.setenv("NNGEO_QUEUE", str(tmp_path / "q.db"))
    spec = RunSpec(
        data=DataSpec("xor", params={"n_train": 50, "n_test": 50}),
        model=ModelSpec("mlp", {"widths": (4,)}),
        train=default_train("mlp", "xor").replace(epochs=1),
    )
    row = jobs_view.submit(spec)
    assert row["state"] == "queued" and row["kind"] == "train" and row["spec_hash"] == spec.hash
    assert jobs_view.active_job_for(spec.hash)["id"] == row["id"]
    assert [r["id"] for r in jobs_view.list_jobs()] == [row["id"]]
    jobs_view.cancel(row["id"])
    assert jobs_view.status(row["id"])["state"] == "cancelled"
    assert jobs_view.active_job_for(spec.hash) is None


def test_job_row_defaults_and_progress_text():
    row = jobs_view.job_row(
        {
            "id": "abc",
            "state": "running",
            "progress": 2.0,
            "phase": "epoch 3/9",
            "metrics": {"loss": 0.41234, "accuracy": 0.875},
        }
    )
    assert row["fraction"] == 1.0 and jobs_view.is_active(row)
    assert jobs_view.progress_text(row) == "epoch 3/9 · loss 0.412 · acc 0.875"


def test_embedded_worker_flag(monkeypatch):
    monkeypatch.setenv("NNGEO_EMBEDDED_WORKER", "0")
    assert not jobs_view.embedded_worker_wanted()
    monkeypatch.setenv("NNGEO_EMBEDDED_WORKER", "1")
    assert jobs_view.embedded_worker_wanted()


# -- downloads -------------------------------------------------------------------------------------
def test_downloads():
    import plotly.graph_objects as go

    html = figure_html(go.Figure(go.Scatter(x=[1], y=[2]))).decode()
    # standalone: plotly.js is inline, not fetched from a CDN
    assert "<html>" in html[:100] and "<script src=" not in html and len(html) > 1_000_000
    df = pd.DataFrame({"a": [1, 2], "b": ["x", None], "c": [1, "—"]})
    assert pd.read_csv(io.BytesIO(table_bytes(df, "csv")))["a"].tolist() == [1, 2]
    back = pd.read_parquet(io.BytesIO(table_bytes(df, "parquet")))
    assert back["a"].tolist() == [1, 2] and back["c"].tolist() == ["1", "—"]
    with pytest.raises(NNGeoError):
        table_bytes(df, "xlsx")
    assert safe_filename("../a b/c?.png") == "a_b_c_.png"


# -- per-run figures for the Compare page ---------------------------------------------------------
def test_every_per_run_figure_draws_its_analysis_table():
    from nngeo_core.dashboard.per_run import PER_RUN_FIGURES

    xs = np.linspace(-1, 1, 4)
    gx, gy = np.meshgrid(xs, xs)
    tables = {
        "persistence": pd.DataFrame({"layer": ["1", "3"], "np": [1.0, 2.0], "np_normalized": [0.1, 0.2]}),
        "critical_compression": pd.DataFrame({"layer": ["1", "total"], "eta_tau": [2.0, 2.0]}),
        "mst_overlap": pd.DataFrame({"layer": ["1"], "overlap": [0.5], "bound": [0.2], "chance": [0.1]}),
        "curvature_weights": pd.DataFrame(
            {"layer": ["1", "1"], "src": [0, 1], "dst": [0, 0], "curvature": [-0.1, 0.2]}
        ),
        "volume": pd.DataFrame({"x": gx.ravel(), "y": gy.ravel(), "log_volume": gx.ravel()}),
    }
    for name, fig in PER_RUN_FIGURES.items():
        drawn = fig.draw(tables[fig.method])
        assert len(drawn.data) >= 1, name


def test_line_of_plane_takes_the_segment_rows_computed_on_the_segment():
    from nngeo_core.dashboard.planes import line_of_plane
    from nngeo_core.figures.volume import plane_heatmap
    from nngeo_core.geometry import image_line, image_plane

    torch.manual_seed(0)
    model = build("mlp", input_shape=(1, 4, 4), num_classes=3, widths=(6,), activation="tanh")
    xs = torch.rand(3, 1, 4, 4)
    plane = image_plane(model, *xs, 4, line_points=9)
    line = line_of_plane(plane)
    exact = image_line(model, xs[0], xs[1], 9)
    np.testing.assert_allclose(line["t"], exact["t"])
    np.testing.assert_allclose(line["distance"], exact["distance"], rtol=1e-12)
    np.testing.assert_allclose(line["log_volume"], exact["log_volume"], rtol=1e-12)
    assert "log_area" in line.columns and len(line) == 9
    # the heatmap's grid is the 4 × 4 grid only; the segment is drawn from input 1 to input 2
    fig = plane_heatmap(plane)
    assert np.asarray(next(t for t in fig.data if t.type == "heatmap").z).shape == (4, 4)
    seg = next(t for t in fig.data if t.name == "line 1 → 2")
    ends = plane[plane.anchor.isin([0, 1])].sort_values("anchor")
    np.testing.assert_allclose(seg.x, ends.u, atol=1e-12)
    np.testing.assert_allclose(seg.y, ends.v, atol=1e-12)
    # a plane stored without its line (older versions): no line, no guess
    assert line_of_plane(plane[plane.anchor != -2]) is None


def test_filter_catalog_matches_the_store_filters_and_the_cached_catalog_follows_changes(store):
    from nngeo_core.dashboard.widgets import catalog
    from nngeo_core.store import filter_catalog

    keys = [
        store.put(kind, {"i": i}, attrs=dict(model=model))
        for i, (kind, model) in enumerate([("train", "mlp"), ("upload", "mlp"), ("train", "lenet5")])
    ]
    full = store.catalog()
    for filters in ({"kind": "train"}, {"kind": ["train", "upload"], "model": "mlp"}, {"model": None}):
        assert list(filter_catalog(full, **filters)["key"]) == list(store.catalog(**filters)["key"])
    assert sorted(catalog(store)["key"]) == sorted(keys)
    extra = store.put("train", {"i": 99})
    assert extra in set(catalog(store)["key"])  # added: seen at once
    store.delete(keys[0])
    assert keys[0] not in set(catalog(store)["key"])  # deleted: gone at once


def test_the_curvature_page_names_an_uploaded_torchvision_nets_layers_as_torchvision_does(tmp_path):
    import torchvision

    from nngeo_core.dashboard.results import builder_labels, builder_layer_names, curvature_layers, weight_shapes
    from nngeo_core.figures.common import layer_labels

    store = Store(tmp_path / "store")
    net = torchvision.models.resnet18(num_classes=10).eval()
    buf = io.BytesIO()
    torch.save(net.state_dict(), buf)
    key = store_upload(buf.getvalue(), name="r18.pth", store=store, input_shape=(3, 32, 32)).key
    shapes = weight_shapes(store, key)
    layers, _, _ = curvature_layers(shapes, 1)
    names = builder_layer_names(store, key, layers)
    # every name is a module of the plain torchvision net holding a weight of the stored shape
    plain = dict(net.named_modules())
    for ours, theirs in names.items():
        assert tuple(plain[theirs].weight.shape) == shapes[f"{ours}.weight"], (ours, theirs)
    assert names["0.net.conv1"] == "conv1" and names["1.head"] == "fc" and len(set(names.values())) == len(layers)
    labels = builder_labels(layers, layer_labels(layers, shapes), names)
    assert labels["0.net.conv1"] == "conv1 (3→64, 7×7)" and labels["1.head"] == "fc (512→10)"
    # a zoo model keeps its own names
    zoo = store_upload(_mlp_bytes(), name="m.safetensors", store=store).key
    zoo_layers, _, _ = curvature_layers(weight_shapes(store, zoo), 1)
    assert builder_layer_names(store, zoo, zoo_layers) == {n: n for n in zoo_layers}


def test_weight_layers_of_a_header_are_in_the_models_forward_order(tmp_path):
    from nngeo_core.dashboard.results import weight_layers, weight_shapes

    store = Store(tmp_path / "store")
    for name, params, data_spec in [
        ("fcn_mnist", {}, DataSpec("digits", params={"resize": 28})),
        ("vgg11", {"width": 0.125}, DataSpec("cifar10")),
    ]:
        torch.manual_seed(0)
        model = build(name, **params)
        data = checkpoint.to_bytes(model, model_spec=ModelSpec(name, params), data_spec=data_spec)
        key = store_upload(data, name=f"{name}.safetensors", store=store).key
        # a header lists weights sorted as text ('11' before '3'); the layers come back as the model runs them
        assert weight_layers(weight_shapes(store, key)) == [i.name for i in prunable_layers(model)], name
