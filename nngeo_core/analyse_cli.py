"""`nngeo analyse RUN --method M`: run an analysis of a stored model here and now (no worker),
with a progress bar, and store its table; `nngeo analyses` lists the methods. The same flags
queue it instead: `nngeo jobs submit analyse RUN --method M`. ``--shards N`` splits a curvature
analysis into N shards (``nngeo_core.jobs.shards``), here or, with ``--submit``, for workers."""

from __future__ import annotations

import argparse

from . import catalogue
from .cli_args import parse_params, print_json, print_table, progress_for
from .errors import NNGeoError
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
    if a.submit and a.shards is None:
        raise NNGeoError("--submit queues shards: give --shards N (`nngeo jobs submit analyse` queues one job)")
    if a.shards is not None and a.submit:
        return _submit_shards(a, spec, store)
    progress, bar = progress_for(f"{spec.method} of {spec.run[:8]}", a.json or a.quiet)
    try:
        if a.shards is not None:
            from .jobs.shards import run_sharded  # lazy: only sharded runs need it

            key = run_sharded(spec, a.shards, store=store, progress=progress)
        else:
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


def _submit_shards(a, spec, store) -> int:
    """`nngeo analyse ... --shards N --submit`: queue the shards for workers and say where the
    merged table will be."""
    from .jobs.shards import submit_sharded  # lazy: only sharded submissions need it

    job = submit_sharded(spec, a.shards, store=store)
    if a.json:
        print_json(
            {"result": job.key, "done": job.done, "groups": list(job.groups), "jobs": [i.to_dict() for i in job.jobs]}
        )
        return 0
    for info, layers in zip(job.jobs, job.groups or ("",), strict=False):
        state = "found in store" if info.cached else info.state
        print(f"{state}: job {info.id}  {info.label}" + (f"  layers {layers}" if layers else ""))
    word = "stored" if job.done else "merged when the last shard finishes"
    print(f"{word}: analysis {job.key}  {spec.method} of run {spec.run}")
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
    p.add_argument(
        "--shards",
        type=int,
        metavar="N",
        help="curvature analyses: split the layers into N shards balanced by edge count, each stored "
        "as it finishes and merged into the table (and key) of the unsharded analysis; stored shards "
        "are reused, so an interrupted run resumes",
    )
    p.add_argument(
        "--submit",
        action="store_true",
        help="with --shards: queue the shards as jobs for workers (`nngeo worker`, several GPUs or "
        "machines) instead of computing them here; the last shard to finish merges",
    )
    p.add_argument("--rows", type=int, default=10, help="table rows to print")
    p.add_argument("--json", action="store_true")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_analyse)

    q = sub.add_parser("analyses", help="list the analysis methods")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_analyses)
