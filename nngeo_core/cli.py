"""The ``nngeo`` command line (also ``python -m nngeo_core``).

Errors print one line (``nngeo: error: ...``) and exit with status 2; ``--json`` prints
machine-readable output on stdout only, progress bars go to stderr.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import Any

from .errors import NNGeoError

# modules that add sub-commands: each defines add_commands(subparsers)
COMMAND_MODULES = ["nngeo_core.jobs.cli", "nngeo_core.pruning.cli", "nngeo_core.analyse_cli"]


# -- shared argument helpers -------------------------------------------------------------------
def parse_value(text: str) -> Any:
    """'3' -> 3, '0.5' -> 0.5, 'true' -> True, '64,64' -> (64, 64), else the string."""
    t = text.strip()
    if "," in t:
        return tuple(parse_value(p) for p in t.split(",") if p.strip())
    low = t.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(t)
        except ValueError:
            pass
    return t


def parse_params(items: list[str] | None) -> dict[str, Any]:
    out = {}
    for item in items or []:
        if "=" not in item:
            raise NNGeoError(f"expected KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        out[k.strip()] = parse_value(v)
    return out


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    """Flags that define a training run (shared by `train`, `jobs submit train`, `prune`)."""
    g = p.add_argument_group("run")
    g.add_argument("--model", default="mlp", help="zoo model name (see `nngeo models`)")
    g.add_argument("--data", default="xor", help="dataset name (see `nngeo datasets`)")
    g.add_argument("--widths", help="mlp hidden widths, e.g. 32,32")
    g.add_argument("--activation", help="mlp activation: relu, tanh, gelu, erf, sigmoid, softplus")
    g.add_argument("--param", action="append", metavar="K=V", help="extra model parameter (repeatable)")
    g.add_argument("--data-param", action="append", metavar="K=V", help="dataset parameter, e.g. resize=28")
    g.add_argument("--data-seed", type=int, default=0)
    g.add_argument("--epochs", type=int)
    g.add_argument("--batch-size", type=int)
    g.add_argument("--optimizer", choices=["adam", "sgd"])
    g.add_argument("--lr", type=float)
    g.add_argument("--momentum", type=float)
    g.add_argument("--weight-decay", type=float)
    g.add_argument("--schedule", choices=["constant", "cosine", "step"])
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--snapshots", help="epochs whose weights are kept, e.g. 0,5,10")
    g.add_argument("--device", default="auto", help="auto (cuda if present), cpu, cuda, mps")


def run_spec_from_args(a: argparse.Namespace):
    from .defaults import default_data_params, default_train
    from .specs import DataSpec, ModelSpec, RunSpec

    model_params = parse_params(a.param)
    if a.widths:
        w = parse_value(a.widths)
        model_params["widths"] = w if isinstance(w, tuple) else (w,)
    if a.activation:
        model_params["activation"] = a.activation
    data = DataSpec(a.data, seed=a.data_seed, params=default_data_params(a.model, a.data, parse_params(a.data_param)))
    t = default_train(a.model, a.data)
    changes = {
        k: getattr(a, k)
        for k in ("epochs", "batch_size", "optimizer", "lr", "momentum", "weight_decay", "schedule")
        if getattr(a, k) is not None
    }
    if a.snapshots:
        s = parse_value(a.snapshots)
        changes["snapshots"] = tuple(int(e) for e in (s if isinstance(s, tuple) else (s,)))
    t = t.replace(seed=a.seed, device=a.device, **changes)
    return RunSpec(data=data, model=ModelSpec(a.model, model_params), train=t)


class ProgressBar:
    """A tqdm bar on stderr driven by ``Progress`` updates."""

    def __init__(self, desc: str, enabled: bool = True):
        self.desc, self.enabled, self.bar = desc, enabled, None

    def __call__(self, fraction: float, phase: str, metrics: dict) -> None:
        if self.bar is None:  # created on the first report, so early errors print one line only
            from tqdm import tqdm

            self.bar = tqdm(
                total=1000,
                desc=self.desc,
                file=sys.stderr,
                disable=not self.enabled,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {postfix}",
            )
        self.bar.n = int(1000 * fraction)
        shown = {
            k: (f"{v:.4g}" if isinstance(v, float) else v)
            for k, v in metrics.items()
            if k in ("loss", "accuracy", "test_accuracy", "sparsity", "layer")
        }
        self.bar.set_postfix_str(" ".join([phase] + [f"{k}={v}" for k, v in shown.items()]), refresh=False)
        self.bar.refresh()

    def close(self):
        if self.bar is not None:
            self.bar.close()


def progress_for(desc: str, quiet: bool):
    from .progress import Progress

    bar = ProgressBar(desc, enabled=not quiet)
    return Progress(bar), bar


def print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=_json_default))


def _json_default(o):
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    return str(o)


def print_table(df, max_rows: int = 60) -> None:
    import pandas as pd

    with pd.option_context(
        "display.max_rows", max_rows, "display.max_columns", 30, "display.width", 200, "display.max_colwidth", 40
    ):
        print(df.to_string(index=False) if len(df) else "(empty)")


# -- commands ----------------------------------------------------------------------------------
def cmd_train(a) -> int:
    from .runs import train_run
    from .store import Store

    spec = run_spec_from_args(a)
    store = Store(a.store) if a.store else None
    from .store import default_store

    store = store or default_store()
    cached = store.exists(spec.hash) and not a.force
    progress, bar = progress_for(f"train {spec.model.name} on {spec.data.name}", a.json or a.quiet)
    try:
        key = train_run(spec, store=store, progress=progress, force=a.force)
    finally:
        bar.close()
    entry = store.entry(key)
    info = {
        "run": key,
        "cached": cached,
        "model": spec.model.name,
        "data": spec.data.name,
        "test_accuracy": entry["metric"],
        "store": store.root,
    }
    if a.json:
        print_json(info)
    else:
        word = "found in store" if cached else "trained"
        print(f"{word}: run {key}  test accuracy {entry['metric']:.4f}  ({spec.model.name} on {spec.data.name})")
    return 0


def cmd_list(a) -> int:
    from .store import Store, default_store

    store = Store(a.store) if a.store else default_store()
    df = store.catalog(kind=a.kind, model=a.model_filter, data=a.data_filter)
    cols = ["key", "kind", "model", "data", "method", "strategy", "sparsity", "seed", "metric", "label", "created"]
    if a.json:
        print_json(df[cols].assign(created=df["created"].astype(float)).to_dict("records"))
    else:
        shown = df[cols].copy()
        import pandas as pd

        shown["created"] = pd.to_datetime(shown["created"], unit="s").dt.strftime("%Y-%m-%d %H:%M")
        print_table(shown.fillna(""))
    return 0


def cmd_show(a) -> int:
    from .store import Store, default_store

    store = Store(a.store) if a.store else default_store()
    entry = store.entry(a.run)
    table = store.get(entry["key"])
    if a.json:
        print_json(
            {
                "entry": {**entry, "spec": json.loads(entry["spec"]), "attrs": json.loads(entry["attrs"])},
                "artifacts": store.artifacts(entry["key"]),
                "rows": table.head(a.rows).to_dict("records"),
            }
        )
    else:
        print(f"{entry['kind']} {entry['key']}  {entry['label'] or ''}")
        print(f"spec: {json.dumps(json.loads(entry['spec']), sort_keys=True)}")
        print(f"artifacts: {', '.join(store.artifacts(entry['key'])) or 'none'}")
        print_table(table.head(a.rows))
    return 0


def cmd_export(a) -> int:
    from .store import Store, default_store

    store = Store(a.store) if a.store else default_store()
    dest = store.export(a.run, a.format, a.output)
    print(json.dumps({"path": dest}) if a.json else dest)
    return 0


def cmd_models(a) -> int:
    from .models import list_models, model_info

    rows = [{"name": n, **{k: v for k, v in model_info(n).items() if k != "params"}} for n in list_models()]
    print_json(rows) if a.json else [print(f"{r['name']:12s} {r.get('description', '')}") for r in rows]
    return 0


def cmd_datasets(a) -> int:
    import dataclasses

    from .data import dataset_info, list_datasets

    rows = [{**dataclasses.asdict(dataset_info(n)), "name": n} for n in list_datasets()]
    print_json(rows) if a.json else [print(f"{r['name']:14s} {r.get('description', '')}") for r in rows]
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nngeo", description="Geometry and topology of neural networks.")
    p.add_argument("--store", help="store root (default $NNGEO_STORE or ~/.nngeo/store)")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a zoo model on a dataset and store the run")
    add_run_arguments(t)
    t.add_argument("--force", action="store_true", help="train again even if the run is stored")
    t.add_argument("--json", action="store_true")
    t.add_argument("--quiet", action="store_true")
    t.set_defaults(func=cmd_train)

    ls = sub.add_parser("list", help="list stored results")
    ls.add_argument("--kind")
    ls.add_argument("--model", dest="model_filter")
    ls.add_argument("--data", dest="data_filter")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_list)

    sh = sub.add_parser("show", help="show one stored result")
    sh.add_argument("run", help="result key or unique prefix")
    sh.add_argument("--rows", type=int, default=20)
    sh.add_argument("--json", action="store_true")
    sh.set_defaults(func=cmd_show)

    ex = sub.add_parser("export", help="export a result table")
    ex.add_argument("run")
    ex.add_argument("--format", choices=["csv", "parquet"], default="csv")
    ex.add_argument("-o", "--output")
    ex.add_argument("--json", action="store_true")
    ex.set_defaults(func=cmd_export)

    for name, fn in (("models", cmd_models), ("datasets", cmd_datasets)):
        q = sub.add_parser(name, help=f"list the {name} in the registry")
        q.add_argument("--json", action="store_true")
        q.set_defaults(func=fn)

    for mod in COMMAND_MODULES:
        try:
            m = importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name and mod.startswith(exc.name):
                continue
            raise
        m.add_commands(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "store", None):
        import os

        os.environ["NNGEO_STORE"] = args.store
    try:
        return int(args.func(args) or 0)
    except NNGeoError as exc:
        print(f"nngeo: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nngeo: interrupted", file=sys.stderr)
        return 130
    except (FileNotFoundError, PermissionError, IsADirectoryError) as exc:
        print(f"nngeo: error: {exc.strerror or exc}: {exc.filename}", file=sys.stderr)
        return 2


def run_main() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run_main()
