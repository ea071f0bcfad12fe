"""Built-in job kinds: ``train`` (a RunSpec), ``analyse`` (an AnalysisSpec of a stored model) and
``health`` (a worker health check that can also sleep, for tests and queue benchmarks).

Each is a plain function ``fn(spec, *, store, progress) -> result key`` that writes its result to
the store only at the end, so a cancelled or killed job leaves nothing behind. Heavy imports
(torch, pandas, the runs and datasets) happen inside the functions: importing this module stays
cheap, which keeps `nngeo jobs ...` commands fast.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..analyse_cli import add_analysis_arguments, analysis_spec_from_args
from ..analyses import analysis_attrs, get_analysis, normalize_params
from ..cli_args import add_run_arguments, run_spec_from_args
from ..errors import NNGeoError
from ..params import changed_text
from ..progress import Progress
from ..settings import pick_device
from ..specs import AnalysisSpec, RunSpec, SpecBase, register_spec
from . import shards  # noqa: F401  (registers the analyse-shard kind: sharded curvature)
from .registry import register_job_kind

if TYPE_CHECKING:
    from ..store import Store


# -- train -------------------------------------------------------------------------------------
def train_job(spec: RunSpec, *, store: Store, progress: Progress) -> str:
    from ..runs import train_run  # lazy: torch (seconds); listing or submitting kinds must not pay for it

    return train_run(spec, store=store, progress=progress)


def describe_run(spec: RunSpec) -> str:
    """The job's label, with the model and data parameters that differ from their defaults."""
    base = f"train {spec.model.name} on {spec.data.name} (seed {spec.train.seed}, {spec.train.epochs} epochs)"
    changed = (changed_text(s.params, s.param_defaults) for s in (spec.model, spec.data))
    return " ".join([base, *(c for c in changed if c)])


def _add_train_arguments(p: argparse.ArgumentParser) -> None:
    add_run_arguments(p)


def _train_spec_from_args(a: argparse.Namespace) -> RunSpec:
    return run_spec_from_args(a)


# -- analyse -----------------------------------------------------------------------------------


def normalize_analysis(spec: AnalysisSpec, store: Store) -> AnalysisSpec:
    """Full run key (a prefix names the same analysis), a known method and the method's canonical
    params (``normalize`` of ``register_analysis``), checked at submission."""
    if not spec.run:
        raise NNGeoError("an analysis needs a run: give the key of a stored model (see `nngeo list`)")
    entry = store.model_entry(spec.run)
    if spec.epoch is not None and int(spec.epoch) < 0:
        raise NNGeoError(f"epoch must be >= 0, got {spec.epoch}")
    analysis = get_analysis(spec.method)
    params = normalize_params(spec.method, entry["key"], dict(spec.params), store)
    defaults = analysis.defaults
    if entry["key"] == spec.run and params == dict(spec.params) and defaults == dict(spec.param_defaults):
        return spec
    return spec.replace(run=entry["key"], params=params, param_defaults=defaults)


def analyse_job(spec: AnalysisSpec, *, store: Store, progress: Progress) -> str:
    """Load the run's model (or its epoch snapshot), its dataset if the method needs data, run the
    analysis and store its table under the hash of ``spec``."""
    # lazy: pandas and torch (seconds); listing or submitting kinds must not pay for them
    import pandas as pd

    from ..runs import load_run

    spec = normalize_analysis(spec, store)
    if store.exists(spec.hash):
        return spec.hash
    fn = get_analysis(spec.method)
    progress.update(0.0, "loading model", force=True)
    ckpt = load_run(spec.run, store=store, epoch=spec.epoch)
    model = ckpt.model.eval()
    dataset = None
    if fn.needs_data:
        if ckpt.data_spec is None:
            raise NNGeoError(
                f"analysis {spec.method!r} needs data, but model {spec.run} records no dataset "
                "(an upload?); train it with nngeo or choose a method without data"
            )
        from ..data import load as load_data  # lazy: torchvision, only for methods that need data

        progress.update(0.0, f"loading {ckpt.data_spec.name}", force=True)
        dataset = load_data(ckpt.data_spec)
    progress.check()
    extra = {"store": store} if fn.needs_store else {}
    table = fn(model, dataset, dict(spec.params), progress, **extra)
    if not isinstance(table, pd.DataFrame):
        raise NNGeoError(f"analysis {spec.method!r} returned a {type(table).__name__}, not a pandas DataFrame")
    progress.check()  # a cancel during the last chunk still writes nothing
    return store.put("analyse", spec, table, attrs=analysis_attrs(spec, store))


