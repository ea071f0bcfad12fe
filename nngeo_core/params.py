"""Declared parameters: the one way a dataset, model, analysis or pruning strategy says which
parameters it takes, of what type, and with which defaults.

A declaration maps each name to a ``Param`` (a bare value is shorthand for ``Param(value)``, its
type read from the value). ``resolve`` is the one check of a request against a declaration:
unknown names and values of the wrong type are one-line errors, and the result has every default
filled in, which is what a stored spec records (see ``nngeo_core.specs`` on stable keys).
"""

from __future__ import annotations

import collections.abc
import inspect
import math
import numbers
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import NNGeoError


@dataclass(frozen=True)
class Param:
    """One declared parameter. ``kind`` (bool, int, float, str, tuple) defaults to the type of
    ``default``; a default of None accepts any value unless ``kind`` is given. None is accepted
    for every parameter (the owner's automatic choice). ``choices`` lists the allowed values;
    ``low``/``high`` bound numbers (inclusive)."""

    default: Any = None
    kind: type | None = None
    choices: tuple[Any, ...] = ()
    low: float | None = None
    high: float | None = None
    help: str = ""

    @property
    def value_kind(self) -> type | None:
        if self.kind is not None:
            return self.kind
        if self.default is None:
            return None
        if isinstance(self.default, bool):
            return bool
        if isinstance(self.default, numbers.Integral):
            return int
        if isinstance(self.default, numbers.Real):
            return float
        if isinstance(self.default, str):
            return str
        if isinstance(self.default, (tuple, list)):
            return tuple
        return None


Declaration = Mapping[str, Any]  # name -> Param or a bare default


def declare(params: Mapping[str, Any] | None) -> dict[str, Param]:
    """A declaration with every entry a ``Param``."""
    return {name: p if isinstance(p, Param) else Param(p) for name, p in (params or {}).items()}


def defaults_of(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """name -> default of a declaration."""
    return {name: p.default for name, p in declare(params).items()}


def check_value(what: str, name: str, param: Param, value: Any) -> Any:
    """``value`` if it fits ``param``, else a one-line ``NNGeoError``."""
    kind = param.value_kind
    if value is None:  # None asks for the owner's automatic choice, wherever a value is declared
        return value
    bad = f"{what}: parameter {name!r} must be "
    if kind is bool and not isinstance(value, bool):
        raise NNGeoError(f"{bad}true or false, got {value!r}")
    if kind is int and (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(float(value))
        or not float(value).is_integer()
    ):
        raise NNGeoError(f"{bad}a whole number, got {value!r}")
    if kind is float and (
        isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value))
    ):
        raise NNGeoError(f"{bad}a finite number, got {value!r}")
    if kind is str and not isinstance(value, str):
        raise NNGeoError(f"{bad}text, got {value!r}")
    if kind is tuple and not isinstance(value, (tuple, list)):
        raise NNGeoError(f"{bad}a list, got {value!r}")
    if param.choices and value not in param.choices:
        raise NNGeoError(f"{bad}one of {', '.join(map(repr, param.choices))}, got {value!r}")
    if kind in (int, float):
        if param.low is not None and value < param.low:
            raise NNGeoError(f"{bad}at least {param.low}, got {value!r}")
        if param.high is not None and value > param.high:
            raise NNGeoError(f"{bad}at most {param.high}, got {value!r}")
    return value


def resolve(what: str, declared: Mapping[str, Any] | None, given: Mapping[str, Any] | None) -> dict[str, Any]:
    """``given`` checked against ``declared``, with every default filled in. ``what`` names the
    owner in messages ("the magnitude strategy", "analysis 'volume'")."""
    decl = declare(declared)
    given = dict(given or {})
    unknown = sorted(set(given) - set(decl))
    if unknown:
        known = ", ".join(decl) or "none"
        raise NNGeoError(
            f"unknown parameter {unknown[0]!r}: {what} has no parameter of that name; its parameters: {known}"
        )
    for name, value in given.items():
        check_value(what, name, decl[name], value)
    return {**{n: p.default for n, p in decl.items()}, **given}


def signature_defaults(fn: Callable[..., Any], names: tuple[str, ...]) -> dict[str, Any]:
    """name -> default of the keyword parameters ``names`` of ``fn``: an analysis that hands its
    params to a function declares that function's own defaults, so the two cannot drift apart."""
    sig = inspect.signature(fn).parameters
    missing = [n for n in names if n not in sig or sig[n].default is inspect.Parameter.empty]
    if missing:
        raise TypeError(f"{fn.__qualname__} has no defaulted parameter {missing[0]!r}")
    return {n: sig[n].default for n in names}


def _annotation_kind(annotation: Any) -> type | None:
    """bool/int/float/str/tuple for an annotation such as ``int``, ``int | None`` or
    ``tuple[int, ...]``; None for anything else (then the default decides)."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return _annotation_kind(args[0]) if len(args) == 1 else None
    origin = typing.get_origin(annotation) or annotation
    if origin in (bool, int, float, str):
        return origin
    if origin in (tuple, list, collections.abc.Sequence):
        return tuple
    return None


def signature_params(fn: Callable[..., Any], *, skip: tuple[str, ...] = ()) -> dict[str, Param]:
    """The named parameters of ``fn`` (a loader or builder) as a declaration: each default, typed
    by its annotation where it names one plain type (``n_train: int | None = None`` is an int
    that may be left to the owner), else by the default."""
    try:
        sig = inspect.signature(fn, eval_str=True)
    except (NameError, TypeError, SyntaxError):  # an annotation that does not evaluate here
        sig = inspect.signature(fn)
    out = {}
    for p in sig.parameters.values():
        if p.name in skip or p.kind not in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD):
            continue
        default = None if p.default is inspect.Parameter.empty else p.default
        kind = _annotation_kind(p.annotation) if p.annotation is not inspect.Parameter.empty else None
        # only where the annotation says more than the default (None, or an int for a float)
        out[p.name] = Param(default, kind=None if kind is Param(default).value_kind else kind)
    return out


def format_value(value: Any) -> str:
    """A parameter value as a user types it: 0.5, 32,32, true, sinkhorn."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (tuple, list)):
        return ",".join(format_value(v) for v in value)
    return str(value)


def changed_params(params: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of ``params`` that differ from ``defaults`` (lists and tuples compare alike),
    in name order: what tells two requests of one kind apart in a job list."""

    def norm(v: Any) -> Any:
        return tuple(norm(x) for x in v) if isinstance(v, (tuple, list)) else v

    return {k: params[k] for k in sorted(params) if k not in defaults or norm(params[k]) != norm(defaults[k])}


def changed_text(params: Mapping[str, Any], defaults: Mapping[str, Any]) -> str:
    """'alpha=0.3 method=foo' for the entries of ``params`` that are not their default."""
    return " ".join(f"{k}={format_value(v)}" for k, v in changed_params(params, defaults).items())
