"""Registers the "prune-sweep" job kind with the worker's registry when imported (the registry
imports this module on demand)."""

from __future__ import annotations

from ..errors import NNGeoError
from ..jobs.registry import register_job_kind
from ..params import changed_text
from .cli import add_sweep_arguments, sweep_specs_from_args
from .specs import SweepSpec, strategy_label
from .sweep import run_sweep


def describe(spec: SweepSpec) -> str:
    """The job's label, with the strategy parameters that differ from their defaults (so two
    sweeps of one strategy can be told apart in the job list)."""
    source = f" (stored model {spec.source[:12]})" if spec.source else ""
    base = (
        f"prune {strategy_label(spec.strategy, spec.params)} {spec.run.model.name}/{spec.run.data.name}{source} "
        f"{len(spec.sparsities)} levels x {len(spec.seeds)} seeds"
        + (f" layers {','.join(spec.layers)}" if spec.layers else "")
    )
    return f"{base} {changed_text(spec.params, spec.param_defaults)}".rstrip()


def add_arguments(p) -> None:
    add_sweep_arguments(p, many=False)


def spec_from_args(a) -> SweepSpec:
    specs = sweep_specs_from_args(a)
    if len(specs) != 1:
        raise NNGeoError("a prune-sweep job takes one --strategy; submit one job per strategy")
    return specs[0]


register_job_kind(
    "prune-sweep", SweepSpec, run_sweep, describe=describe, add_arguments=add_arguments, spec_from_args=spec_from_args
)
