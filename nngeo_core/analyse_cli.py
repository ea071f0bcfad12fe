"""`nngeo analyse RUN --method M`: run an analysis of a stored model here and now (no worker),
with a progress bar, and store its table; `nngeo analyses` lists the methods. The same flags
queue it instead: `nngeo jobs submit analyse RUN --method M`."""

from __future__ import annotations

import argparse

from . import catalogue
from .cli_args import parse_params, print_json, print_table, progress_for
from .jobs import get_job_kind, run_job
from .specs import AnalysisSpec


def add_analysis_arguments(p: argparse.ArgumentParser) -> None:
    """Flags that define an analysis (shared by `analyse` and `jobs submit analyse`)."""
    p.add_argument("run", help="key (or unique prefix) of a stored model: a run, upload or pruned model")
    p.add_argument("--method", required=True, help="analysis method (see `nngeo analyses`)")
    p.add_argument("--param", action="append", metavar="K=V", help="analysis parameter (repeatable)")
    p.add_argument("--epoch", type=int, help="analyse this training snapshot instead of the final model")


def analysis_spec_from_args(a: argparse.Namespace):
    return AnalysisSpec(run=a.run, method=a.method, params=parse_params(a.param), epoch=a.epoch)


def cmd_analyse(a) -> int:
    catalogue.check_analysis(a.method)  # a misspelt method is told before torch loads for the run
    # lazy: the store loads pandas and pyarrow (~0.5 s); `nngeo --help` must not pay for them
    from .store import default_store

    store = default_store()
    kind = get_job_kind("analyse")
    spec = analysis_spec_from_args(a)
    spec = kind.prepare(spec, store)
    cached = store.exists(spec.hash)
    progress, bar = progress_for(f"{spec.method} of {spec.run[:8]}", a.json or a.quiet)
    try:
        key = run_job(spec, progress, store=store)
    finally:
        bar.close()
    table = store.get(key)
    info = {
        "result": key,
        "cached": cached,
        "run": spec.run,
        "method": spec.method,
        "epoch": spec.epoch,
        "params": dict(spec.params),
        "rows": len(table),
        "columns": list(map(str, table.columns)),
        "store": store.root,
    }
    if a.json:
        print_json(info)
    else:
        word = "found in store" if cached else "stored"
        print(f"{word}: analysis {key}  {spec.method} of run {spec.run}  ({len(table)} rows)")
        print_table(table.head(a.rows))
    return 0


def cmd_analyses(a) -> int:
    rows = sorted(catalogue.rows(catalogue.ANALYSES), key=lambda r: r["name"])
    if a.json:
        print_json(rows)
    elif not rows:
        print("(no analyses registered)")
    else:
        for r in rows:
            print(f"{r['name']:24s} {'needs data  ' if r['needs_data'] else '            '}{r['description']}")
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser(
        "analyse",
        help="analyse a stored model now (no worker) and store the table",
        description="Run an analysis of a stored model in this process and store its table. "
        "`nngeo jobs submit analyse ...` queues the same for a worker.",
    )
    add_analysis_arguments(p)
    p.add_argument("--rows", type=int, default=10, help="table rows to print")
    p.add_argument("--json", action="store_true")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_analyse)

    q = sub.add_parser("analyses", help="list the analysis methods")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_analyses)
