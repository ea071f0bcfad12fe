"""Null models (``nngeo_core.models.nulls``): what each kind keeps and draws, and the analyses that
stack null-model rows beside the network's own (``null_models`` / ``null_seeds``)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from nngeo_core.analyses import get_analysis, normalize_params
from nngeo_core.defaults import complete
from nngeo_core.errors import NNGeoError
from nngeo_core.figures import curvature as cf
from nngeo_core.figures import persistence as pf
from nngeo_core.models import build
from nngeo_core.models.nulls import NULL_KINDS, NULL_PARAMS, null_model, null_rows, trained_rows
from nngeo_core.progress import Progress
from nngeo_core.specs import AnalysisSpec
from nngeo_core.store import Store

NULL_ANALYSES = ("mst_overlap", "persistence", "curvature_weights")


def state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def linears(model: nn.Module) -> list[nn.Linear]:
    return [m for m in model.modules() if isinstance(m, nn.Linear)]


def small_mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build("mlp", input_shape=(6,), num_classes=3, widths=(7, 5))


def pruned_mlp() -> nn.Module:
    model = small_mlp(1)
    with torch.no_grad():
        for lin in linears(model):
            lin.weight[torch.rand(lin.weight.shape, generator=torch.Generator().manual_seed(5)) < 0.4] = 0.0
    return model


# -- the kinds -------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", NULL_KINDS)
def test_a_null_is_a_new_model_and_leaves_the_original_untouched(kind):
    model = pruned_mlp()
    before = state(model)
    rng = torch.get_rng_state()
    null = null_model(model, kind, seed=3)
    assert torch.equal(torch.get_rng_state(), rng)  # no global RNG state consumed or left changed
    after = state(model)
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert null is not model and all(
        p.data_ptr() != q.data_ptr() for p, q in zip(null.parameters(), model.parameters(), strict=True)
    )
    assert [k for k in null.state_dict()] == list(before)
    for a, b in zip(linears(model), linears(null), strict=True):
        assert a.weight.shape == b.weight.shape
        assert torch.equal(a.weight == 0, b.weight == 0)  # the zero (pruned) pattern is kept
        assert not torch.equal(a.weight, b.weight)


def test_shuffled_keeps_each_layers_multiset_and_moves_the_weights():
    model = pruned_mlp()
    null = null_model(model, "shuffled", seed=0)
    for a, b in zip(linears(model), linears(null), strict=True):
        wa, wb = a.weight.detach().flatten(), b.weight.detach().flatten()
        assert torch.equal(torch.sort(wa).values, torch.sort(wb).values)
        live = wa != 0
        assert (wa[live] != wb[live]).float().mean() > 0.5  # most live weights moved
        assert torch.equal(a.bias, b.bias)  # biases are kept


def test_shuffled_permutes_conv_weights_over_the_whole_tensor():
    torch.manual_seed(0)
    model = build("lenet5_s2", input_shape=(1, 16, 16))
    null = null_model(model, "shuffled", seed=1)
    convs = [(a, b) for a, b in zip(model.modules(), null.modules(), strict=True) if isinstance(a, nn.Conv2d)]
    assert convs
    for a, b in convs:
        assert torch.equal(torch.sort(a.weight.flatten()).values, torch.sort(b.weight.flatten()).values)
        # entries cross filters: some filter's multiset changes (a within-filter shuffle would keep all)
        fa = torch.sort(a.weight.detach().flatten(1), dim=1).values
        fb = torch.sort(b.weight.detach().flatten(1), dim=1).values
        assert not torch.equal(fa, fb)


def test_gaussian_has_the_shape_and_the_layers_rms():
    torch.manual_seed(0)
    model = build("mlp", input_shape=(400,), num_classes=2, widths=(500,))
    null = null_model(model, "gaussian", seed=7)
    big, drawn = linears(model)[0], linears(null)[0]
    assert drawn.weight.shape == big.weight.shape == (500, 400)
    w = big.weight.detach().double().flatten()
    target = w.pow(2).mean().sqrt().item()
    x = drawn.weight.detach().double().flatten()
    n = x.numel()
    # x_i iid N(0, s^2): mean(x^2)/s^2 has mean 1 and std sqrt(2/n); mean(x)/s has std 1/sqrt(n)
    assert abs(x.pow(2).mean().item() / target**2 - 1) < 5 * math.sqrt(2 / n)
    assert abs(x.mean().item() / target) < 5 / math.sqrt(n)
    # and it is Gaussian: the share within one sigma is 0.6827 (binomial sd sqrt(p(1-p)/n))
    p = 0.682689492
    assert abs((x.abs() < target).double().mean().item() - p) < 5 * math.sqrt(p * (1 - p) / n)
    assert torch.equal(big.bias, drawn.bias)
    again = null_model(model, "gaussian", seed=7)
    other = null_model(model, "gaussian", seed=8)
    assert torch.equal(linears(again)[0].weight, drawn.weight)
    assert not torch.equal(linears(other)[0].weight, drawn.weight)


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("fcn_mnist", {"input_shape": (1, 8, 8)}),
        # Kaiming-initialised convs and batch norms: reset_parameters alone would not give these
        ("resnet20", {"input_shape": (3, 8, 8), "width": 0.25, "num_classes": 4}),
    ],
)
def test_init_equals_a_fresh_build_under_the_same_seed(name, kwargs):
    torch.manual_seed(123)
    model = build(name, **kwargs)
    with torch.no_grad():  # as if trained: every weight moved
        for p in model.parameters():
            p.add_(0.01)
    null = null_model(model, "init", seed=4)
    torch.manual_seed(4)
    fresh = build(name, **kwargs)
    ours, theirs = null.state_dict(), fresh.state_dict()
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_init_of_a_network_outside_the_zoo_resets_its_modules():
    class Net(nn.Sequential):
        input_shape = (300,)

    torch.manual_seed(0)
    model = Net(nn.Linear(300, 400), nn.ReLU(), nn.Linear(400, 2))
    with torch.no_grad():
        model[0].weight.fill_(1.0)
    null = null_model(model, "init", seed=2)
    w = null[0].weight.detach().double().flatten()
    # nn.Linear's own initialiser: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), variance 1/(3 fan_in)
    bound = 1 / math.sqrt(300)
    assert w.abs().max() <= bound
    var, n = bound**2 / 3, w.numel()
    # the variance of U(-b, b)^2 is b^4/5 - b^4/9 = 4 b^4 / 45
    assert abs(w.pow(2).mean().item() - var) < 5 * math.sqrt(4 * bound**4 / 45 / n)
    assert torch.equal(null_model(model, "init", seed=2)[0].weight, null[0].weight)
    assert torch.all(model[0].weight == 1.0)


def test_a_bad_kind_is_one_line_naming_the_kinds():
    with pytest.raises(NNGeoError) as err:
        null_model(small_mlp(), "permuted", 0)
    text = str(err.value)
    assert "\n" not in text and all(k in text for k in NULL_KINDS)
    spec = AnalysisSpec(run="0123456789abcdef", method="mst_overlap", params={"null_models": "init,bogus"})
    with pytest.raises(NNGeoError, match="bogus"):
        normalize_params(spec.method, spec.run, dict(spec.params), None)


def test_folded_masks_a_null_of_a_torch_pruned_model():
    from torch.nn.utils import prune

    model = small_mlp(2)
    prune.l1_unstructured(model[0] if isinstance(model[0], nn.Linear) else linears(model)[0], "weight", amount=0.5)
    lin = linears(model)[0]
    effective = lin.weight.detach().clone()
    null = null_model(model, "shuffled", seed=0)
    assert hasattr(lin, "weight_orig")  # the original keeps its parametrisation
    out = linears(null)[0]
    assert not hasattr(out, "weight_orig")
    assert torch.equal(out.weight == 0, effective == 0)
    assert torch.equal(torch.sort(out.weight.flatten()).values, torch.sort(effective.flatten()).values)


# -- null models in the analyses --------------------------------------------------------------------
def layer_rows(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["kind"].astype(str) != "skipped"] if "kind" in table.columns else table


@pytest.mark.parametrize("name", NULL_ANALYSES)
def test_an_analysis_with_null_models_stacks_every_kind_and_seed(name):
    analysis = get_analysis(name)
    model = small_mlp()
    before = state(model)
    plain = analysis(model, None, analysis.resolve({}), Progress())
    assert "model" not in plain.columns and "seed" not in plain.columns  # old shape, unchanged
    params = analysis.resolve({"null_models": ("gaussian", "init", "shuffled"), "null_seeds": 2})
    table = analysis(model, None, params, Progress())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert list(table.columns[:2]) == ["model", "seed"]
    groups = table.groupby(["model", "seed"], dropna=False, sort=False).size()
    want = [("trained", None)] + [(k, s) for k in NULL_KINDS for s in range(2)]
    got = [(m, None if pd.isna(s) else int(s)) for m, s in groups.index]
    assert got == want
    assert len(set(groups)) == 1  # every model has the same rows (layers or edges)
    # the trained rows are the analysis without null models, recomputed from scratch
    pd.testing.assert_frame_equal(trained_rows(table), plain)
    # a null's rows are the analysis of that null model, computed on its own
    for kind in NULL_KINDS:
        rows = table[(table["model"] == kind) & (table["seed"] == 1)].drop(columns=["model", "seed"])
        alone = analysis(null_model(model, kind, 1), None, analysis.resolve({}), Progress())
        pd.testing.assert_frame_equal(rows.reset_index(drop=True), alone)


def test_null_rows_report_progress_and_honour_cancel():
    seen = []
    progress = Progress(on_update=lambda f, phase, m: seen.append((f, phase)), min_interval=0.0)
    params = {"null_models": ("init",), "null_seeds": 2}
    null_rows(small_mlp(), lambda net, pr: pd.DataFrame({"layer": ["a"]}), params, progress)
    phases = [p for _, p in seen]
    assert phases == ["trained network", "null model init, seed 0", "null model init, seed 1"]
    assert [round(f, 6) for f, _ in seen] == [0.0, round(1 / 3, 6), round(2 / 3, 6)]
    from nngeo_core.progress import Cancelled

    with pytest.raises(Cancelled):
        null_rows(small_mlp(), lambda net, pr: pd.DataFrame(), params, Progress(is_cancelled=lambda: True))


@pytest.mark.parametrize("name", NULL_ANALYSES)
def test_no_null_models_changes_no_key(name):
    analysis = get_analysis(name)
    run = "0123456789abcdef"
    old_defaults = {k: v for k, v in analysis.defaults.items() if k not in NULL_PARAMS}
    # a spec as the version before null models completed it: its defaults without the new two
    before = AnalysisSpec(run=run, method=name, params=dict(old_defaults), param_defaults=dict(old_defaults))
    for given in ({}, {"null_models": None}, {"null_models": ()}, {"null_models": ""}, {"null_seeds": 7}):
        params = normalize_params(name, run, given, None)
        spec = complete(AnalysisSpec(run=run, method=name, params=params))
        assert spec.hash == before.hash, given
    with_nulls = complete(
        AnalysisSpec(run=run, method=name, params=normalize_params(name, run, {"null_models": "init"}, None))
    )
    assert with_nulls.hash != before.hash
    # the order and spelling of the kinds name one result
    a = normalize_params(name, run, {"null_models": "shuffled, init"}, None)
    b = normalize_params(name, run, {"null_models": ["init", "shuffled", "init"]}, None)
    assert a == b and a["null_models"] == ("init", "shuffled")


def test_a_table_with_null_models_round_trips_through_the_store(tmp_path):
    analysis = get_analysis("mst_overlap")
    table = analysis(small_mlp(), None, analysis.resolve({"null_models": ("shuffled",), "null_seeds": 2}), Progress())
    store = Store(str(tmp_path / "store"))
    key = store.put("analysis", {"what": "nulls"}, table)
    back = store.get(key)
    pd.testing.assert_frame_equal(back, table, check_dtype=False)
    assert back["seed"].isna().sum() == (table["model"] == "trained").sum()


# -- figures -------------------------------------------------------------------------------------------
def overlap_with_nulls() -> pd.DataFrame:
    analysis = get_analysis("mst_overlap")
    params = analysis.resolve({"null_models": NULL_KINDS, "null_seeds": 3})
    return analysis(small_mlp(), None, params, Progress())


def test_null_summary_is_the_mean_and_std_over_seeds():
    table = overlap_with_nulls()
    summary = pf.null_summary(table, "overlap")
    layers = list(dict.fromkeys(table.loc[table["model"] == "trained", "layer"].astype(str)))
    assert list(dict.fromkeys(summary["layer"])) == layers
    for row in summary.itertuples():
        sel = (table["model"] == row.model) & (table["layer"].astype(str) == row.layer)
        values = [float(v) for v in table.loc[sel, "overlap"]]
        assert row.n == len(values)
        assert row.mean == pytest.approx(sum(values) / len(values))
        if len(values) > 1:
            assert row.std == pytest.approx(float(np.std(values, ddof=1)))
        assert row.min == min(values) and row.max == max(values)


def test_the_null_figures_draw_the_network_beside_each_kind():
    table = overlap_with_nulls()
    fig = pf.mst_overlap_vs_nulls(table)
    names = [t.name for t in fig.data]
    assert names[0] == "trained network" and len(names) == 1 + len(NULL_KINDS) + 1  # + chance
    bar = fig.data[0]
    trained = table[table["model"] == "trained"]
    assert list(bar.y) == list(trained["overlap"])
    for trace, kind in zip(fig.data[1:4], NULL_KINDS, strict=True):
        rows = table[table["model"] == kind]
        assert list(trace.y) == pytest.approx(list(rows.groupby("layer", sort=False)["overlap"].mean()))
    # without null models: a message, and the existing builders still draw the trained rows
    plain = trained_rows(table)
    assert not pf.has_nulls(plain) and len(pf.mst_overlap_vs_nulls(plain).data) == 0
    assert len(pf.mst_overlap(plain).data) == 3
    np_table = get_analysis("persistence")(
        small_mlp(), None, get_analysis("persistence").resolve({"null_models": ("init",)}), Progress()
    )
    np_fig = pf.np_vs_nulls(np_table)
    assert list(np_fig.data[0].y) == list(trained_rows(np_table)["np_normalized"])
    assert len(np_fig.data) == 2


def test_the_curvature_null_figure_summarises_each_layer():
    analysis = get_analysis("curvature_weights")
    edges = analysis(small_mlp(), None, analysis.resolve({"null_models": ("gaussian",), "null_seeds": 2}), Progress())
    per = cf.curvature_layer_statistic(edges, "negative_share")
    for row in per.itertuples():
        sel = (edges["model"] == row.model) & (edges["layer"].astype(str) == row.layer)
        if row.model != "trained":
            sel &= edges["seed"] == row.seed
        kappa = edges.loc[sel, "curvature"].to_numpy(dtype=float)
        assert row.n_edges == len(kappa) and row.value == pytest.approx(float((kappa < 0).mean()))
    fig = cf.curvature_vs_nulls(edges, statistic="mean")
    mean = edges[edges["model"] == "trained"].groupby("layer", sort=False)["curvature"].mean()
    assert list(fig.data[0].y) == pytest.approx(list(mean))
    assert len(fig.data) == 2
    with pytest.raises(NNGeoError, match="negative_share"):
        cf.curvature_layer_statistic(edges, "bogus")
    # an old result (no model column) reads as the network alone
    old = trained_rows(edges)
    assert set(cf.curvature_layer_statistic(old)["model"]) == {"trained"}
    assert len(cf.curvature_vs_nulls(old).data) == 0
