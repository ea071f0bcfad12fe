"""Null models: what a statistic of a network is worth against networks that learned nothing.

``null_model(model, kind, seed)`` returns a NEW model of the same architecture (the input is never
changed) whose prunable weights (the ``nn.Linear`` / ``nn.Conv2d`` weights ``base.prunable_layers``
lists) carry no trace of training:

- ``"init"``: the architecture freshly initialised by its own initialisers under ``seed``. A zoo
  model (it carries ``zoo_name``) is rebuilt with ``build`` after ``torch.manual_seed(seed)``, so
  VGG's and ResNet's Kaiming convs are what they are at construction; for a run trained with
  nngeo's seed s, ``seed=s`` is the run's own starting point (``train.build_for`` seeds the same
  way). Any other network: ``reset_parameters()`` of every submodule that has one, in
  ``named_modules`` order. Biases and batch norms are re-initialised too. The global RNG state is
  restored afterwards.
- ``"shuffled"``: each prunable weight tensor's nonzero entries permuted uniformly at random among
  that tensor's nonzero positions (a conv weight over all its entries). Each layer keeps its
  multiset of weights, hence its magnitude distribution and norm; only which weight sits on
  which edge is random. Biases, batch norms and everything else are kept.
- ``"gaussian"``: each prunable weight's nonzero entries replaced by i.i.d. N(0, σ²), σ the RMS of
  that layer's nonzero weights (sqrt(mean w²): for a zero-mean Gaussian the std; it keeps the
  layer's Frobenius norm in expectation). Biases and the rest kept.

Every kind keeps each layer's zero pattern: an exactly-zero (pruned) weight stays zero, so the null
of a pruned network has the same graph and only its values differ; for a dense network nothing is
zero and the rule is void. Pruning masks a model carries as parametrisations are folded into plain
weights in the null (``parametrisations.fold_masks``). ``shuffled`` and ``gaussian`` draw from
their own ``torch.Generator(seed)`` and touch no global RNG state.

``null_rows`` is how an analysis adds null models to its table: its rows for the model itself
(``model = "trained"``, ``seed`` empty) and for every kind × seed (``model`` = the kind), each
computed from scratch by the same function. ``NULL_PARAMS`` are the two parameters an analysis
declares for it (``null_models`` default None: none, so no stored key changes) and
``normalize_nulls`` makes them canonical at submission.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from typing import Any

import pandas as pd
import torch
from torch import nn

from ..errors import NNGeoError
from ..params import Param
from .base import get_layer, prunable_layers, tensor_attribute
from .parametrisations import fold_masks

NULL_KINDS: tuple[str, ...] = ("init", "shuffled", "gaussian")
TRAINED = "trained"  # the ``model`` value of the rows of the network itself
DEFAULT_NULL_SEEDS = 3

NULL_PARAMS: dict[str, Param] = {
    "null_models": Param(
        None, help=f"null models to compute beside the network, comma-separated: {', '.join(NULL_KINDS)}"
    ),
    "null_seeds": Param(DEFAULT_NULL_SEEDS, kind=int, low=1, high=100, help="seeds per null model (0, 1, ...)"),
}


def check_kind(kind: Any) -> str:
    if kind not in NULL_KINDS:
        raise NNGeoError(f"unknown null model {kind!r}; the null models: {', '.join(NULL_KINDS)}")
    return str(kind)


def null_kinds(value: Any) -> tuple[str, ...]:
    """``null_models`` as given (None, "init,shuffled", a list) as a tuple of known kinds in
    ``NULL_KINDS`` order, each once; a one-line ``NNGeoError`` for anything else."""
    if value is None:
        return ()
    if isinstance(value, str):
        items: list[Any] = [p.strip() for p in value.replace(";", ",").split(",") if p.strip()]
    elif isinstance(value, (tuple, list)):
        items = list(value)
    else:
        raise NNGeoError(f"null_models must be a list of null models ({', '.join(NULL_KINDS)}), got {value!r}")
    wanted = {check_kind(k) for k in items}
    return tuple(k for k in NULL_KINDS if k in wanted)


def normalize_nulls(params: dict[str, Any]) -> dict[str, Any]:
    """``params`` with ``null_models`` canonical (a tuple in ``NULL_KINDS`` order, None when empty)
    and ``null_seeds`` back at its default when there are no null models (it then changes nothing,
    so it must not change the key)."""
    out = dict(params)
    kinds = null_kinds(out.get("null_models"))
    out["null_models"] = kinds or None
    seeds = out.get("null_seeds")
    if not kinds or seeds is None:
        out["null_seeds"] = DEFAULT_NULL_SEEDS
    return out


def null_normalizer(run: str, params: dict[str, Any], store: Any) -> dict[str, Any]:
    """``normalize`` of ``register_analysis`` for an analysis that declares ``NULL_PARAMS``."""
    return normalize_nulls(params)


# -- the null models ---------------------------------------------------------------------------------
def null_model(model: nn.Module, kind: str, seed: int = 0, *, input_shape: Iterable[int] | None = None) -> nn.Module:
    """A new model: ``model``'s architecture with the ``kind`` null's weights (module docstring).
    ``input_shape`` (no batch dimension) as ``prunable_layers`` takes it: default the model's own."""
    check_kind(kind)
    seed = int(seed)
    shape = tuple(input_shape) if input_shape is not None else None
    out = fold_masks(_copy(model))
    weights = {info.name: tensor_attribute(get_layer(out, info.name), "weight") for info in prunable_layers(out, shape)}
    zero = {name: (w.detach() == 0) for name, w in weights.items()}
    if kind == "init":
        _initialise(out, seed)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    with torch.no_grad():
        for name, w in weights.items():
            keep = ~zero[name]
            flat = w.detach().reshape(-1).to("cpu").clone()
            live = keep.reshape(-1).to("cpu")
            n = int(live.sum())
            if kind == "shuffled" and n > 1:
                values = flat[live]
                flat[live] = values[torch.randperm(n, generator=gen)]
            elif kind == "gaussian" and n:
                rms = float(flat[live].double().pow(2).mean().sqrt())
                flat[live] = (torch.randn(n, generator=gen, dtype=torch.float64) * rms).to(flat.dtype)
            flat[~live] = 0  # init: a pruned weight stays pruned
            w.copy_(flat.reshape(w.shape).to(w.device))
    return out


