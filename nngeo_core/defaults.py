"""Defaults, in one place: ``complete`` fills every declared default into a spec at submission
(the stable-key rule of ``nngeo_core.specs``), and the training presets per model family make
`nngeo train --model M --data D` just work.

The job queue calls ``complete`` on every submission, the CLI and the dashboard submit through
it, and the job kinds call it again on what they run (it is idempotent), so the same request has
one key whichever way it arrives.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .analyses import get_analysis
from .data import derived
from .data.base import DATASETS
from .data.common import loader_defaults
from .errors import NNGeoError
from .models import model_entry
from .pruning.specs import SweepSpec
from .pruning.strategies import get_strategy
from .specs import AnalysisSpec, DataSpec, ModelSpec, RunSpec, TrainSpec

IMAGE_MODELS_SMALL = {"fcn_mnist", "lenet5", "cnn_mnist"}
IMAGE_MODELS_CIFAR = {"vgg11", "resnet20"}


def default_train(model: str, data: str) -> TrainSpec:
    """2-D toys train in seconds with Adam; image models get a few epochs of Adam at 1e-3."""
    if model in IMAGE_MODELS_CIFAR:
        return TrainSpec(
            epochs=10, batch_size=128, optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=5e-4, schedule="cosine"
        )
    if model in IMAGE_MODELS_SMALL or any(name in data for name in ("digits", "mnist", "cifar")):
        return TrainSpec(epochs=15, batch_size=64, optimizer="adam", lr=1e-3)
    return TrainSpec(epochs=20, batch_size=64, optimizer="adam", lr=1e-2)


def default_data_params(model: str, data: str, params: dict) -> dict:
    """MNIST-shaped models on `digits` (incl. derived tasks on it) get digits resized to 28×28,
    so `--model fcn_mnist --data digits` is the 784-input net of the papers, offline."""
    out = dict(params)
    if model in IMAGE_MODELS_SMALL and "digits" in data.split(":") and "resize" not in out:
        out["resize"] = 28
    return out


def data_defaults(name: str) -> dict[str, Any]:
    """The declared parameters of dataset ``name`` (a derived form takes its base's)."""
    base = derived.parse(name)[1] if derived.is_derived(name) else name
    return loader_defaults(DATASETS.get(base))


def complete(spec: Any) -> Any:
    """``spec`` with every declared default filled in and recorded (``param_defaults``), for the
    spec kinds that have declared parameters; any other spec is returned as it is. Unknown names
    and parameters are the registries' one-line errors."""
    if isinstance(spec, DataSpec):
        return _filled(spec, data_defaults(spec.name))
    if isinstance(spec, ModelSpec):
        return _filled(spec, dict(model_entry(spec.name).params))
    if isinstance(spec, RunSpec):
        return spec.replace(data=complete(spec.data), model=complete(spec.model))
    if isinstance(spec, AnalysisSpec):
        analysis = get_analysis(spec.method)
        if not analysis.params:
            return spec
        return spec.replace(params=analysis.resolve(spec.params), param_defaults=analysis.defaults)
    if isinstance(spec, SweepSpec):
        strategy = get_strategy(spec.strategy)
        return spec.replace(run=complete(spec.run), param_defaults=strategy.defaults)
    return spec


def _filled(spec: DataSpec | ModelSpec, defaults: dict[str, Any]) -> Any:
    given = dict(spec.params)
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        what = "dataset" if isinstance(spec, DataSpec) else "model"
        known = ", ".join(defaults) or "none"
        raise_unknown = f"{what} {spec.name!r} has no parameter {unknown[0]!r}; its parameters: {known}"
        raise NNGeoError(raise_unknown)
    return dataclasses.replace(spec, params={**defaults, **given}, param_defaults=defaults)
