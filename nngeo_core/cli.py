"""The ``nngeo`` command line (also ``python -m nngeo_core``).

Errors print one line (``nngeo: error: ...``) and exit with status 2, mistakes in the arguments
too; ``--json`` prints strict JSON on stdout only, progress bars go to stderr. The listings
(`models`, `datasets`, `analyses`, `strategies`) and the check of the names a command is given read
``catalogue``, so they answer without importing torch.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys

from . import catalogue, user_index
from .cli_args import (
    OneLineParser,
    ProgressBar,
    add_run_arguments,
    check_run_names,
    parse_params,
    parse_value,
    print_json,
    print_table,
    progress_for,
    run_spec_from_args,
)
from .errors import NNGeoError
from .export_cli import add_export_arguments, cmd_export_model, is_model_format

__all__ = [
    "OneLineParser",
    "ProgressBar",
    "add_run_arguments",
    "build_parser",
    "main",
    "parse_params",
    "parse_value",
    "print_json",
    "print_table",
    "progress_for",
    "run_main",
    "run_spec_from_args",
]

# modules that add sub-commands: each defines add_commands(subparsers); imported by name so that
# this list is the one place that says which exist
COMMAND_MODULES = [
    "nngeo_core.jobs.cli",
    "nngeo_core.pruning.cli",
    "nngeo_core.analyse_cli",
    "nngeo_core.uploads",
    "nngeo_core.data_cli",
    "nngeo_core.reproduce.cli",
]


# -- commands ----------------------------------------------------------------------------------
def cmd_train(a) -> int:
    check_run_names(a)  # a misspelt name is told at once, not after torch has loaded
    # lazy: runs loads torch and the store (1.8 s CPU, measured); `nngeo --help` must not pay for them
    from .runs import train_run
    from .store import Store, default_store

    spec = run_spec_from_args(a)
    store = Store(a.store) if a.store else default_store()
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
    # lazy: the store loads pandas and pyarrow (~0.5 s); `nngeo --help` must not pay for them
    from .store import Store, default_store

    store = Store(a.store) if a.store else default_store()
    df = store.catalog(kind=a.kind, model=a.model_filter, data=a.data_filter)
    cols = ["key", "kind", "model", "data", "method", "strategy", "sparsity", "seed", "metric", "label", "created"]
    if a.json:
        print_json(df[cols].assign(created=df["created"].astype(float)).to_dict("records"))
    else:
        shown = df[cols].copy()
        import pandas as pd  # lazy: ~0.4 s; `nngeo --help` must not pay for it

        shown["created"] = pd.to_datetime(shown["created"], unit="s").dt.strftime("%Y-%m-%d %H:%M")
        print_table(shown.fillna(""))
    return 0


def cmd_show(a) -> int:
    # lazy: the store loads pandas and pyarrow (~0.5 s); `nngeo --help` must not pay for them
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
    if is_model_format(a):
        return cmd_export_model(a)
    # lazy: the store loads pandas and pyarrow (~0.5 s); `nngeo --help` must not pay for them
    from .store import Store, default_store

    store = Store(a.store) if a.store else default_store()
    dest = store.export(a.run, a.format, a.output)
    if a.json:
        print_json({"path": dest})
    else:
        print(dest)
    return 0


def cmd_models(a) -> int:
    rows = catalogue.rows(catalogue.MODELS)
    if a.json:
        print_json(rows)
        return 0
    for r in rows:
        print(f"{r['name']:12s} {r['description']}")
    return 0


def cmd_datasets(a) -> int:
    rows = catalogue.rows(catalogue.DATASETS) + user_index.catalogue_rows()
    if a.json:
        print_json(rows)
        return 0
    for r in rows:
        print(f"{r['name']:14s} {r['description']}")
    print(f"{'':14s} derived from any of them: {', '.join(catalogue.DERIVED_FORMS)}")
    return 0


def cmd_store_migrate(a) -> int:
    # lazy: the defaults load every registry (torch, 2.3 s CPU, measured); `nngeo --help` must not pay for them
    from .defaults import complete
    from .store import default_store
    from .store.migrate import migrate

    store = default_store()
    done = migrate(store, complete, dry_run=a.dry_run)
    if a.json:
        print_json({"renamed": done.renamed, "unchanged": done.unchanged, "kept": done.kept, "dry_run": a.dry_run})
    else:
        for old, new in done.renamed.items():
            print(f"{old} -> {new}")
        print(("would be: " if a.dry_run else "") + done.summary())
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="nngeo", description="Geometry and topology of neural networks.")
    p.add_argument("--store", help="store root (default $NNGEO_STORE, else $NNGEO_HOME/store)")
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

    ex = sub.add_parser("export", help="export a result table, or a model / a pruning-sweep level")
    add_export_arguments(ex, table_formats=("csv", "parquet"))
    ex.set_defaults(func=cmd_export)

    for name, fn in (("models", cmd_models), ("datasets", cmd_datasets)):
        q = sub.add_parser(name, help=f"list the {name} in the registry")
        q.add_argument("--json", action="store_true")
        q.set_defaults(func=fn)

    st = sub.add_parser("store", help="look after the result store")
    st_sub = st.add_subparsers(dest="store_command", required=True, metavar="COMMAND")
    mig = st_sub.add_parser(
        "migrate", help="re-key results written by an older nngeo to the current key rule (nothing is lost)"
    )
    mig.add_argument("--dry-run", action="store_true", help="say what would change, change nothing")
    mig.add_argument("--json", action="store_true")
    mig.set_defaults(func=cmd_store_migrate)

    for mod in COMMAND_MODULES:
        importlib.import_module(mod).add_commands(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "store", None):
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