def _copy(model: nn.Module) -> nn.Module:
    """A deep copy of ``model``; a tensor attribute computed with autograd (the ``weight`` a pruning
    parametrisation recomputes outside ``no_grad``, which deepcopy refuses) is copied detached."""
    memo: dict[int, Any] = {}
    for module in model.modules():
        for value in vars(module).values():
            if isinstance(value, torch.Tensor) and not value.is_leaf:
                memo[id(value)] = value.detach().clone()
    return copy.deepcopy(model, memo)


def _initialise(model: nn.Module, seed: int) -> None:
    """Every parameter and buffer of ``model`` as a fresh initialisation under ``seed`` makes it,
    IN PLACE; the global RNG state is left as it was."""
    devices = sorted({p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"})
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        fresh = _rebuilt(model)
        if fresh is None:
            for module in model.modules():
                reset = getattr(module, "reset_parameters", None)
                if callable(reset):
                    reset()
            return
    with torch.no_grad():
        theirs = dict(fresh.state_dict())
        for name, tensor in model.state_dict().items():
            tensor.copy_(theirs[name].to(device=tensor.device, dtype=tensor.dtype))


def _rebuilt(model: nn.Module) -> nn.Module | None:
    """A fresh zoo build of ``model``'s architecture (on CPU, from the current RNG state), or None
    when it is no zoo model or the rebuild does not have exactly its parameters and buffers."""
    name = getattr(model, "zoo_name", None)
    if not isinstance(name, str):
        return None
    from . import build  # lazy: the zoo registry imports this package's modules

    try:
        fresh = build(
            name,
            input_shape=getattr(model, "input_shape", None),
            num_classes=getattr(model, "num_classes", None),
            **dict(getattr(model, "zoo_params", {}) or {}),
        )
    except (NNGeoError, ImportError):  # e.g. timm gone since it was stored: reset its modules instead
        return None
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in fresh.state_dict().items()}
    return fresh if ours == theirs else None


# -- null models in an analysis's table -------------------------------------------------------------
def null_rows(
    model: nn.Module,
    compute: Callable[[nn.Module, Any], pd.DataFrame],
    params: dict[str, Any],
    progress: Any = None,
    *,
    input_shape: Iterable[int] | None = None,
) -> pd.DataFrame:
    """``compute(model, progress)``, plus, when ``params["null_models"]`` names any, the same for
    every null kind × seed 0..``null_seeds``-1, stacked with columns ``model`` ("trained" or the
    kind) and ``seed`` (empty for the trained rows) in front. Without null models the table is
    ``compute``'s own, unchanged (no new columns)."""
    p = normalize_nulls(params)
    kinds = p["null_models"] or ()
    if not kinds:
        return compute(model, progress)
    seeds = range(int(p["null_seeds"]))
    jobs: list[tuple[str, int | None]] = [(TRAINED, None), *((k, s) for k in kinds for s in seeds)]
    parts = []
    for i, (kind, seed) in enumerate(jobs):
        sub = None if progress is None else progress.sub(i / len(jobs), (i + 1) / len(jobs))
        if sub is not None:
            sub.update(0.0, "trained network" if seed is None else f"null model {kind}, seed {seed}", force=True)
            sub.check()
        net = model if seed is None else null_model(model, kind, seed, input_shape=input_shape)
        table = compute(net, sub).reset_index(drop=True)
        table.insert(0, "seed", pd.array([seed] * len(table), dtype="Int64"))
        table.insert(0, "model", kind)
        parts.append(table)
    return pd.concat(parts, ignore_index=True)


def trained_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of the network itself: a table with null-model rows (a ``model`` column) less
    them and its ``model`` / ``seed`` columns; any other table as it is (old results included)."""
    if table is None or "model" not in table.columns:
        return table
    rows = table[table["model"].astype(str) == TRAINED]
    return rows.drop(columns=[c for c in ("model", "seed") if c in rows.columns]).reset_index(drop=True)
