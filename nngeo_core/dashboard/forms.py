"""The pages' forms without Streamlit: which widget each declared parameter gets, how its value
is read back (one-line errors), the run a form asks for, and the memory that keeps a form's
choices while the user visits other pages.

``widget_for(name, Param)`` describes a parameter's widget: a select box for declared choices, a
checkbox for a bool, a number input for an int or float (bounded by the declared range, empty
allowed where the default is None), and a text box with a checking parser for lists and
anything else. ``WidgetSpec.read`` turns what the widget returned into the value, checked
against the declaration (``params.check_value``), so a bad value is refused on the page, before
anything is queued. ``dashboard.widgets.param_inputs`` draws them.
"""

from __future__ import annotations

import functools
import json
import math
import numbers
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, replace
from typing import Any

import torch

from ..cli_args import parse_value
from ..data import dataset_info
from ..defaults import run_spec
from ..errors import NNGeoError
from ..models import build
from ..params import Param, check_value, format_value
from ..specs import RunSpec, spec_from_dict, to_dict

__all__ = [
    "FormMemory",
    "WidgetSpec",
    "check_buildable",
    "param_text",
    "parse_float_list",
    "parse_int_list",
    "run_spec",
    "snapshot_epochs_for",
    "widget_for",
]


def parse_int_list(text: str, what: str, *, low: int | None = None) -> tuple[int, ...]:
    """'32, 32' -> (32, 32); empty text -> ()."""
    parts = [p.strip() for p in str(text or "").replace(";", ",").split(",") if p.strip()]
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        raise NNGeoError(f"{what} must be whole numbers separated by commas, got {text!r}") from None
    if low is not None and any(v < low for v in values):
        raise NNGeoError(f"{what} must be at least {low}, got {text!r}")
    return values


def parse_float_list(text: str, what: str, *, low: float | None = None, high: float | None = None) -> tuple[float, ...]:
    parts = [p.strip() for p in str(text or "").replace(";", ",").split(",") if p.strip()]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        raise NNGeoError(f"{what} must be numbers separated by commas, got {text!r}") from None
    if (low is not None and any(v < low for v in values)) or (high is not None and any(v > high for v in values)):
        raise NNGeoError(f"{what} must lie in [{low}, {high}], got {text!r}")
    return values


def snapshot_epochs_for(epochs: int, text: str = "", every: int | None = None) -> tuple[int, ...]:
    """Snapshot epochs from an explicit list or 'every k epochs' (always with 0 and the last)."""
    if text and text.strip():
        snaps = parse_int_list(text, "snapshot epochs", low=0)
        bad = [e for e in snaps if e > epochs]
        if bad:
            raise NNGeoError(f"snapshot epoch {bad[0]} is after the last epoch ({epochs})")
        return tuple(sorted(set(snaps)))
    if every:
        if every < 1:
            raise NNGeoError("snapshot interval must be at least 1 epoch")
        return tuple(sorted(set(range(0, epochs + 1, int(every))) | {0, epochs}))
    return ()


def param_text(value: Any) -> str:
    """The text a box starts with for a value (empty for None)."""
    if value is None:
        return ""
    if isinstance(value, (tuple, list)):
        return ", ".join(format_value(v) for v in value)
    return format_value(value) if isinstance(value, (bool, float)) else str(value)


AUTOMATIC = "automatic"  # how None (the owner's own choice) is shown


