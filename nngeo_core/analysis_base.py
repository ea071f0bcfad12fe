"""What an analysis is: a plain function of a model (plus optional data) returning a table,

    fn(model: nn.Module, dataset: Dataset | None, params: dict, progress: Progress) -> pandas.DataFrame

declared with ``@register_analysis(name, params=..., ...)``, which returns an ``Analysis`` (callable
like the function). Capabilities (topology, curvature, geometry) declare theirs; the registry
(``nngeo_core.analyses``) imports them, so imports run one way. Analyses never mutate the model.

An analysis that needs other stored results (a second run, say) declares ``needs_store`` and is
called with ``store=`` as well; its ``normalize(run, params, store) -> params`` checks the params
and makes them canonical (a key prefix becomes the full key) when the job is submitted, so a bad
request fails before it is queued.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .params import defaults_of, resolve

AnalysisFn = Callable[..., Any]
Normalizer = Callable[[str, dict[str, Any], Any], dict[str, Any]]


@dataclass(frozen=True)
class Analysis:
    name: str
    fn: AnalysisFn
    description: str = ""
    needs_data: bool = False
    needs_store: bool = False
    normalize: Normalizer | None = None
    params: Mapping[str, Any] = field(default_factory=dict)  # name -> default or Param
    columns: tuple[str, ...] = ()  # columns its table always has (the conformance checks hold it to them)
    timings: tuple[str, ...] = ()  # columns that measure time: the one part of its table a seed does not fix

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    @property
    def defaults(self) -> dict[str, Any]:
        return defaults_of(self.params)

    def resolve(self, params: Mapping[str, Any] | None) -> dict[str, Any]:
        """``params`` checked against the declaration, defaults filled in."""
        return resolve(f"analysis {self.name!r}", self.params, params)

    def info(self) -> dict[str, Any]:
        return {"needs_data": self.needs_data, "needs_store": self.needs_store, "description": self.description}


def register_analysis(
    name: str,
    *,
    needs_data: bool = False,
    needs_store: bool = False,
    normalize: Normalizer | None = None,
    description: str = "",
    params: Mapping[str, Any] | None = None,
    columns: tuple[str, ...] = (),
    timings: tuple[str, ...] = (),
) -> Callable[[AnalysisFn], Analysis]:
    """Decorator: declare ``fn`` as the analysis ``name`` (see the module docstring)."""

    def deco(fn: AnalysisFn) -> Analysis:
        return Analysis(
            name=name,
            fn=fn,
            description=description,
            needs_data=needs_data,
            needs_store=needs_store,
            normalize=normalize,
            params=dict(params or {}),
            columns=tuple(columns),
            timings=tuple(timings),
        )

    return deco
