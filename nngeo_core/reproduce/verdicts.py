"""Verdict rules: small declared objects that compute a verdict from the paper's value and the
measured per-seed values, and say in words what they check (``text``). A verdict is never typed:
it is what the rule gives.

Every rule ignores non-finite measurements; with none left the verdict is ``inconclusive``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

AGREES = "agrees"
DIFFERS = "differs"
INCONCLUSIVE = "inconclusive"
REFERENCE = "reference"
VERDICTS = (AGREES, DIFFERS, INCONCLUSIVE, REFERENCE)


class Rule(Protocol):
    @property
    def text(self) -> str: ...

    def verdict(self, paper: float, values: Sequence[float]) -> str: ...


def finite(values: Sequence[float]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def mean(values: Sequence[float]) -> float:
    v = finite(values)
    return sum(v) / len(v) if v else math.nan


@dataclass(frozen=True)
class Within:
    """The mean of the measured values lies within ``tol`` of the paper's value: an absolute
    distance, or (``relative``) a fraction of |paper|."""

    tol: float
    relative: bool = False

    @property
    def text(self) -> str:
        if self.relative:
            return f"mean within {self.tol * 100:g}% of the paper's value"
        return f"mean within {self.tol:g} of the paper's value"

    def verdict(self, paper: float, values: Sequence[float]) -> str:
        m = mean(values)
        if math.isnan(m) or not math.isfinite(paper):
            return INCONCLUSIVE
        bound = self.tol * abs(paper) if self.relative else self.tol
        return AGREES if abs(m - paper) <= bound else DIFFERS


# how a sign rule's text begins: its paper value is a sign (+1 / -1), shown as "> 0" / "< 0"
SIGN_RULE_PREFIX = "sign agrees"


def paper_text(paper: float, rule: str) -> str:
    """The paper's value as its rule reads it: a sign rule's +1 / -1 is "> 0" / "< 0", a number is
    shown to 6 significant digits like the measured one, no value (a reference row) is '—'."""
    if not math.isfinite(paper):
        return "—"
    if rule.startswith(SIGN_RULE_PREFIX):
        return "> 0" if paper > 0 else "< 0"
    return f"{paper:.6g}"


@dataclass(frozen=True)
class SignAgrees:
    """The sign of the measured value equals the sign of the paper's in at least ``k`` of ``of``
    seeds; fewer than ``of`` finite measurements are inconclusive (a zero has no sign)."""

    k: int
    of: int

    @property
    def text(self) -> str:
        return f"{SIGN_RULE_PREFIX} with the paper's in >= {self.k} of {self.of} seeds"

    def verdict(self, paper: float, values: Sequence[float]) -> str:
        v = finite(values)
        if len(v) < self.of or not math.isfinite(paper) or paper == 0:
            return INCONCLUSIVE
        hits = sum(1 for x in v[: self.of] if x != 0 and (x > 0) == (paper > 0))
        return AGREES if hits >= self.k else DIFFERS


@dataclass(frozen=True)
class AtLeast:
    """The mean of the measured values is at least the paper's value minus ``margin``."""

    margin: float = 0.0

    @property
    def text(self) -> str:
        if self.margin:
            return f"mean at least the paper's value minus {self.margin:g}"
        return "mean at least the paper's value"

    def verdict(self, paper: float, values: Sequence[float]) -> str:
        m = mean(values)
        if math.isnan(m) or not math.isfinite(paper):
            return INCONCLUSIVE
        return AGREES if m >= paper - self.margin else DIFFERS


@dataclass(frozen=True)
class Reference:
    """No paper value to compare with: the row is shown for reference (e.g. at initialisation)."""

    @property
    def text(self) -> str:
        return "reference: the paper states no value here"

    def verdict(self, paper: float, values: Sequence[float]) -> str:
        return REFERENCE