@dataclass(frozen=True)
class WidgetSpec:
    """One parameter's widget. ``widget``: select, checkbox, int, float or text; ``value``: what
    it starts with (the text, for a text box); ``options`` of a select box (None among them is
    shown as "automatic"); ``low``/``high`` bound a number input; ``nullable``: a number input
    may be left empty (None, the owner's choice)."""

    name: str
    widget: str
    value: Any
    param: Param
    what: str = "parameter"
    options: tuple[Any, ...] = ()
    low: float | None = None
    high: float | None = None
    nullable: bool = False
    help: str = ""

    def accepts(self, raw: Any) -> bool:
        """Whether ``raw`` can be what this widget holds (a remembered value is checked so,
        since the options or the type may have changed since)."""
        if self.widget == "select":
            return raw in self.options
        if self.widget == "checkbox":
            return isinstance(raw, bool)
        if self.widget in ("int", "float"):
            if raw is None:
                return self.nullable
            ok = isinstance(raw, numbers.Real) and not isinstance(raw, bool) and math.isfinite(float(raw))
            if self.widget == "int":
                ok = ok and float(raw).is_integer()
            return bool(ok) and (self.low is None or raw >= self.low) and (self.high is None or raw <= self.high)
        return isinstance(raw, str)

    def read(self, raw: Any) -> Any:
        """The parameter's value from what the widget returned; a one-line ``NNGeoError`` if it
        does not fit the declaration."""
        if self.widget == "text":
            value = self._parse(str(raw or ""))
        elif self.widget == "int" and raw is not None and not isinstance(raw, bool):
            value = (
                int(raw) if isinstance(raw, numbers.Integral) or (isinstance(raw, float) and raw.is_integer()) else raw
            )
        elif self.widget == "float" and raw is not None and not isinstance(raw, bool):
            value = float(raw) if isinstance(raw, numbers.Real) else raw
        else:
            value = raw
        value = check_value(self.what, self.name, self.param, value)
        if isinstance(value, tuple):
            self._check_items(value)
        return value

    def _parse(self, text: str) -> Any:
        t = text.strip()
        if not t:  # an empty box: the declared default
            return self.param.default
        kind = self.param.value_kind
        if kind is str:
            return t
        if kind is tuple:
            return self._parse_items(t)
        if kind in (int, float, bool):
            value = parse_value(t)
            return float(value) if kind is float and isinstance(value, int) and not isinstance(value, bool) else value
        return parse_value(t)

    def _parse_items(self, text: str) -> tuple:
        parts = [p.strip() for p in text.replace(";", ",").split(",") if p.strip()]
        items = self.param.default if isinstance(self.param.default, (tuple, list)) else ()
        cast: Callable[[str], Any]
        if items and all(isinstance(v, int) and not isinstance(v, bool) for v in items):
            cast, words = int, "whole numbers"
        elif items and all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in items):
            cast, words = float, "numbers"
        else:
            return tuple(parse_value(p) for p in parts)
        try:
            return tuple(cast(p) for p in parts)
        except ValueError:
            raise NNGeoError(
                f"{self.what}: parameter {self.name!r} must be {words} separated by commas, got {text!r}"
            ) from None

    def _check_items(self, value: tuple) -> None:
        low, high = self.param.low, self.param.high
        bad = [
            v
            for v in value
            if isinstance(v, (int, float))
            and not isinstance(v, bool)
            and ((low is not None and v < low) or (high is not None and v > high))
        ]
        if bad:
            bounds = " and ".join(
                b
                for b in (f"at least {low}" if low is not None else "", f"at most {high}" if high is not None else "")
                if b
            )
            raise NNGeoError(f"{self.what}: every entry of {self.name!r} must be {bounds}, got {bad[0]!r}")


_DEFAULT = object()  # widget_for's start when none is given: the declared default


def widget_for(name: str, param: Any, start: Any = _DEFAULT, *, what: str = "parameter") -> WidgetSpec:
    """The widget of parameter ``name`` declared as ``param`` (a ``Param`` or a bare default),
    starting at ``start`` (default: the declared default; None: the owner's choice)."""
    p = param if isinstance(param, Param) else Param(param)
    if start is _DEFAULT:
        start = p.default
    kind = p.value_kind
    base = WidgetSpec(name=name, widget="text", value="", param=p, what=what, help=p.help)
    if kind is bool and p.default is None:  # unset is a choice of its own (e.g. the preset's value)
        options = (None, True, False)
        return replace(base, widget="select", value=start if start in options else None, options=options)
    if kind is bool:
        return replace(base, widget="checkbox", value=bool(p.default if start is None else start))
    if p.choices:
        options = tuple(p.choices) if p.default in p.choices else (None, *p.choices)
        return replace(base, widget="select", value=start if start in options else p.default, options=options)
    if kind is int or kind is float:
        low = None if p.low is None else (math.ceil(p.low) if kind is int else float(p.low))
        high = None if p.high is None else (math.floor(p.high) if kind is int else float(p.high))
        return replace(
            base,
            widget="int" if kind is int else "float",
            value=None if start is None else kind(start),
            low=low,
            high=high,
            nullable=p.default is None,
        )
    hint = "comma-separated values" if kind is tuple else ""
    empty = f"empty: {param_text(p.default) if p.default is not None else AUTOMATIC}"
    return replace(base, value=param_text(start), help=" · ".join(h for h in (p.help, hint, empty) if h))


def check_buildable(spec: RunSpec) -> None:
    """A one-line ``NNGeoError`` when ``spec``'s model cannot be built for its data (lenet5 on
    xor, vgg11 on 8×8 digits), said on the page instead of by a failed job. The model is built on
    torch's meta device: shapes only, no memory, a few ms (about 1.5 s once per process, while
    torch sets the meta device up)."""
    params = {k: v for k, v in spec.data.params.items() if v is not None}
    info = dataset_info(spec.data.name, **params)
    _check_build(spec.model.name, json.dumps(to_dict(spec.model)), info.input_shape, info.num_classes)


@functools.lru_cache(maxsize=256)
def _check_build(model: str, model_json: str, input_shape: tuple[int, ...], num_classes: int) -> None:
    with torch.device("meta"):
        build(spec_from_dict(model_json), input_shape=input_shape, num_classes=num_classes)


class FormMemory:
    """A form's last values by widget key, kept in a mapping that outlives the widgets (the
    session state under one key of its own). Streamlit forgets a widget's state when a page is
    shown without it, so a form drawn from ``start`` comes back as the user left it."""

    def __init__(self, memory: MutableMapping[str, Any]) -> None:
        self.memory = memory

    def start(self, key: str, default: Any, accepts: Callable[[Any], bool] | None = None) -> Any:
        """The value the widget ``key`` starts with: the remembered one if it still fits."""
        if key not in self.memory:
            return default
        value = self.memory[key]
        return value if accepts is None or accepts(value) else default

    def keep(self, key: str, value: Any) -> Any:
        self.memory[key] = value
        return value
