"""The ``reproduce`` job kind: one claim at one size with N seeds, run in a worker through
``report.reproduce`` and stored as the same ``reproduction`` result `nngeo reproduce` stores, under
the same key (``report.spec_for``), so a report made by either reopens in the other.

``ReproduceJobSpec`` is what is queued (claim, size, seeds; 0 seeds = the claim's own number). At
submission it is checked and made canonical: an unknown claim or size, a bad number of seeds or a
dataset the size needs that is missing is one line and nothing is queued; a number of seeds equal
to the claim's default (or any number for a claim that takes no seed) becomes 0, so one request is
one job and one key. A submission whose report is stored is served from the store without running.

The job registry imports this module on demand (``jobs.registry.KIND_MODULES``); it imports nothing
heavy: the report (pandas, plotly) and the claims (torch) load when a job runs.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import NNGeoError
from ..jobs.registry import register_job_kind
from ..progress import Progress
from ..specs import SpecBase, register_spec
from .base import SIZES, ReproduceSpec
from .registry import CLAIMS

if TYPE_CHECKING:
    from ..store import Store

KIND = "reproduce"


@register_spec
@dataclass(frozen=True, eq=True)
class ReproduceJobSpec(SpecBase):
    """A queued reproduction: a claim by name, a size and a number of seeds (0 = the claim's own)."""

    claim: str = ""
    size: str = "default"
    seeds: int = 0
    kind: str = KIND


def report_spec(spec: ReproduceJobSpec) -> ReproduceSpec:
    """The spec the report is stored under: the one `nngeo reproduce` keys it by (``spec_for``)."""
    if not spec.claim:
        raise NNGeoError("a reproduction needs a claim (`nngeo reproduce --list` lists them)")
    entry = CLAIMS.get(spec.claim)  # the registry's one-line error for an unknown name
    entry.size(spec.size)
    n = len(entry.seed_list(spec.seeds or None))  # a bad count is the claim's one-line error
    return ReproduceSpec(
        claim=spec.claim, size=spec.size, seeds=0 if n == entry.default_seeds or not entry.seeded else n
    )


def job_spec(claim: str, size: str = "default", seeds: int | None = None) -> ReproduceJobSpec:
    """The canonical job of a request (checked as a submission is; no dataset is loaded)."""
    canonical = report_spec(ReproduceJobSpec(claim=claim, size=size, seeds=seeds or 0))
    return ReproduceJobSpec(claim=canonical.claim, size=canonical.size, seeds=canonical.seeds)


def report_key(spec: ReproduceJobSpec) -> str:
    """The store key of the request's report (the CLI's key for the same claim, size and seeds)."""
    return report_spec(spec).hash


def size_problem(claim: str, size: str) -> str | None:
    """Why ``claim`` cannot run at ``size`` here (a dataset it needs is missing: the claim's one
    line), or None when it can."""
    try:
        CLAIMS.get(claim).check(size)
    except NNGeoError as exc:
        return str(exc)
    return None


def normalize(spec: ReproduceJobSpec, store: Store) -> ReproduceJobSpec:
    """At submission: the canonical spec, and the datasets the size needs present (one line if not)."""
    canonical = job_spec(spec.claim, spec.size, spec.seeds)
    if not store.exists(report_key(canonical)):
        CLAIMS.get(canonical.claim).check(canonical.size)
    return canonical


def reproduce_job(spec: ReproduceJobSpec, *, store: Store, progress: Progress) -> str:
    """Run the claim (or find its stored report) and store the report; returns its key."""
    from .report import reproduce  # lazy: pandas and plotly (~1 s); listing job kinds must not pay for it

    spec = job_spec(spec.claim, spec.size, spec.seeds)
    progress.update(0.0, f"reproducing {spec.claim} ({spec.size})", force=True)
    _, key, _ = reproduce(spec.claim, spec.size, spec.seeds or None, store=store, progress=progress)
    return key


def describe(spec: ReproduceJobSpec) -> str:
    seeds = f", {spec.seeds} seeds" if spec.seeds else ""
    return f"reproduce {spec.claim} ({spec.size}{seeds})"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("claim", help="a claim name (`nngeo reproduce --list`)")
    p.add_argument("--size", choices=SIZES, default="default", help="test (seconds), default (<=10 min) or paper")
    p.add_argument("--seeds", type=int, default=None, help="number of seeds (default: the claim's own)")


def spec_from_args(a: argparse.Namespace) -> ReproduceJobSpec:
    return job_spec(a.claim, a.size, a.seeds)


register_job_kind(
    KIND,
    ReproduceJobSpec,
    reproduce_job,
    describe=describe,
    normalize=normalize,
    result_key=report_key,
    add_arguments=add_arguments,
    spec_from_args=spec_from_args,
)
