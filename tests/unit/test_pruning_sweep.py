"""Sweeps: stored once, rows complete and consistent, dense runs shared, FLOPs by an independent
count, fine-tuning keeps pruned weights at zero; comparisons against numpy/brute-force references;
the CLI and the job-kind registration."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import nngeo_core.pruning.sweep as sweep_mod
from nngeo_core.errors import NNGeoError
from nngeo_core.models import prunable_layers
from nngeo_core.models.mlp import FeedForward, sequential
from nngeo_core.pruning import SweepSpec, compare, dense_run_spec, pareto_frontier, run_sweep
from nngeo_core.pruning.sweep import cost_of
from nngeo_core.specs import DataSpec, ModelSpec, RunSpec, TrainSpec
from nngeo_core.store import Store

RUN = RunSpec(
    data=DataSpec("xor", params={"n_train": 200, "n_test": 200}),
    model=ModelSpec("mlp", {"widths": (16, 16)}),
    train=TrainSpec(epochs=4, batch_size=32, lr=1e-2),
)
ROW_FIELDS = {
    "strategy",
    "seed",
    "sparsity_requested",
    "sparsity_achieved",
    "accuracy",
    "accuracy_pruned",
    "loss",
    "nonzero_weights",
    "nonzero_params",
    "flops",
    "layer_sparsity",
    "dense_accuracy",
}


@pytest.fixture
def store(nngeo_home):
    return Store(nngeo_home / "store")


def test_sweep_rows_are_complete_and_stored_once(store, monkeypatch):
    spec = SweepSpec(run=RUN, strategy="magnitude", sparsities=(0.8, 0.5), seeds=(1, 0), finetune_epochs=1)
    key = run_sweep(spec, store=store)
    assert key == spec.hash and store.entry(key)["kind"] == "prune-sweep"
    rows = store.get(key)
    assert set(rows.columns) >= ROW_FIELDS
    assert len(rows) == 4 and sorted(set(rows["seed"])) == [0, 1]
    assert list(rows[rows.seed == 0]["sparsity_requested"]) == [0.5, 0.8]  # levels run in increasing order
    for r in rows.itertuples():
        assert abs(r.sparsity_achieved - r.sparsity_requested) <= 1 / r.total_weights + 1e-12
        assert sum(json.loads(r.layer_sparsity).values()) > 0
        assert r.nonzero_weights == r.total_weights - round(r.sparsity_requested * r.total_weights)
    # the same request is served from the store: nothing is pruned again

    monkeypatch.setattr(sweep_mod, "prune", lambda *a, **k: (_ for _ in ()).throw(AssertionError("recomputed")))
    assert (
        run_sweep(
            SweepSpec(run=RUN, strategy="magnitude", sparsities=(0.5, 0.8), seeds=(0, 1), finetune_epochs=1),
            store=store,
        )
        == key
    )


def test_strategies_share_the_dense_run_and_budgets(store):
    a = SweepSpec(run=RUN, strategy="magnitude", sparsities=(0.5,), seeds=(0,), finetune_epochs=1)
    b = SweepSpec(run=RUN, strategy="random", sparsities=(0.5,), seeds=(0,), finetune_epochs=1)
    assert dense_run_spec(a, 0) == dense_run_spec(b, 0)
    run_sweep(a, store=store)
    run_sweep(b, store=store)
    assert len(store.catalog(kind="train")) == 1
    ra, rb = store.get(a.hash), store.get(b.hash)
    assert ra["dense_accuracy"].iloc[0] == rb["dense_accuracy"].iloc[0]
    assert ra["run"].iloc[0] == rb["run"].iloc[0] == dense_run_spec(a, 0).hash


def test_spec_is_canonical_and_validated():
    a = SweepSpec(run=RUN, strategy="imp", sparsities=[0.9, 0.5, 0.5], seeds=[2, 1])
    b = SweepSpec(
        run=RUN.replace(train=RUN.train.replace(seed=5)),
        strategy="imp",
        sparsities=(0.5, 0.9),
        seeds=(1, 2),
        params={"rate": 0.2},
    )
    assert a.hash == b.hash and a.sparsities == (0.5, 0.9) and a.params["rate"] == 0.2
    for bad in (
        dict(sparsities=(1.0,)),
        dict(seeds=()),
        dict(finetune_epochs=-1),
        dict(scope="row"),
        dict(strategy="nope"),
        dict(params={"zzz": 1}),
        dict(analyses=("nope",)),
    ):
        with pytest.raises(NNGeoError):
            SweepSpec(run=RUN, **bad).validate()


class TinyConv(FeedForward):
    pass


def test_flops_count_conv_positions_and_dense_weights():
    torch.manual_seed(0)
    m = sequential(
        TinyConv, [nn.Conv2d(2, 3, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 5)]
    )
    with torch.no_grad():
        m[0].weight[0].zero_()
        m[3].weight[:, :10] = 0
    infos = prunable_layers(m, (2, 8, 8))
    cost = cost_of(m, infos)
    out = (8 + 2 - 3) // 2 + 1  # the conv output side, by the formula
    conv_nnz = 3 * 2 * 9 - 2 * 9
    dense_nnz = 5 * 48 - 5 * 10
    assert cost["flops"] == conv_nnz * out * out + dense_nnz
    assert cost["nonzero_weights"] == conv_nnz + dense_nnz
    assert cost["nonzero_params"] == conv_nnz + dense_nnz + 3 + 5


def test_finetuning_keeps_pruned_weights_at_zero_and_iterative_masks_nest(store):
    spec = SweepSpec(
        run=RUN,
        strategy="imp",
        sparsities=(0.3, 0.6),
        seeds=(0,),
        finetune_epochs=2,
        params={"round_epochs": 1, "rewind_epoch": 0},
    )
    rows = store.get(run_sweep(spec, store=store))
    # nonzero weights after fine-tuning are exactly those the masks keep
    assert list(rows["nonzero_weights"]) == list(rows["total_weights"] - rows["pruned_weights"])
    assert rows["finetune_epochs"].tolist() == [2, 2]


def test_sweep_analyses_columns(store):
    spec = SweepSpec(
        run=RUN,
        strategy="timp",
        sparsities=(0.4,),
        seeds=(0,),
        params={"round_epochs": 1, "rewind_epoch": 0, "rate": 0.5},
        analyses=("persistence", "eta_floor", "mst_overlap"),
    )
    rows = store.get(run_sweep(spec, store=store))
    r = rows.iloc[0]
    assert r["mst_kept"] == 1.0  # one T-IMP round (rate 0.5 > 0.4) keeps the dense model's whole tree
    assert 0 <= r["mst_overlap"] <= 1 and np.isfinite(r["np_total"])
    # eta_tau of an mlp 2-16-16-2 from the closed form m*n/(m+n-1), summed over layers
    edges = 2 * 16 + 16 * 16 + 16 * 2
    tree = (2 + 16 - 1) + (16 + 16 - 1) + (16 + 2 - 1)
    assert r["eta_tau"] == pytest.approx(edges / tree)
    assert len(json.loads(r["np_layers"])) == 3


# -- compare -----------------------------------------------------------------------------------------
def synthetic_rows(seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for strategy, drop in (("a", 0.0), ("b", 0.05)):
        for s in (0.5, 0.9):
            for sd in range(3):
                acc = 0.95 - drop - (0.1 if s == 0.9 else 0.0) + rng.normal(0, 0.01)
                rows.append(
                    dict(
                        strategy=strategy,
                        seed=sd,
                        sparsity_requested=s,
                        sparsity_achieved=s,
                        accuracy=acc,
                        dense_accuracy=0.95,
                        sweep=f"{strategy}0",
                    )
                )
    return pd.DataFrame(rows)


def test_compare_aggregates_over_seeds():
    df = synthetic_rows()
    result = compare(df, delta=0.02)
    for (strategy, s), grp in df.groupby(["strategy", "sparsity_requested"]):
        row = result.table[(result.table.strategy == strategy) & (result.table.sparsity_requested == s)].iloc[0]
        assert row["accuracy_mean"] == pytest.approx(grp["accuracy"].mean())
        assert row["accuracy_std"] == pytest.approx(np.std(grp["accuracy"], ddof=1))
        assert row["n"] == 3
    within = result.within_delta.set_index("label")
    assert within.loc["a", "max_sparsity"] == 0.5  # 0.95 - 0.02 holds at 0.5, not at 0.9
    assert np.isnan(within.loc["b", "max_sparsity"])  # never within 2 points
    assert set(result.accuracy_pivot().columns) == {"sparsity_requested", "a", "b"}


def test_pareto_frontier_matches_brute_force():
    rng = np.random.default_rng(1)
    pts = pd.DataFrame({"sparsity": rng.choice([0.1, 0.5, 0.7, 0.9], 40), "accuracy": rng.uniform(0, 1, 40)})
    front = pareto_frontier(pts)
    dominated = [
        any(
            (
                q.sparsity >= p.sparsity
                and q.accuracy >= p.accuracy
                and (q.sparsity > p.sparsity or q.accuracy > p.accuracy)
            )
            for q in pts.itertuples()
        )
        for p in pts.itertuples()
    ]
    want = pts[~np.array(dominated)].drop_duplicates().sort_values("sparsity").reset_index(drop=True)
    assert np.allclose(front[["sparsity", "accuracy"]].to_numpy(), want[["sparsity", "accuracy"]].to_numpy())


def test_compare_keys_gives_settings_diff_and_labels(store):
    base = dict(run=RUN, sparsities=(0.5,), seeds=(0,))
    k1 = run_sweep(SweepSpec(strategy="magnitude", **base), store=store)
    k2 = run_sweep(SweepSpec(strategy="magnitude", scope="layer", **base), store=store)
    k3 = run_sweep(SweepSpec(strategy="random", **base), store=store)
    result = compare([k1, k2, k3], store=store)
    diff = result.settings
    assert {"strategy", "scope"} <= set(diff.columns)
    assert "run.model.name" not in diff.columns  # equal everywhere: left out
    assert result.labels[k3] == "random"
    assert result.labels[k1] == "magnitude (scope=global)" and result.labels[k2] == "magnitude (scope=layer)"
    with pytest.raises(NNGeoError, match="not a prune-sweep"):
        compare([dense_run_spec(SweepSpec(**base), 0).hash], store=store)


# -- CLI and job kind ----------------------------------------------------------------------------------
def test_cli_prune_json_and_compare(capsys, nngeo_home):
    from nngeo_core.cli import main

    args = [
        "prune",
        "--model",
        "mlp",
        "--widths",
        "8",
        "--data",
        "xor",
        "--data-param",
        "n_train=100",
        "--data-param",
        "n_test=100",
        "--epochs",
        "2",
        "--strategy",
        "magnitude,random",
        "--sparsity",
        "0.5,0.75",
        "--seeds",
        "2",
        "--json",
    ]
    assert main(args) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 2 * 2 * 2
    for r in rows:
        assert {"strategy", "seed", "sparsity_requested", "sparsity_achieved", "accuracy"} <= set(r)
    keys = sorted({r["sweep"] for r in rows})
    assert main(["compare", *keys]) == 0
    out = capsys.readouterr().out
    assert "magnitude" in out and "random" in out and "Pareto" in out
    assert main(["compare", "--json"]) == 0  # all sweeps in the store
    assert len(json.loads(capsys.readouterr().out)["table"]) == 4


def test_cli_errors_are_one_line(capsys):
    from nngeo_core.cli import main

    assert main(["prune", "--strategy", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("nngeo: error: unknown pruning strategy") and "\n" not in err
    assert main(["prune", "--sparsity", "1.2"]) == 2
    assert "sparsity" in capsys.readouterr().err


def test_digits_resize_rule():
    from nngeo_core.pruning.cli import resize_rule

    run = RunSpec(data=DataSpec("digits"), model=ModelSpec("fcn_mnist"))
    new, changed = resize_rule(run)
    assert changed and new.data.params["resize"] == 28
    assert resize_rule(run.replace(model=ModelSpec("mlp")))[1] is False
    fixed = run.replace(data=DataSpec("digits", params={"resize": 16}))
    assert resize_rule(fixed) == (fixed, False)


def test_prune_sweep_job_kind_is_registered():
    import nngeo_core.jobs.registry as registry

    kind = registry.get_job_kind("prune-sweep")
    assert kind.fn is run_sweep and kind.spec_type is SweepSpec
    assert registry.kind_for_spec(SweepSpec(run=RUN)) is kind


def test_prune_sweep_runs_as_a_job(store):
    import nngeo_core.jobs.inprocess as inprocess

    backend = inprocess.InProcessBackend()
    spec = SweepSpec(run=RUN, strategy="magnitude", sparsities=(0.5,), seeds=(0,))
    info = backend.submit(spec, store=store)
    (done,) = backend.run_pending()
    assert done.id == info.id and done.state == "done", done
    assert done.result == spec.hash and store.entry(spec.hash)["kind"] == "prune-sweep"
    again = backend.submit(spec, store=store)  # served from the store
    assert again.cached and again.result == spec.hash


# -- sweeps of a stored model (a trained run or an upload) -----------------------------------------
def uploaded(store, run=RUN):
    """A small model trained here (not through the store) and stored as an upload; with its test
    accuracy computed by hand."""
    from nngeo_core import checkpoint
    from nngeo_core.data import load as load_data
    from nngeo_core.train import train
    from nngeo_core.uploads import store_upload

    model = train(run).model.cpu().eval()
    data = load_data(run.data)
    with torch.no_grad():
        acc = float((model(data.x_test).argmax(1) == data.y_test).double().mean())
    blob = checkpoint.to_bytes(model, model_spec=run.model, data_spec=run.data)
    return store_upload(blob, name="mine.safetensors", store=store).key, acc


def test_a_sweep_of_an_upload_prunes_it_as_it_is(store):
    from nngeo_core.pruning.cli import source_sweeps

    key, acc = uploaded(store)
    (spec,) = source_sweeps(store, key, ["random"], {}, sparsities=(0.0, 0.5), seeds=(0, 1), finetune_epochs=1)
    assert spec.source == key and spec.run.data == complete_data(RUN.data)
    sweep = run_sweep(spec, store=store)
    assert len(store.catalog(kind="train")) == 0  # no dense model was trained
    rows = store.get(sweep)
    assert set(rows["run"]) == {key}  # every seed prunes the upload itself
    assert rows["dense_accuracy"].tolist() == pytest.approx([acc] * 4, abs=1e-12)
    level0 = rows[rows["sparsity_requested"] == 0.0]
    assert level0["accuracy_pruned"].tolist() == pytest.approx([acc, acc], abs=1e-12)
    # the seeds vary only what is random: the random strategy's masks (read from the stored levels)
    from nngeo_core import checkpoint
    from nngeo_core.export import level_artifact

    masks = [checkpoint.load(store.read_artifact(sweep, level_artifact(seed, 1))).masks for seed in (0, 1)]
    assert masks[0].keys() == masks[1].keys()
    assert any(not torch.equal(masks[0][n], masks[1][n]) for n in masks[0])
    assert all(
        int((~m).sum()) == 0 for m in checkpoint.load(store.read_artifact(sweep, level_artifact(0, 0))).masks.values()
    )


def complete_data(data):
    from nngeo_core.defaults import complete

    return complete(data)


def test_imp_on_an_upload_runs_without_rewinding_and_refuses_a_rewind(store):
    from nngeo_core.pruning.cli import source_sweeps
    from nngeo_core.pruning.jobs import describe

    key, _ = uploaded(store)
    n = len(store.catalog())
    (spec,) = source_sweeps(store, key, ["imp"], {"imp": {"round_epochs": 1}}, sparsities=(0.5,), seeds=(0,))
    assert spec.params["rewind_epoch"] is None
    assert describe(spec).startswith("prune IMP without rewinding mlp/xor")
    (timp,) = source_sweeps(store, key, ["timp"], {}, sparsities=(0.5,))
    assert timp.params["rewind_epoch"] is None and describe(timp).startswith("prune T-IMP without rewinding")
    with pytest.raises(NNGeoError, match="keeps no weights of that epoch") as err:
        source_sweeps(store, key, ["imp"], {"imp": {"rewind_epoch": 0}}, sparsities=(0.5,), seeds=(0,))
    assert "\n" not in str(err.value)
    # a spec asking for the default rewind, submitted as is, is refused before anything runs
    asked = SweepSpec(run=spec.run, strategy="imp", sparsities=(0.5,), source=key)
    with pytest.raises(NNGeoError, match="IMP without rewinding"):
        run_sweep(asked, store=store)
    assert len(store.catalog()) == n
    sweep = run_sweep(spec, store=store)
    assert store.entry(sweep)["label"].startswith("IMP without rewinding")
    other = run_sweep(SweepSpec(run=RUN, strategy="imp", sparsities=(0.5,), params={"round_epochs": 1}), store=store)
    labels = compare([sweep, other], store=store).labels
    assert labels[sweep] == "IMP without rewinding" and labels[other] == "imp"


def test_a_source_field_left_unset_keeps_the_key():
    spec = SweepSpec(run=RUN, strategy="magnitude")
    assert spec.replace(source=None).hash == spec.hash
    assert spec.replace(source="abc").hash != spec.hash
    with pytest.raises(NNGeoError, match="source"):
        spec.replace(source="  ").validate()


def test_cli_prune_run_key_reuses_the_stored_model(capsys, nngeo_home):
    from nngeo_core.cli import main
    from nngeo_core.store import default_store

    store = default_store()
    key, acc = uploaded(store)
    args = ["prune", "--run", key[:12], "--strategy", "magnitude", "--sparsity", "0.5", "--json"]
    assert main(args) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 1 and rows[0]["run"] == key and rows[0]["dense_accuracy"] == pytest.approx(acc, abs=1e-12)
    assert len(store.catalog(kind="train")) == 0
    # another dataset must fit the model's inputs and classes; the run flags do not apply
    assert main(["prune", "--run", key, "--data", "digits", "--sparsity", "0.5"]) == 2
    assert "pick a matching dataset" in capsys.readouterr().err
    assert main(["prune", "--run", key, "--model", "lenet5"]) == 2
    assert "drop --model" in capsys.readouterr().err
    assert main(["prune", "--run", "feedbeef", "--sparsity", "0.5"]) == 2


def test_cli_prune_finds_the_run_nngeo_train_stored(capsys, nngeo_home):
    from nngeo_core.cli import main
    from nngeo_core.store import default_store

    run = ["--model", "fcn_mnist", "--data", "digits", "--epochs", "1"]
    assert main(["train", *run]) == 0
    capsys.readouterr()
    store = default_store()
    (trained,) = store.catalog(kind="train")["key"]
    assert main(["prune", *run, "--strategy", "magnitude", "--sparsity", "0.5", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert list(store.catalog(kind="train")["key"]) == [trained]  # nothing trained again
    assert rows[0]["run"] == trained
    # and the same run named by its key: pruned as it is
    assert main(["prune", "--run", trained, "--strategy", "random", "--sparsity", "0.5", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["run"] == trained
    assert list(store.catalog(kind="train")["key"]) == [trained]


def test_imp_rounds_on_an_upload_train_for_the_sweeps_finetune_epochs(store, monkeypatch):
    """An upload has no training run, so IMP/T-IMP's round_epochs left unset means the sweep's
    finetune_epochs there (0: the rounds only prune); a trained run's rounds keep the run's epochs,
    a value set is kept, and the specs' keys do not change."""
    import nngeo_core.train as train_mod
    from nngeo_core.pruning.cli import source_sweeps
    from nngeo_core.pruning.strategies.imp import imp_schedule
    from nngeo_core.pruning.sweep import level_params

    key, _ = uploaded(store)
    fits: list[int] = []  # the epochs of every fit: IMP's rounds and the sweep's fine-tuning
    real_fit = train_mod.fit

    def spy(model, dataset, spec, **kw):
        fits.append(int(spec.epochs))
        return real_fit(model, dataset, spec, **kw)

    monkeypatch.setattr(train_mod, "fit", spy)  # imp.py imports it at call time
    monkeypatch.setattr(sweep_mod, "fit", spy)
    rounds = len(imp_schedule(0.0, 0.75, 0.5))
    for finetune in (0, 1):
        (spec,) = source_sweeps(
            store, key, ["imp"], {"imp": {"rate": 0.5}}, sparsities=(0.75,), finetune_epochs=finetune
        )
        assert spec.params["round_epochs"] is None and spec.run.train.epochs == 20  # the family preset
        assert level_params(spec, store)["round_epochs"] == finetune
        fits.clear()
        run_sweep(spec, store=store)
        # rounds retrain for the fine-tune epochs (none at 0), then the sweep fine-tunes once
        assert fits == ([finetune] * rounds + [finetune] if finetune else []), fits
    (asked,) = source_sweeps(store, key, ["timp"], {"timp": {"round_epochs": 3}}, sparsities=(0.5,))
    assert level_params(asked, store)["round_epochs"] == 3  # a value the user set is kept
    trained = SweepSpec(run=RUN, strategy="imp", sparsities=(0.5,))
    assert level_params(trained, store)["round_epochs"] is None  # the run's epochs (RUN: 4)
    (of_a_run,) = source_sweeps(store, run_sweep_dense(store), ["imp"], {}, sparsities=(0.5,))
    assert level_params(of_a_run, store)["round_epochs"] is None  # a stored run has its epochs


