"""Defaults, in one place: ``complete`` fills every declared default into a spec at submission
(the stable-key rule of ``nngeo_core.specs``), and the training presets per model family make
`nngeo train --model M --data D` just work.

The job queue calls ``complete`` on every submission, the CLI and the dashboard submit through
it, and the job kinds call it again on what they run (it is idempotent), so the same request has
one key whichever way it arrives. ``run_spec`` is the one way a run is asked for: the CLI's flags
and the Train page's form both come through it (the family's training preset, ``resize=28`` for
MNIST models on digits, then ``complete``), so one choice of model and data is one run whichever
way it is made; ``form_defaults`` is what the form starts from, the same values.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from . import user_index
from .analyses import get_analysis
from .data import derived
from .data.base import DATASETS
from .data.common import loader_defaults
from .errors import NNGeoError
from .models import model_entry
from .params import Param, signature_params
from .pruning.specs import SweepSpec
from .pruning.strategies import get_strategy
from .specs import AnalysisSpec, DataSpec, ModelSpec, RunSpec, TrainSpec

IMAGE_MODELS_SMALL = {"fcn_mnist", "lenet5", "lenet5_s2", "cnn_mnist"}
IMAGE_MODELS_CIFAR = {"vgg11", "vgg9", "resnet20"}


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


def base_dataset(name: str) -> str:
    """The registered dataset a (possibly nested) derived name is made from."""
    while derived.is_derived(name):
        name = derived.parse(name)[1]
    return name


def data_defaults(name: str) -> dict[str, Any]:
    """The declared parameters of dataset ``name`` (a derived form takes its base's)."""
    return loader_defaults(DATASETS.get(base_dataset(name)))


def data_declaration(name: str) -> dict[str, Param]:
    """Dataset ``name``'s parameters as ``Param``s, typed by the loader's annotations."""
    return signature_params(DATASETS.get(base_dataset(name)), skip=("seed",))


def model_declaration(name: str) -> dict[str, Param]:
    """Model ``name``'s parameters as ``Param``s: its builder's defaults and declared choices."""
    entry = model_entry(name)
    return {
        n: Param(default, choices=() if isinstance(default, bool) else tuple(entry.choices.get(n, ())))
        for n, default in entry.params.items()
    }


TRAIN_FIELDS = tuple(f.name for f in dataclasses.fields(TrainSpec))


def form_defaults(model: str, data: str) -> dict[str, Any]:
    """What a run's form starts with for ``model`` on ``data``: ``model_params``, ``data_params``
    (with the family's data defaults, e.g. ``resize=28``), ``data_seed`` and ``train`` (a dict of
    the preset's fields). ``run_spec(model, data, **form_defaults(model, data))`` is the run the
    CLI makes of `nngeo train --model M --data D`."""
    return dict(
        model_params={n: p.default for n, p in model_declaration(model).items()},
        data_params={**data_defaults(data), **default_data_params(model, data, {})},
        data_seed=0,
        train=dataclasses.asdict(default_train(model, data)),
    )


def run_spec(
    model: str,
    data: str,
    *,
    model_params: Mapping[str, Any] | None = None,
    data_params: Mapping[str, Any] | None = None,
    data_seed: int = 0,
    train: Mapping[str, Any] | None = None,
) -> RunSpec:
    """The run of ``model`` on ``data``, the one way the CLI and the dashboard make it: training
    settings not given (or None) come from the family's preset (``default_train``), dataset
    parameters from ``default_data_params``, then every declared default is filled in
    (``complete``). Parameters given as None are left to their owner's default. Unknown names and
    snapshot epochs after the last epoch are one-line errors."""
    data = user_index.canonical(data)  # an alias of the user's own data: the spec records its hash
    changes = {k: v for k, v in dict(train or {}).items() if v is not None}
    unknown = sorted(set(changes) - set(TRAIN_FIELDS))
    if unknown:
        raise NNGeoError(f"unknown training setting {unknown[0]!r}; the settings: {', '.join(TRAIN_FIELDS)}")
    if "snapshots" in changes:
        changes["snapshots"] = tuple(sorted({int(e) for e in changes["snapshots"]}))
    t = default_train(model, data).replace(**changes)
    late = [e for e in t.snapshots if not 0 <= e <= t.epochs]
    if late:
        raise NNGeoError(f"snapshot epoch {late[0]} lies outside 0..{t.epochs} (the epochs trained)")
    given_data = {k: v for k, v in dict(data_params or {}).items() if v is not None}
    spec = RunSpec(
        data=DataSpec(data, seed=int(data_seed), params=default_data_params(model, data, given_data)),
        model=ModelSpec(model, {k: v for k, v in dict(model_params or {}).items() if v is not None}),
        train=t,
    )
    return complete(spec)


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
        # a stored model's spec is what it was stored with (a foreign architecture is no zoo
        # entry to complete); only the data it is evaluated on gets its defaults
        run = spec.run.replace(data=complete(spec.run.data)) if spec.source is not None else complete(spec.run)
        return spec.replace(run=run, param_defaults=strategy.defaults)
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
