"""Job kinds: what a worker can compute. A kind is a plain function of its spec,

    fn(spec, *, store: Store, progress: Progress) -> result key

so it runs the same from a worker, from the CLI and from Python. The kind name is the spec's
``kind`` field (``RunSpec.kind == "train"``, ``AnalysisSpec.kind == "analyse"``). Built-in kinds
(train, analyse, health) live in ``nngeo_core.jobs.kinds``; other capabilities register theirs
with ``register_job_kind`` when imported (``nngeo_core.pruning.jobs`` and
``nngeo_core.reproduce.jobs`` are imported on demand, so the ``prune-sweep`` and ``reproduce``
kinds are found without anyone importing them first). ``NNGEO_JOB_MODULES`` (comma separated
module names) adds modules of your own that register kinds, in workers and submitters.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import NNGeoError
from ..registry import Registry
from ..settings import get_settings
from ..specs import add_spec_loader

# modules imported on first lookup; each registers kinds at import time
KIND_MODULES = ("nngeo_core.jobs.kinds", "nngeo_core.pruning.jobs", "nngeo_core.reproduce.jobs")


@dataclass(frozen=True)
class JobKind:
    name: str
    spec_type: type
    fn: Callable[..., str]
    describe: Callable[[Any], str] | None = None  # spec -> short label for lists
    normalize: Callable[[Any, Any], Any] | None = None  # (spec, store) -> canonical spec
    result_key: Callable[[Any], str] | None = None  # spec -> key its result is stored under
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None  # `nngeo jobs submit KIND` flags
    spec_from_args: Callable[[argparse.Namespace], Any] | None = None

    def key_for(self, spec: Any) -> str:
        return self.result_key(spec) if self.result_key else spec.hash

    def prepare(self, spec: Any, store: Any) -> Any:
        """The spec as it is queued and computed: every declared default filled in (one key for
        one request, see ``nngeo_core.specs``), then the kind's own checks (``normalize``)."""
        # lazy: the defaults read the model, data, strategy and analysis registries (torch), which
        # listing or describing kinds (`nngeo jobs list`) must not pay for
        from ..defaults import complete

        spec = complete(spec)
        return self.normalize(spec, store) if self.normalize is not None else spec

    def label_for(self, spec: Any) -> str:
        if self.describe is not None:
            try:
                return str(self.describe(spec))
            except Exception:  # a label must never stop a submission
                pass
        return f"{self.name} {spec.hash[:8]}"


def _add_setting_modules(registry: Registry[JobKind]) -> None:
    """Before the first load: the modules of your own named in ``NNGEO_JOB_MODULES``."""
    registry.extend_modules(get_settings().job_modules)


JOB_KINDS: Registry[JobKind] = Registry("job kind", modules=KIND_MODULES, loader=_add_setting_modules)


def register_job_kind(
    kind: str,
    spec_type: type,
    fn: Callable[..., str],
    *,
    describe: Callable[[Any], str] | None = None,
    normalize: Callable[[Any, Any], Any] | None = None,
    result_key: Callable[[Any], str] | None = None,
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
    spec_from_args: Callable[[argparse.Namespace], Any] | None = None,
) -> Callable[..., str]:
    """Register ``fn(spec, *, store, progress) -> result key`` for specs of ``spec_type`` whose
    ``kind`` field is ``kind``. The result key defaults to ``spec.hash``: a submission whose key is
    already in the store is served from there without running. ``add_arguments`` and
    ``spec_from_args`` give the kind a `nngeo jobs submit KIND` command line. Returns ``fn``."""
    JOB_KINDS.add(kind, JobKind(kind, spec_type, fn, describe, normalize, result_key, add_arguments, spec_from_args))
    return fn


def load_kind_modules() -> None:
    """Import the built-in kind modules and those named in ``NNGEO_JOB_MODULES`` (once). A module
    that fails to import is a one-line error, never a silently shorter list of kinds."""
    JOB_KINDS.load()


# a stored spec of a type defined in a kind module (a plugin's) rebuilds in a fresh process
add_spec_loader(load_kind_modules)


def get_job_kind(kind: str) -> JobKind:
    return JOB_KINDS.get(kind)


def job_kinds() -> list[str]:
    return sorted(JOB_KINDS.names())


def kind_for_spec(spec: Any) -> JobKind:
    """The registered kind of a spec (its ``kind`` field), checking the spec's type."""
    name = getattr(spec, "kind", None)
    if not isinstance(name, str):
        raise NNGeoError(f"a {type(spec).__name__} is not a job spec (it has no 'kind' field)")
    kind = get_job_kind(name)
    if not isinstance(spec, kind.spec_type):
        raise NNGeoError(f"job kind {name!r} takes a {kind.spec_type.__name__}, got a {type(spec).__name__}")
    return kind