def run_sweep_dense(store) -> str:
    from nngeo_core.runs import train_run

    return train_run(RUN, store=store)


@pytest.mark.parametrize("strategy", ["imp", "timp"])
@pytest.mark.parametrize("scope", ["global", "layer"])
def test_rounds_without_rewinding_or_retraining_are_one_selection(strategy, scope):
    """Without rewinding or retraining IMP makes one selection at the target instead of every
    round's; the masks are exactly those of the rounds done one by one, written out here: each
    round prunes the smallest surviving |w| (T-IMP: outside the surviving spanning-tree weights,
    recomputed each round), ties by position, to round(level · n) pruned weights."""
    from nngeo_core.data import load as load_data
    from nngeo_core.pruning.masks import target_count
    from nngeo_core.pruning.strategies import PruneData, prune
    from nngeo_core.pruning.strategies.imp import imp_schedule
    from nngeo_core.pruning.strategies.timp import mst_keep

    def net() -> nn.Module:
        m = sequential(FeedForward, [nn.Linear(2, 12), nn.ReLU(), nn.Linear(12, 10), nn.ReLU(), nn.Linear(10, 2)])
        m.input_shape, m.num_classes = (2,), 2
        return m

    torch.manual_seed(3)
    model = net()
    names = [info.name for info in prunable_layers(model)]
    data = PruneData(dataset=load_data(RUN.data), train=RUN.train)
    target, rate = 0.4, 0.15  # below every layer's spanning-tree floor (T-IMP, layer scope)
    params = {"round_epochs": 0, "rewind_epoch": None, "rate": rate}
    result = prune(model, strategy, target, data=data, scope=scope, params=params)
    schedule = imp_schedule(0.0, target, rate)
    assert result.info["selections"] == 1 and result.info["rounds"] == len(schedule) > 2

    work = {n: dict(model.named_modules())[n].weight.detach().clone() for n in names}
    alive = {n: torch.ones_like(w, dtype=torch.bool) for n, w in work.items()}
    for level in schedule:
        if strategy == "timp":
            shadow = net()
            shadow.load_state_dict(model.state_dict())
            with torch.no_grad():
                for n in names:
                    dict(shadow.named_modules())[n].weight.copy_(work[n])
            keep = mst_keep(shadow, alive)
        else:
            keep = {n: torch.zeros_like(a) for n, a in alive.items()}
        groups = [names] if scope == "global" else [[n] for n in names]
        for group in groups:
            mag = np.concatenate([work[n].abs().double().numpy().ravel() for n in group])
            dead = np.concatenate([(~alive[n]).numpy().ravel() for n in group])
            forced = np.concatenate([(keep[n] & alive[n]).numpy().ravel() for n in group])
            rank = np.where(dead, -np.inf, np.where(forced, np.inf, mag))
            order = np.lexsort((np.arange(rank.size), rank))  # by score, ties by position
            flat = np.ones(rank.size, dtype=bool)
            flat[order[: target_count(level, rank.size)]] = False
            start = 0
            for n in group:
                size = alive[n].numel()
                alive[n] = torch.from_numpy(flat[start : start + size].reshape(alive[n].shape).copy())
                start += size
        for n in names:
            work[n] = work[n] * alive[n]
    for n in names:
        assert torch.equal(result.masks[n].bool().cpu(), alive[n]), n
        assert torch.equal(result.state_dict[f"{n}.weight"], work[n])
