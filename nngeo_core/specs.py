"""Frozen dataclasses that define a computation, their canonical JSON form and a stable hash.

The hash of a spec names every artefact (open_lth's idea): the same request is computed once
and found again later. The canonical form is plain JSON with sorted keys and a type tag, so it
is identical across processes, Python runs and machines (no use of Python's salted ``hash``).

Stable keys: the hash covers only the values that differ from their defaults (open_lth's rule).
A dataclass field equal to its declared default is left out, and so is an entry of ``params``
equal to the declared default recorded beside it in ``param_defaults`` (filled in at submission
by ``nngeo_core.defaults.complete``). So adding a defaulted field or parameter changes no
existing key, and ``{}`` and ``{"alpha": 0.5}`` (the default) name one result. The flip side:
never change a default in place (that silently renames what the old default computed); add a
new field instead. Fields whose metadata says ``hash=False`` (e.g. the device) do not change
what is computed in principle and are left out of the hash too.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

from .errors import NNGeoError

SPEC_TYPES: dict[str, type] = {}
HASH_LENGTH = 16


def register_spec(cls: type) -> type:
    """Make a spec class rebuildable from its stored JSON (``spec_from_dict``)."""
    SPEC_TYPES[cls.__name__] = cls
    return cls


def _plain(obj: Any, *, for_hash: bool) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out: dict[str, Any] = {"__type__": type(obj).__name__}
        for f in dataclasses.fields(obj):
            if for_hash and not f.metadata.get("hash", True):
                continue
            value = _plain(getattr(obj, f.name), for_hash=for_hash)
            if for_hash and f.name == "params" and hasattr(obj, "param_defaults"):
                value = _without_defaults(value, _plain(obj.param_defaults, for_hash=True))
            if for_hash and _has_default(f) and value == _plain(_default_of(f), for_hash=True):
                continue
            out[f.name] = value
        return out
    if isinstance(obj, Mapping):
        return {str(k): _plain(v, for_hash=for_hash) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (list, tuple)):
        return [_plain(v, for_hash=for_hash) for v in obj]
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        if not math.isfinite(obj):
            raise NNGeoError(f"spec values must be finite numbers, got {obj!r}")
        # integral floats hash like ints so 1 and 1.0 name the same request
        return int(obj) if obj.is_integer() else obj
    if isinstance(obj, PurePath):
        return str(obj)
    if hasattr(obj, "item") and callable(obj.item):  # numpy / torch scalars
        return _plain(obj.item(), for_hash=for_hash)
    raise NNGeoError(f"cannot put a {type(obj).__name__} into a spec")


def _has_default(f: dataclasses.Field[Any]) -> bool:
    return f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING


def _default_of(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    factory: Callable[[], Any] = f.default_factory  # type: ignore[assignment]  # _has_default: not MISSING
    return factory()


def _without_defaults(params: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """``params`` less the entries equal to their declared default (both already plain)."""
    return {k: v for k, v in params.items() if k not in defaults or defaults[k] != v}


def to_dict(spec: Any) -> dict:
    """The full plain form of a spec (all fields, type-tagged), for storage."""
    return _plain(spec, for_hash=False)


def canonical_json(spec: Any) -> str:
    """The canonical JSON text that the hash is taken of."""
    return json.dumps(
        _plain(spec, for_hash=True), sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    )


def spec_hash(spec: Any) -> str:
    """A stable 16-hex-digit content hash of a spec (sha256 of its canonical JSON)."""
    return hashlib.sha256(canonical_json(spec).encode("ascii")).hexdigest()[:HASH_LENGTH]


def spec_from_dict(d: Any) -> Any:
    """Rebuild a spec from ``to_dict`` output (or its JSON text)."""
    return _rebuild(json.loads(d) if isinstance(d, str) else d)


# Upper layers that define spec types in modules nobody may have imported yet (the job-kind
# registry) add a loader here, so a stored spec of such a type rebuilds in a fresh process;
# specs.py itself imports nothing above it.
SPEC_LOADERS: list[Callable[[], None]] = []


def add_spec_loader(load: Callable[[], None]) -> None:
    if load not in SPEC_LOADERS:
        SPEC_LOADERS.append(load)


def _load_spec_modules() -> None:
    for load in list(SPEC_LOADERS):
        load()


def _rebuild(d: Any) -> Any:
    if isinstance(d, list):
        return tuple(_rebuild(v) for v in d)
    if not isinstance(d, dict):
        return d
    d = dict(d)
    tname = d.pop("__type__", None)
    values = {k: _rebuild(v) for k, v in d.items()}
    if tname is None:
        return values
    cls = SPEC_TYPES.get(tname)
    if cls is None:
        _load_spec_modules()
        cls = SPEC_TYPES.get(tname)
    if cls is None:
        raise NNGeoError(f"unknown spec type {tname!r} in stored JSON")
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in names})


class SpecBase:
    """Mixin: hash, canonical JSON and dict helpers for every spec."""

    def __post_init__(self) -> None:
        # freeze mutable containers so equal specs compare and hash equal
        for f in dataclasses.fields(self):  # type: ignore[arg-type]  # every SpecBase is a dataclass
            v = getattr(self, f.name)
            frozen = _freeze(v)
            if frozen is not v:
                object.__setattr__(self, f.name, frozen)

    @property
    def hash(self) -> str:
        return spec_hash(self)

    def to_json(self) -> str:
        return json.dumps(to_dict(self), sort_keys=True)

    def replace(self, **changes: Any) -> Any:
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]  # every SpecBase is a dataclass

    def __hash__(self) -> int:
        return int(spec_hash(self), 16)


class _FrozenDict(dict):
    """A dict that refuses mutation, for spec params."""

    def _refuse(self, *a, **k):
        raise TypeError("spec params are frozen")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _refuse

    def __hash__(self) -> int:  # type: ignore[override]  # frozen, so hashable unlike dict
        return hash(json.dumps(_plain(self, for_hash=True), sort_keys=True))

    def __reduce__(self):
        return (_FrozenDict, (dict(self),))


def _freeze(v: Any) -> Any:
    """Lists become tuples and dicts frozen dicts, recursively."""
    if isinstance(v, (list, tuple)):
        items = tuple(_freeze(x) for x in v)
        return v if isinstance(v, tuple) and all(a is b for a, b in zip(items, v, strict=False)) else items
    if isinstance(v, Mapping) and not (dataclasses.is_dataclass(v)):
        if isinstance(v, _FrozenDict) and all(_freeze(x) is x for x in v.values()):
            return v
        return _FrozenDict({k: _freeze(x) for k, x in v.items()})
    return v


def _params() -> Any:
    return field(default_factory=dict)


def param_defaults_field() -> Any:
    """The declared defaults of ``params`` (filled in at submission); not hashed, not compared:
    it only tells the hash which ``params`` entries are defaults."""
    return field(default_factory=dict, compare=False, metadata={"hash": False})


@register_spec
@dataclass(frozen=True, eq=True)
class DataSpec(SpecBase):
    """A dataset by registry name, its seed and loader parameters (n_train, noise, resize, ...)."""

    name: str = "xor"
    seed: int = 0
    params: Mapping[str, Any] = _params()
    param_defaults: Mapping[str, Any] = param_defaults_field()


@register_spec
@dataclass(frozen=True, eq=True)
class ModelSpec(SpecBase):
    """A zoo model by registry name and its constructor parameters (widths, activation, ...)."""

    name: str = "mlp"
    params: Mapping[str, Any] = _params()
    param_defaults: Mapping[str, Any] = param_defaults_field()


@register_spec
@dataclass(frozen=True, eq=True)
class TrainSpec(SpecBase):
    """Training hyper-parameters. ``snapshots`` lists epochs whose weights are kept (0 = init)."""

    epochs: int = 20
    batch_size: int = 64
    optimizer: str = "adam"  # adam | sgd
    lr: float = 1e-2
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "constant"  # constant | cosine | step
    seed: int = 0
    snapshots: tuple = ()
    device: str = field(default="auto", metadata={"hash": False})


@register_spec
@dataclass(frozen=True, eq=True)
class RunSpec(SpecBase):
    """One training run: data, model and training settings. Its hash names the run."""

    data: DataSpec = field(default_factory=DataSpec)
    model: ModelSpec = field(default_factory=ModelSpec)
    train: TrainSpec = field(default_factory=TrainSpec)
    kind: str = "train"


@register_spec
@dataclass(frozen=True, eq=True)
class AnalysisSpec(SpecBase):
    """An analysis of a stored model: ``run`` is a run/upload key, ``method`` an analysis name
    (persistence, curvature, volume, geodesic, ...), ``epoch`` a training snapshot (None = final)."""

    run: str = ""
    method: str = "persistence"
    params: Mapping[str, Any] = _params()
    param_defaults: Mapping[str, Any] = param_defaults_field()
    epoch: int | None = None
    kind: str = "analyse"
