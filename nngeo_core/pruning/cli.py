"""`nngeo prune` (run sweeps, one per strategy), `nngeo compare` (print the comparison table) and
`nngeo strategies` (list the pruning strategies, from the catalogue: no torch).

`nngeo prune --run KEY` prunes a stored model (a trained run or an upload) as it is, without
training: ``source_sweeps`` makes its specs (the Pruning page's too), on the model's own data
unless ``--data`` names another (checked to fit before anything runs).

One rule for image models on the offline digits data: when ``--data digits`` is given without a
``resize`` parameter and the model's default input is 28×28 (fcn_mnist, lenet5, cnn_mnist), the
CLI adds ``resize=28`` (and says so on stderr), so MNIST architectures run at their own size.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Mapping
from typing import Any

from .. import catalogue
from ..cli_args import (
    add_run_arguments,
    check_run_names,
    parse_params,
    parse_value,
    print_json,
    print_table,
    progress_for,
    run_spec_from_args,
)
from ..errors import NNGeoError
from ..specs import DataSpec, RunSpec, spec_from_dict
from ..user_index import canonical

MNIST_SIDE = 28
TRAIN_FLAGS = ("epochs", "batch_size", "optimizer", "lr", "momentum", "weight_decay", "schedule")


def add_sweep_arguments(p: argparse.ArgumentParser, *, many: bool = True) -> None:
    add_run_arguments(p)
    # --model/--data start unset so --run can tell whether they were given; without --run they
    # fall back to the run flags' own defaults (kept here)
    p.set_defaults(model=None, data=None, run_defaults={"model": p.get_default("model"), "data": p.get_default("data")})
    g = p.add_argument_group("pruning")
    g.add_argument(
        "--run",
        metavar="KEY",
        help="prune this stored model (a trained run or an upload, see `nngeo runs`) as it is, no training; "
        "--data then names its evaluation/fine-tuning data (default: its own)",
    )
    g.add_argument(
        "--strategy",
        default="magnitude",
        help="strategy name" + (" or a comma-separated list (one sweep each)" if many else ""),
    )
    levels = g.add_mutually_exclusive_group()
    levels.add_argument("--sparsity", help="comma-separated sparsities in [0, 1), e.g. 0.5,0.8,0.9")
    levels.add_argument("--compression", help="comma-separated compression ratios >= 1, e.g. 2,4,8,16")
    levels.add_argument("--levels", type=int, help="N levels at compression 2, 4, ..., 2^N (default 6)")
    g.add_argument("--seeds", type=int, default=1, help="number of seeds: --seed, --seed+1, ... (default 1)")
    g.add_argument("--finetune-epochs", type=int, default=0, help="fine-tuning epochs per level (0 = none)")
    g.add_argument("--finetune-lr", type=float, help="fine-tuning learning rate (default: the run's)")
    g.add_argument("--scope", choices=["global", "layer"], default="global")
    g.add_argument("--exclude-last", action="store_true", help="never prune the last (output) layer")
    chosen = g.add_mutually_exclusive_group()
    chosen.add_argument("--layers", help="prune only these layers (comma-separated names; default: all)")
    chosen.add_argument(
        "--ablate-layers",
        action="store_true",
        help="one sweep per prunable layer, pruning that layer alone (the one-layer-at-a-time ablation)",
    )
    g.add_argument(
        "--strategy-param",
        action="append",
        metavar="[STRATEGY.]K=V",
        help="strategy parameter, e.g. imp.rewind_epoch=0 or samples=64 (repeatable)",
    )
    g.add_argument("--analyses", help="per-level analyses: persistence, eta_floor, mst_overlap (comma-separated)")


def _levels(a) -> tuple[float, ...]:
    # lazy: pruning.specs loads torch (1.5 s CPU, measured); `nngeo --help` must not pay for it
    from .specs import compression_levels, compression_to_sparsity

    def as_list(text):
        v = parse_value(text)
        vals = v if isinstance(v, tuple) else (v,)
        if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in vals):
            raise NNGeoError(f"expected comma-separated numbers, got {text!r}")
        return vals

    if a.sparsity:
        return tuple(float(s) for s in as_list(a.sparsity))
    if a.compression:
        return tuple(compression_to_sparsity(float(c)) for c in as_list(a.compression))
    return compression_levels(a.levels if a.levels is not None else 6)


def strategy_params(items, strategies: list[str]) -> dict[str, dict]:
    """Split --strategy-param values by strategy: 'imp.rate=0.1' for one, 'samples=64' for all that have it."""
    # lazy: the strategies load torch, gudhi and scipy (2.2 s CPU, measured); `nngeo --help` must not pay for them
    from .strategies import get_strategy

    out: dict[str, dict] = {s: {} for s in strategies}
    for item in items or []:
        if "=" not in item:
            raise NNGeoError(f"expected [STRATEGY.]KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        k, value = k.strip(), parse_value(v)
        if "." in k:
            s, k = k.split(".", 1)
            if s not in out:
                raise NNGeoError(f"--strategy-param {item!r} names strategy {s!r}, which is not being run")
            out[s][k] = value
            continue
        takers = [s for s in strategies if k in get_strategy(s).params]
        if not takers:
            raise NNGeoError(f"no strategy being run has a parameter {k!r}")
        for s in takers:
            out[s][k] = value
    return out


def resize_rule(run_spec):
    """digits + a model built for 28×28 inputs -> resize=28 (the one rule; see the module docstring)."""
    # lazy: the model zoo loads torch (1.3 s CPU, measured); `nngeo --help` must not pay for it
    from ..models import model_info

    if run_spec.data.name != "digits" or "resize" in run_spec.data.params:
        return run_spec, False
    try:
        shape = tuple(model_info(run_spec.model.name)["default_input_shape"])
    except NNGeoError:
        return run_spec, False
    if shape[-2:] != (MNIST_SIDE, MNIST_SIDE):
        return run_spec, False
    data = run_spec.data.replace(params={**run_spec.data.params, "resize": MNIST_SIDE})
    return run_spec.replace(data=data), True


def source_sweeps(
    store: Any,
    key: str,
    strategies: list[str],
    params: Mapping[str, Mapping[str, Any]],
    *,
    data: Any = None,
    train: Mapping[str, Any] | None = None,
    **fields: Any,
) -> list:
    """The sweeps (one per strategy) that prune the stored model ``key`` (a trained run or an
    upload) as it is. ``data`` (a DataSpec; None: the model's own) evaluates, calibrates and
    fine-tunes it and must fit its input shape and classes; ``train`` overrides the fine-tuning
    settings (default: the run's own, or the family preset for an upload without one). A
    strategy that rewinds (IMP, T-IMP) rewinds only to epochs the model kept: given no
    ``rewind_epoch`` and none kept, it runs as IMP without rewinding; a ``rewind_epoch`` the model
    did not keep is a one-line error, before anything is queued. ``params`` holds only the
    parameters the user set. ``fields``: the other SweepSpec fields."""
    # lazy: data, defaults and runs load torch (1.5 s CPU, measured); `nngeo --help` must not pay for them
    from ..data import dataset_info
    from ..data.user import check_fits
    from ..defaults import complete, default_data_params, default_train

    # lazy, as above: the model zoo and the runs load torch
    from ..models import model_input_shape
    from ..runs import load_run, snapshot_epochs

    # lazy, as above: the strategies load torch, gudhi and scipy (2.2 s CPU, measured)
    from .specs import SweepSpec
    from .strategies import get_strategy
    from .sweep import SOURCE_KINDS, check_source

    entry = store.entry(key)
    if entry["kind"] not in SOURCE_KINDS:
        raise NNGeoError(f"result {entry['key']} is a {entry['kind']} result; --run takes a trained run or an upload")
    ckpt = load_run(entry["key"], store=store)
    stored = spec_from_dict(entry["spec"]) if entry["kind"] == "train" else ckpt.run_spec
    stored = stored if isinstance(stored, RunSpec) else None
    model_name = ckpt.model_spec.name
    if data is None:
        data = stored.data if stored is not None else ckpt.data_spec
        if data is None:
            raise NNGeoError(
                f"upload {entry['key'][:12]} names no dataset; choose the data to evaluate and fine-tune it on (--data)"
            )
    elif isinstance(data, DataSpec) and (stored is None or data != stored.data):
        name = canonical(data.name)
        data = data.replace(name=name, params=default_data_params(model_name, name, dict(data.params)))
    data = complete(data)
    info = dataset_info(data.name, **dict(data.params))
    check_fits(info, model_input_shape(ckpt.model), int(getattr(ckpt.model, "num_classes", info.num_classes)))
    base = stored.train if stored is not None else default_train(model_name, data.name)
    changes = {k: v for k, v in dict(train or {}).items() if v is not None}
    model_spec = ckpt.model_spec
    with contextlib.suppress(NNGeoError):  # a zoo model's declared defaults, as every run records them
        model_spec = complete(model_spec)
    run = RunSpec(data=data, model=model_spec, train=base.replace(snapshots=(), **changes))
    kept = set(snapshot_epochs(entry["key"], store=store))
    specs = []
    for s in strategies:
        own = dict(params.get(s, {}))
        default = get_strategy(s).defaults.get("rewind_epoch")
        if get_strategy(s).trains and "rewind_epoch" not in own and default is not None and default not in kept:
            own["rewind_epoch"] = None  # nothing to rewind to: IMP without rewinding
        spec = SweepSpec(run=run, strategy=s, params=own, source=str(entry["key"]), **fields).validate()
        check_source(spec, store)
        specs.append(spec)
    return specs


def run_defaults(a) -> argparse.Namespace:
    """``a`` with --model/--data at the run flags' defaults where not given (see add_sweep_arguments)."""
    fallback = getattr(a, "run_defaults", None) or {}
    return argparse.Namespace(**{**vars(a), **{k: v for k, v in fallback.items() if getattr(a, k, None) is None}})


def sweep_specs_from_args(a, *, note=None, store=None) -> list:
    """The sweeps `nngeo prune` asks for: one per strategy, each once per prunable layer with
    ``--ablate-layers`` (pruning that layer alone), or over ``--layers`` only."""
    specs = _strategy_specs_from_args(a, note=note, store=store)
    if store is None and getattr(a, "store", None):
        # lazy: the store loads pandas and pyarrow (~0.5 s); `nngeo --help` must not pay for them
        from ..store import Store

        store = Store(a.store)
    if getattr(a, "ablate_layers", False):
        return [spec.replace(layers=(name,)).validate() for spec in specs for name in _layer_names(spec, store)]
    names = tuple(n.strip() for n in str(getattr(a, "layers", None) or "").split(",") if n.strip())
    if names:
        known = set(_layer_names(specs[0], store))
        unknown = [n for n in names if n not in known]
        if unknown:  # told now, before anything is queued
            raise NNGeoError(f"no prunable layer named {unknown[0]!r}; prunable layers: {', '.join(sorted(known))}")
        return [spec.replace(layers=names).validate() for spec in specs]
    return specs


def _layer_names(spec, store) -> list[str]:
    """The prunable layers of the model a sweep prunes (its source, or its run's model built fresh)."""
    # lazy: the data, the zoo and the runs load torch; `nngeo --help` must not pay for them
    from ..data import dataset_info
    from ..models import build, prunable_layers
    from ..runs import load_run

    if spec.source is not None:
        model = load_run(spec.source, store=store).model
    else:
        info = dataset_info(spec.run.data.name, **dict(spec.run.data.params))
        model = build(spec.run.model, input_shape=info.input_shape, num_classes=info.num_classes)
    return [info.name for info in prunable_layers(model)]


def _strategy_specs_from_args(a, *, note=None, store=None) -> list:
    strategies = [s.strip() for s in str(a.strategy).split(",") if s.strip()]
    if not strategies:
        raise NNGeoError("give at least one --strategy")
    if getattr(a, "run", None):
        return _source_specs_from_args(a, strategies, store)
    a = run_defaults(a)
    # misspelt names are told at once, from the catalogue, not after torch has loaded
    check_run_names(a)
    for s in strategies:
        catalogue.check_strategy(s)
    # lazy: the strategies load torch, gudhi and scipy (2.2 s CPU, measured); `nngeo --help` must not pay for them
    from .specs import SweepSpec
    from .strategies import get_strategy

    for s in strategies:
        get_strategy(s)
    run = run_spec_from_args(a)
    run, resized = resize_rule(run)
    if resized and note is not None:
        note(
            f"note: digits resized to {MNIST_SIDE}x{MNIST_SIDE} for {run.model.name} "
            "(give --data-param resize=N to choose another size)"
        )
    if a.seeds < 1:
        raise NNGeoError("--seeds must be at least 1")
    params = strategy_params(a.strategy_param, strategies)
    analyses = tuple(x.strip() for x in (a.analyses or "").split(",") if x.strip())
    levels = _levels(a)
    specs = []
    for s in strategies:
        spec = SweepSpec(
            run=run,
            strategy=s,
            params=params[s],
            sparsities=levels,
            seeds=tuple(range(a.seed, a.seed + a.seeds)),
            finetune_epochs=a.finetune_epochs,
            scope=a.scope,
            exclude_last=a.exclude_last,
            finetune_lr=a.finetune_lr,
            analyses=analyses,
        )
        specs.append(spec.validate())
    return specs


def _source_specs_from_args(a, strategies: list[str], store) -> list:
    """The specs of `nngeo prune --run KEY ...` (see ``source_sweeps``)."""
    for flag in ("model", "widths", "activation", "param", "snapshots"):
        if getattr(a, flag, None):
            raise NNGeoError(f"--run prunes a stored model as it is; drop --{flag.replace('_', '-')}")
    for s in strategies:
        catalogue.check_strategy(s)
    if a.data is not None:
        catalogue.check_dataset(a.data)
    if a.seeds < 1:
        raise NNGeoError("--seeds must be at least 1")
    # lazy: the store loads pandas and pyarrow (~0.5 s); `nngeo --help` must not pay for them
    from ..store import Store, default_store

    if store is None:
        store = Store(a.store) if getattr(a, "store", None) else default_store()
    data = None
    if a.data is not None:
        data = DataSpec(a.data, seed=a.data_seed, params=parse_params(a.data_param))
    elif a.data_param:
        raise NNGeoError("--data-param needs --data")
    return source_sweeps(
        store,
        a.run,
        strategies,
        strategy_params(a.strategy_param, strategies),
        data=data,
        train={k: getattr(a, k, None) for k in TRAIN_FLAGS},
        sparsities=_levels(a),
        seeds=tuple(range(a.seed, a.seed + a.seeds)),
        finetune_epochs=a.finetune_epochs,
        scope=a.scope,
        exclude_last=a.exclude_last,
        finetune_lr=a.finetune_lr,
        analyses=tuple(x.strip() for x in (a.analyses or "").split(",") if x.strip()),
    )


ROW_COLUMNS = [
    "strategy",
    "seed",
    "sparsity_requested",
    "sparsity_achieved",
    "accuracy_pruned",
    "accuracy",
    "flops_fraction",
]


def cmd_prune(a) -> int:
    quiet = a.json or a.quiet
    # first, so a misspelt name is told before torch loads
    specs = sweep_specs_from_args(a, note=None if quiet else (lambda m: print(m, file=sys.stderr)))
    # lazy: the store and the sweep load pandas and torch (2.1 s CPU, measured); `nngeo --help` must not pay
    from ..store import Store, default_store
    from .sweep import run_sweep

    store = Store(a.store) if a.store else default_store()
    out_rows, keys = [], []
    for spec in specs:
        cached = store.exists(spec.hash)
        progress, bar = progress_for(f"prune {spec.strategy}", quiet or cached)
        try:
            key = run_sweep(spec, store=store, progress=progress)
        finally:
            bar.close()
        keys.append(key)
        table = store.get(key)
        if a.json:
            for r in table.to_dict("records"):
                r["layer_sparsity"] = json.loads(r["layer_sparsity"])
                out_rows.append(r)
        else:
            word = "found in store" if cached else "computed"
            print(f"{spec.strategy}: sweep {key} ({word})")
            print_table(table[ROW_COLUMNS + (["layers"] if spec.layers else [])].round(4))
    if a.json:
        print_json(out_rows)
    else:
        print(f"compare with: nngeo compare {' '.join(k[:12] for k in keys)}")
    return 0


def cmd_compare(a) -> int:
    # lazy: the store and the comparison load pandas (~0.5 s); `nngeo --help` must not pay for it
    from ..store import Store, default_store
    from .comparison import compare

    store = Store(a.store) if a.store else default_store()
    keys = list(a.runs)
    if not keys:
        cat = store.catalog(kind="prune-sweep", model=a.model_filter, data=a.data_filter)
        keys = list(cat["key"])
        if not keys:
            raise NNGeoError("no prune-sweep results in the store; run `nngeo prune` first or give keys")
    if a.delta < 0:
        raise NNGeoError("--delta must be >= 0 (accuracy points)")
    result = compare(keys, store=store, delta=a.delta / 100.0)
    if a.json:
        print_json(result.to_dict())
        return 0
    n = "/".join(map(str, sorted(set(int(x) for x in result.table["n"])))) if len(result.table) else "0"
    tuned = result.table["finetune_epochs"].max() if "finetune_epochs" in result.table else 0
    if tuned and tuned > 0:
        print(f"accuracy right after pruning (post-training), mean ± std over {n} seed(s), by requested sparsity")
        print_table(result.accuracy_pivot("accuracy_pruned"))
        print()
    print(
        f"accuracy {'after fine-tuning' if tuned else '(no fine-tuning)'}, mean ± std over {n} seed(s), "
        "by requested sparsity"
    )
    print_table(result.accuracy_pivot())
    print(f"\nhighest sparsity within {a.delta:g} accuracy point(s) of dense")
    print_table(result.within_delta.round(4))
    print("\nPareto frontier (mean sparsity achieved vs mean accuracy)")
    print_table(result.pareto.round(4))
    if not result.settings.empty and len(result.settings.columns) > 2:
        print("\nsettings that differ")
        print_table(result.settings.drop(columns=["sweep"]).astype(object).where(result.settings.notna(), ""))
    return 0


def cmd_strategies(a) -> int:
    rows = catalogue.rows(catalogue.STRATEGIES)
    if a.json:
        print_json(rows)
        return 0
    for r in rows:
        print(f"{r['name']:14s} {'needs data  ' if r['needs_data'] else '            '}{r['description']}")
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("prune", help="prune a trained run with one or more strategies over sparsities and seeds")
    add_sweep_arguments(p)
    p.add_argument("--json", action="store_true", help="print the result rows as JSON")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_prune)

    c = sub.add_parser("compare", help="compare stored pruning sweeps (accuracy vs sparsity over seeds)")
    c.add_argument("runs", nargs="*", help="prune-sweep keys (default: all, filtered by --model/--data)")
    c.add_argument("--model", dest="model_filter")
    c.add_argument("--data", dest="data_filter")
    c.add_argument("--delta", type=float, default=1.0, help="accuracy points below dense still counted (default 1)")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_compare)

    q = sub.add_parser("strategies", help="list the pruning strategies")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_strategies)
