"""Checks of user-given settings, each failing with one ``NNGeoError`` line that names the setting."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from ..errors import NNGeoError


def check_fraction(name: str, value: object) -> float:
    """A number strictly between 0 and 1."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.floating, np.integer))
        or not math.isfinite(value)
        or not (0 < value < 1)
    ):
        raise NNGeoError(f"{name} must be a number strictly between 0 and 1, got {value!r}")
    return float(value)


def check_int(name: str, value: object, low: int = 1, high: int = 1_000_000) -> int:
    """A whole number from ``low`` to ``high``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= high:
        raise NNGeoError(f"{name} must be a whole number from {low} to {high}, got {value!r}")
    return int(value)


def check_positive(name: str, value: object) -> float:
    """A finite number above 0."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.floating, np.integer))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise NNGeoError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def check_optional_positive(name: str, value: object) -> float | None:
    """None, or a finite number above 0."""
    return None if value is None else check_positive(name, value)


def check_choice(name: str, value: object, choices: Iterable[str]) -> str:
    """One of ``choices``."""
    choices = tuple(choices)
    if not isinstance(value, str) or value not in choices:
        raise NNGeoError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value
