"""A reproducible claim: what a paper says, how nngeo measures it at each size, and the declared
verdict rule of every row of its table.

``Claim.run(size, seeds, progress)`` returns a ``Measurement``: one ``Row`` per line of the claim
table (the paper's value, the measured value per seed, the rule), the tables its figures are drawn
from and the figures to draw (``FigureRef``: a builder of ``nngeo_core.figures.reproduce`` by name,
the table it reads and its options). ``ReproduceSpec`` is what a stored report is keyed by.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import NNGeoError, one_line
from ..progress import Progress
from ..specs import SpecBase, register_spec
from .verdicts import Rule

SIZES = ("test", "default", "paper")


@register_spec
@dataclass(frozen=True, eq=True)
class ReproduceSpec(SpecBase):
    """One reproduction: a claim by name, a size and a number of seeds (0 = the claim's own)."""

    claim: str = ""
    size: str = "default"
    seeds: int = 0
    kind: str = "reproduction"


@dataclass(frozen=True)
class Size:
    """One size of a claim: its settings (passed to the computation) and the datasets it needs
    (checked before anything runs, so a missing one is one line and nothing is stored)."""

    settings: Mapping[str, Any]
    needs: tuple[str, ...] = ()
    description: str = ""


@dataclass(frozen=True)
class Row:
    """One line of the claim table: the paper's value, the measured value per seed, the rule."""

    name: str
    paper: float
    values: tuple[float, ...]
    rule: Rule


@dataclass(frozen=True)
class FigureRef:
    """A figure of the report: ``builder`` (a name in ``figures.reproduce.BUILDERS``) applied to
    the report table ``table`` with keyword options ``options``."""

    builder: str
    table: str
    title: str
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class Measurement:
    rows: list[Row]
    tables: dict[str, Any]  # name -> pandas DataFrame
    figures: list[FigureRef]


Compute = Callable[[Mapping[str, Any], tuple[int, ...], Progress], Measurement]


def check_needs(claim: str, size: str, needs: Sequence[str]) -> None:
    """Each dataset in ``needs`` loads (one sample of each split), else one line saying which is
    missing and where it is looked for."""
    # lazy: the data registry loads torch (~1.5 s, measured); listing the claims must not pay for it
    from ..data import load
    from ..settings import get_settings

    for name in needs:
        try:
            load(name, n_train=1, n_test=1)
        except NNGeoError as exc:
            where = get_settings().data_dir
            raise NNGeoError(
                one_line(
                    f"claim {claim} at size {size!r} needs dataset {name}, looked for in {where} "
                    f"(NNGEO_DATA_DIR): {exc}"
                )
            ) from None


@dataclass(frozen=True)
class Claim:
    """A paper's claim and how to reproduce it. ``seeded=False``: the measurement does not depend
    on a seed (it is computed once, from the architecture alone)."""

    name: str
    paper: str  # citation
    statement: str
    sizes: Mapping[str, Size]
    compute: Compute
    default_seeds: int = 3
    seeded: bool = True

    def __post_init__(self) -> None:
        missing = [s for s in SIZES if s not in self.sizes]
        if missing:
            raise NNGeoError(f"claim {self.name} declares no size {', '.join(missing)}")

    def size(self, size: str) -> Size:
        if size not in self.sizes:
            raise NNGeoError(f"claim {self.name} has no size {size!r}; sizes: {', '.join(self.sizes)}")
        return self.sizes[size]

    def seed_list(self, seeds: int | None) -> tuple[int, ...]:
        if not self.seeded:
            return (0,)
        n = seeds if seeds else self.default_seeds
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise NNGeoError(f"seeds must be a positive integer, got {seeds!r}")
        return tuple(range(n))

    def check(self, size: str) -> None:
        """A size the claim has and the datasets it needs: one-line errors, before any work."""
        check_needs(self.name, size, self.size(size).needs)

    def run(self, size: str = "default", seeds: int | None = None, progress: Progress | None = None) -> Measurement:
        self.check(size)
        return self.compute(self.size(size).settings, self.seed_list(seeds), progress or Progress())
