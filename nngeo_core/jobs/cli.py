"""`nngeo worker` and `nngeo jobs submit|status|list|cancel|logs|workers|clean` for headless use.

`nngeo jobs submit KIND ...` takes the same flags as the direct command (`nngeo jobs submit train
--model mlp --data xor` queues what `nngeo train --model mlp --data xor` computes); any kind also
accepts ``--spec-json '{...}'`` (or ``@file.json``) with a spec as `to_dict` writes it. The kind's
flags are parsed in a second stage, so kinds registered by plugins get their own flags without
this module importing them on every `nngeo` call. `list` and `status` first fail (or re-queue)
running jobs whose worker is dead, so they tell the truth with no worker or dashboard running.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
import time
from typing import Any

from ..cli_args import OneLineParser, ProgressBar, print_json, print_table
from ..errors import NNGeoError
from ..settings import get_settings
from ..specs import spec_from_dict
from .backend import JobBackend, JobInfo
from .embedded import worker_status
from .liveness import recover_dead_jobs
from .queues import get_backend
from .registry import JobKind, get_job_kind

SUBMIT_KINDS_HELP = "train, analyse, health, or a kind registered by a plugin (e.g. prune-sweep)"


# -- worker ------------------------------------------------------------------------------------
def cmd_worker(a: argparse.Namespace) -> int:
    # lazy: the worker imports huey's consumer (0.4 s), which `nngeo --help` and the other commands must not pay for
    from .supervisor import run_worker_command

    if a.workers < 1:
        raise NNGeoError("--workers must be at least 1")
    code = run_worker_command(
        workers=a.workers, gpus=a.gpus, requeue_dead=a.requeue_dead, parent_pid=a.parent_pid, verbose=a.verbose
    )
    # everything is recorded by now; skip the interpreter's slow teardown of torch (seconds)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


# -- submit ------------------------------------------------------------------------------------
def _submit_parser(kind: JobKind) -> argparse.ArgumentParser:
    p = OneLineParser(prog=f"nngeo jobs submit {kind.name}", description=f"Queue a {kind.name} job for a worker.")
    g = p.add_argument_group("job")
    g.add_argument("--json", action="store_true", help="print the job as JSON")
    g.add_argument("--wait", action="store_true", help="wait until it finishes, with a progress bar")
    g.add_argument("--timeout", type=float, help="with --wait: give up waiting after this many seconds")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    g.add_argument("--spec-json", metavar="JSON|@FILE", help="the spec as JSON (as nngeo stores it), instead of flags")
    return p


def _spec_from_json(text: str) -> Any:
    if text.startswith("@"):
        try:
            with open(text[1:]) as fh:
                text = fh.read()
        except OSError as exc:
            raise NNGeoError(f"cannot read spec file {text[1:]}: {exc.strerror}") from None
    try:
        return spec_from_dict(text)
    except ValueError as exc:
        if isinstance(exc, NNGeoError):
            raise
        raise NNGeoError(f"--spec-json is not valid JSON: {exc}") from None
    except TypeError as exc:
        raise NNGeoError(f"--spec-json does not describe a spec: {exc}") from None


def cmd_submit(a: argparse.Namespace) -> int:
    kind = get_job_kind(a.kind)
    rest = list(a.args)
    generic = _submit_parser(kind)
    if "--spec-json" in rest or any(x.startswith("--spec-json=") for x in rest):
        opts = generic.parse_args(rest)
        spec = _spec_from_json(opts.spec_json)
    else:
        if kind.add_arguments is None or kind.spec_from_args is None:
            if any(x in ("-h", "--help") for x in rest):
                generic.parse_args(rest)
            raise NNGeoError(f"job kind {kind.name!r} has no command-line flags; give --spec-json")
        full = _submit_parser(kind)
        kind.add_arguments(full)
        opts = full.parse_args(rest)
        spec = kind.spec_from_args(opts)
    backend = get_backend()
    info = backend.submit(spec)
    if opts.wait and not info.finished:
        info = _wait_with_bar(backend, info.id, quiet=opts.quiet or opts.json, timeout=opts.timeout)
    if opts.json:
        print_json(info.to_dict())
    else:
        print(_one_line_summary(info))
    return _exit_code(info) if opts.wait else 0


def _wait_with_bar(backend: JobBackend, job_id: str, *, quiet: bool, timeout: float | None) -> JobInfo:
    bar = ProgressBar(f"job {job_id}", enabled=not quiet)
    try:
        return backend.wait(
            job_id, timeout=timeout, poll=0.25, on_update=lambda i: bar(i.progress, i.phase or i.state, i.metrics)
        )
    finally:
        bar.close()


def _exit_code(info: JobInfo) -> int:
    return 0 if info.state == "done" else (3 if info.active else 1)


def _one_line_summary(info: JobInfo) -> str:
    if info.cached:
        return f"found in store: result {info.result}  (job {info.id}, {info.label})"
    if info.state == "done":
        return f"done: job {info.id} -> result {info.result}  ({info.label})"
    if info.state == "failed":
        return f"failed: job {info.id}: {info.error}"
    if info.existing:
        return f"already {info.state}: job {info.id}  ({info.label})"
    return f"{info.state}: job {info.id}  ({info.label})"


# -- status, list, cancel, logs, workers --------------------------------------------------------
def _clock(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else ""


def _reconciled_backend() -> JobBackend:
    """The backend, once running jobs of dead workers are failed (or re-queued): the same
    conditional transitions a worker or the dashboard's supervisor makes, here because neither
    may be running to make them."""
    backend = get_backend()
    if backend.spawns_workers:
        recover_dead_jobs(backend.table, me=None, requeue=get_settings().requeue_dead, enqueue=backend.enqueue)
    return backend


def cmd_status(a: argparse.Namespace) -> int:
    backend = _reconciled_backend()
    info = backend.status(a.id)
    if a.wait and not info.finished:
        info = _wait_with_bar(backend, info.id, quiet=a.json, timeout=a.timeout)
    if a.json:
        print_json(info.to_dict())
        return 0
    shown = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in info.metrics.items())
    print(f"job {info.id}  {info.label}")
    print(f"state {info.state}  {100 * info.progress:.0f}%  {info.phase}  {shown}".rstrip())
    if info.worker:
        print(f"worker {info.worker}  device {info.device}  attempts {info.attempts}")
    times = [f"submitted {_clock(info.submitted)}"]
    if info.started:
        times.append(f"started {_clock(info.started)}")
    if info.ended:
        times.append(f"ended {_clock(info.ended)}")
    if info.elapsed is not None:
        times.append(f"elapsed {info.elapsed:.1f} s")
    print("  ".join(times))
    if info.result:
        print(f"result {info.result}{'  (found in store)' if info.cached else ''}")
    if info.error:
        print(f"error: {info.error}")
    if info.cancel_requested and info.active:
        print("cancel requested: it stops at its next progress check")
    return 0


def cmd_list(a: argparse.Namespace) -> int:
    import pandas as pd  # lazy: 1.4 s to import, for this one table (`nngeo --help` imports this module)

    infos = _reconciled_backend().list(state=a.state, kind=a.kind, limit=a.limit)
    if a.json:
        print_json([i.to_dict() for i in infos])
        return 0
    rows = [
        {
            "id": i.id,
            "kind": i.kind,
            "state": i.state,
            "done": f"{100 * i.progress:.0f}%",
            "phase": i.phase,
            "label": i.label,
            "submitted": _clock(i.submitted),
            "elapsed": "" if i.elapsed is None else f"{i.elapsed:.1f}s",
            "result/error": i.result or i.error or "",
        }
        for i in infos
    ]
    print_table(pd.DataFrame(rows))
    return 0


def cmd_cancel(a: argparse.Namespace) -> int:
    backend = get_backend()
    info = backend.cancel(a.id)
    if a.wait and info.active:
        info = backend.wait(info.id, timeout=a.timeout)
    if a.json:
        print_json(info.to_dict())
    elif info.state == "cancelled":
        print(f"cancelled: job {info.id}")
    elif info.active:
        print(f"cancel requested: job {info.id} is {info.state}; it stops at its next progress check")
    else:
        print(f"job {info.id} had already finished ({info.state}); nothing to cancel")
    return 0


def cmd_logs(a: argparse.Namespace) -> int:
    backend = get_backend()
    job_id = backend.table.resolve(a.id)
    seen = 0
    while True:
        lines = backend.logs(job_id, seen)
        seen += len(lines)
        if a.json:
            print_json(lines)
            return 0
        for line in lines:
            print(line)
        sys.stdout.flush()
        if not a.follow or backend.status(job_id).finished:
            if a.follow:  # lines written just before the final state
                for line in backend.logs(job_id, seen):
                    print(line)
            return 0
        time.sleep(0.5)


def cmd_workers(a: argparse.Namespace) -> int:
    st = worker_status()
    if a.json:
        print_json(st)
        return 0
    print(f"queue {st['queue']} ({st['backend']}): {st['queued']} queued, {st['running']} running")
    if not st["workers"]:
        print("no live worker: start one with `nngeo worker`")
    for w in st["workers"]:
        print(
            f"worker {w['id']}  {w.get('state', '')}  device {w.get('device')}  job {w.get('job') or '-'}  "
            f"heartbeat {w.get('heartbeat_age')} s ago"
        )
    return 0


def parse_days(text: str) -> float:
    """``--older-than``: a number of days, 0 or more."""
    try:
        days = float(text)
    except ValueError:
        raise NNGeoError(f"--older-than takes a number of days, got {text!r}") from None
    if not math.isfinite(days) or days < 0:
        raise NNGeoError(f"--older-than must be 0 or more days, got {text!r}")
    return days


def cmd_clean(a: argparse.Namespace) -> int:
    days = parse_days(a.older_than)
    deleted = get_backend().clean(days)
    if a.json:
        print_json({"deleted": deleted, "older_than_days": days})
    else:
        print(f"deleted {deleted} finished job{'s' if deleted != 1 else ''} older than {days:g} days")
    return 0


def add_commands(sub: Any) -> None:
    w = sub.add_parser(
        "worker",
        help="run a background worker for the job queue",
        description="Consume jobs from the queue ($NNGEO_QUEUE): one consumer per visible GPU "
        "(each with its own CUDA_VISIBLE_DEVICES), or one CPU consumer.",
    )
    w.add_argument("--workers", type=int, default=1, help="jobs run at once per consumer (threads; default 1)")
    w.add_argument("--gpus", default="auto", help="auto (one consumer per visible GPU), all, none, or ids e.g. 0,1")
    w.add_argument(
        "--requeue-dead",
        action="store_true",
        default=None,
        help="re-queue (once) jobs whose worker died, instead of failing them (default: $NNGEO_REQUEUE_DEAD)",
    )
    w.add_argument("--parent-pid", type=int, help="stop when this process exits (the dashboard's embedded worker)")
    w.add_argument("--verbose", action="store_true", help="log every task Huey runs")
    w.set_defaults(func=cmd_worker)

    j = sub.add_parser("jobs", help="submit, follow and cancel background jobs")
    js = j.add_subparsers(dest="jobs_command", required=True, metavar="COMMAND")

    s = js.add_parser(
        "submit",
        help="queue a job (same flags as the direct command)",
        description=f"Queue a job. KIND: {SUBMIT_KINDS_HELP}. `nngeo jobs submit KIND --help` lists its flags.",
    )
    s.add_argument("kind", metavar="KIND", help=SUBMIT_KINDS_HELP)
    s.add_argument("args", nargs=argparse.REMAINDER, help="the kind's flags, then --json/--wait")
    s.set_defaults(func=cmd_submit)

    st = js.add_parser("status", help="show one job")
    st.add_argument("id", help="job id or unique prefix")
    st.add_argument("--json", action="store_true")
    st.add_argument("--wait", action="store_true", help="wait until it finishes")
    st.add_argument("--timeout", type=float)
    st.set_defaults(func=cmd_status)

    ls = js.add_parser("list", help="list jobs, newest first")
    ls.add_argument("--state", choices=["queued", "running", "done", "failed", "cancelled"])
    ls.add_argument("--kind")
    ls.add_argument("--limit", type=int, default=50)
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_list)

    c = js.add_parser("cancel", help="cancel a queued or running job")
    c.add_argument("id")
    c.add_argument("--wait", action="store_true", help="wait until a running job has stopped")
    c.add_argument("--timeout", type=float, default=60.0)
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_cancel)

    lg = js.add_parser("logs", help="print a job's log lines")
    lg.add_argument("id")
    lg.add_argument("--follow", "-f", action="store_true", help="keep printing until the job finishes")
    lg.add_argument("--json", action="store_true")
    lg.set_defaults(func=cmd_logs)

    wk = js.add_parser("workers", help="live workers and queue depth")
    wk.add_argument("--json", action="store_true")
    wk.set_defaults(func=cmd_workers)

    cl = js.add_parser(
        "clean",
        help="delete finished jobs older than some days",
        description="Delete done, failed and cancelled jobs (and their logs) that ended more than DAYS days "
        "ago; queued and running jobs are never touched. The dashboard does this itself for jobs older "
        "than $NNGEO_JOBS_KEEP_DAYS.",
    )
    # a string parsed by parse_days: its message says what a valid age is (days ≥ 0, finite)
    cl.add_argument("--older-than", metavar="DAYS", required=True, help="age in days (0: every finished job)")
    cl.add_argument("--json", action="store_true", help="print {deleted, older_than_days} as JSON")
    cl.set_defaults(func=cmd_clean)
