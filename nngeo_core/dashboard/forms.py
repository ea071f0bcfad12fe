"""Turn the Train and Pruning pages' widget values into specs, with one-line errors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..cli_args import parse_value
from ..data import dataset_info
from ..defaults import default_train
from ..errors import NNGeoError
from ..models import model_info
from ..specs import DataSpec, ModelSpec, RunSpec, TrainSpec


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


def run_spec(
    model: str,
    data: str,
    *,
    model_params: Mapping[str, Any] | None = None,
    data_params: Mapping[str, Any] | None = None,
    data_seed: int = 0,
    train: Mapping[str, Any] | None = None,
) -> RunSpec:
    """A RunSpec from page values; training values not given come from the model's defaults."""
    base = default_train(model, data)
    changes = {k: v for k, v in dict(train or {}).items() if v is not None}
    unknown = sorted(set(changes) - set(TrainSpec.__dataclass_fields__))
    if unknown:
        raise NNGeoError(f"unknown training setting {unknown[0]!r}")
    t = base.replace(**changes)
    if t.epochs < 1:
        raise NNGeoError("train for at least one epoch")
    data_defaults = dataset_info(data).defaults if ":" not in data else {}
    return RunSpec(
        data=DataSpec(data, seed=int(data_seed), params=_clean(data_params, data_defaults)),
        model=ModelSpec(model, _clean(model_params, model_info(model)["params"])),
        train=t,
    )


def _clean(params: Mapping[str, Any] | None, defaults: Mapping[str, Any]) -> dict:
    """Drop params left empty or equal to the default, so a run asked for with the defaults has
    the same spec (and hash) as one asked for without them."""

    def norm(v):
        return tuple(v) if isinstance(v, list) else v

    return {
        k: v
        for k, v in dict(params or {}).items()
        if v is not None and v != "" and not (k in defaults and norm(defaults[k]) == norm(v))
    }


def parse_param(text: str, default: Any) -> Any:
    """A text box's value for a parameter whose default is ``default`` (tuple, None or str)."""
    t = str(text or "").strip()
    if not t:
        return None
    if isinstance(default, (tuple, list)):
        v = parse_value(t + ("," if "," not in t else ""))
        return tuple(v) if isinstance(v, tuple) else (v,)
    return parse_value(t)


def param_text(value: Any) -> str:
    """The text a box starts with for a default value."""
    if value is None:
        return ""
    if isinstance(value, (tuple, list)):
        return ", ".join(map(str, value))
    return str(value)