def describe_analysis(spec: AnalysisSpec) -> str:
    """The job's label, with the analysis parameters that differ from their defaults."""
    where = f" epoch {spec.epoch}" if spec.epoch is not None else ""
    return f"analyse {spec.method} of {spec.run[:8]}{where} {changed_text(spec.params, spec.param_defaults)}".rstrip()


def _add_analyse_arguments(p: argparse.ArgumentParser) -> None:
    add_analysis_arguments(p)


def _analyse_spec_from_args(a: argparse.Namespace) -> AnalysisSpec:
    return analysis_spec_from_args(a)


# -- health ------------------------------------------------------------------------------------
@register_spec
@dataclass(frozen=True, eq=True)
class HealthSpec(SpecBase):
    """A worker health check: waits ``seconds`` (checking for cancel), does a small computation on
    the worker's device and stores who ran it. ``tag`` makes otherwise equal checks distinct."""

    seconds: float = 0.0
    tag: str = ""
    kind: str = "health"


def health_job(spec: HealthSpec, *, store: Store, progress: Progress) -> str:
    import pandas as pd  # lazy: 1.4 s; listing or submitting kinds must not pay for it

    seconds = float(spec.seconds)
    if not (0 <= seconds <= 86400):
        raise NNGeoError(f"health check seconds must lie in 0..86400, got {spec.seconds}")
    start = time.monotonic()
    while (left := seconds - (time.monotonic() - start)) > 0:
        progress.check()
        progress.update((seconds - left) / seconds, "waiting")
        time.sleep(min(0.05, left))
    progress.check()
    device = pick_device("auto")
    import torch  # lazy: seconds to import; listing or submitting kinds must not pay for it

    # the device really computes: the sum of a ones matmul is n**3
    n = 64
    ones = torch.ones(n, n, device=device)
    total = float((ones @ ones).sum())
    if total != float(n**3):
        raise NNGeoError(f"device {device} computed {total} for a {n}x{n} ones matmul, expected {n**3}")
    row = dict(
        host=socket.gethostname(),
        pid=os.getpid(),
        device=device,
        python=sys.version.split()[0],
        torch=torch.__version__,
        waited=round(time.monotonic() - start, 4),
        cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES", ""),
        torch_threads=torch.get_num_threads(),  # as the job's thread sees it (nngeo_core.threads)
    )
    return store.put(
        "health", spec, pd.DataFrame([row]), attrs=dict(method="health", label=f"health check {spec.tag}".strip())
    )


def _add_health_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seconds", type=float, default=0.0, help="wait this long first (cancellable)")
    p.add_argument("--tag", help="label; default: the current time, so every check really runs")


def _health_spec_from_args(a: argparse.Namespace) -> HealthSpec:
    return HealthSpec(seconds=a.seconds, tag=a.tag if a.tag is not None else f"{time.time():.6f}")


register_job_kind(
    "train",
    RunSpec,
    train_job,
    describe=describe_run,
    add_arguments=_add_train_arguments,
    spec_from_args=_train_spec_from_args,
)
register_job_kind(
    "analyse",
    AnalysisSpec,
    analyse_job,
    describe=describe_analysis,
    normalize=normalize_analysis,
    add_arguments=_add_analyse_arguments,
    spec_from_args=_analyse_spec_from_args,
)
register_job_kind(
    "health",
    HealthSpec,
    health_job,
    describe=lambda s: f"health check {s.tag}".strip(),
    add_arguments=_add_health_arguments,
    spec_from_args=_health_spec_from_args,
)
