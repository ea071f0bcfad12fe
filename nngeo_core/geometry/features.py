"""Feature maps Φ(x) = a hidden layer's post-activation output, for any model.

"Hidden layer k": zoo models (``FeedForward``) use the zoo's own list
``model.hidden_activation_indices`` so every nngeo capability means the same layer. Any other
model uses a rule on the order of calls in the forward pass: a call of an activation module
counts when a Linear or Conv module was called since the previous counted activation. For
``Sequential(Flatten, Linear, act, Linear, act, ..., Linear)`` both give the outputs after each
activation that follows a Linear; ``layer=-1`` is the last one. ``layer="output"`` takes the
model's own output (logits) as Φ.

The feature map runs on a private float64 copy of the model with a forward hook: the hook of the
chosen call stops the forward pass (only while Φ is being evaluated), so later layers are never
computed, and Φ works under ``torch.func`` transforms (vmap, jacfwd, jacrev).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import NNGeoError, one_line
from .activations import is_activation, is_affine
from .jets import JET_MAX_DIM, jet_modules
from .model_copy import float64_copy, working_device
from .points import input_shape_of


class _StopForward(Exception):
    """Raised by the hook of the chosen layer to end the forward pass early."""

    def __init__(self, value: torch.Tensor):
        super().__init__("feature reached")
        self.value = value


@dataclass
class FeatureMap:
    """Φ for one sample: ``fn(x)`` maps an input of ``input_shape`` to a flat vector of ``width``."""

    fn: Callable[[torch.Tensor], torch.Tensor]
    model: nn.Module  # the float64 copy that ``fn`` runs
    layer: int | str  # resolved index (0-based) or "output"
    n_layers: int  # number of hidden layers found
    width: int  # n, the number of features
    input_shape: tuple[int, ...]
    device: torch.device
    # modules up to the layer when Taylor jets can run through them (see jets.py), else None
    jet_modules: list[nn.Module] | None = None
    # floats in all module outputs of one forward pass up to the layer (memory planning)
    activation_numel: int = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


@dataclass
class _Call:
    module: nn.Module
    call_no: int  # how many times this module was called before this call
    shape: torch.Size  # output shape (with the batch dimension)
    numel_so_far: int  # floats in all leaf-module outputs up to and including this call


def _trace(model: nn.Module, x: torch.Tensor) -> list[_Call]:
    """Every call of a leaf module (and of the model's own children) in forward order."""
    calls: list[_Call] = []
    counts: dict[nn.Module, int] = {}
    state = {"numel": 0}
    children = set(model.children())

    def hook(mod: nn.Module, inputs: tuple, output: object) -> None:
        if not isinstance(output, torch.Tensor):
            return
        leaf = not any(True for _ in mod.children())
        if leaf:
            state["numel"] += output[0].numel()
        k = counts.get(mod, 0)
        counts[mod] = k + 1
        calls.append(_Call(mod, k, output.shape, state["numel"]))

    handles = [
        m.register_forward_hook(hook)
        for m in model.modules()
        if m is not model and (m in children or not any(True for _ in m.children()))
    ]
    try:
        with torch.no_grad():
            out = model(x)
    except Exception as exc:
        raise NNGeoError(
            f"the model does not accept inputs of shape {tuple(x.shape[1:])}: {one_line(exc, typed=False)}"
        ) from None
    finally:
        for h in handles:
            h.remove()
    if isinstance(out, torch.Tensor):
        calls.append(_Call(model, 0, out.shape, state["numel"]))
    return calls


def hidden_layer_calls(model: nn.Module, x: torch.Tensor) -> list[_Call]:
    """The calls whose outputs are the hidden layers, in forward order.

    Zoo models (``hidden_activation_indices``) use the zoo's own definition, so every nngeo
    capability agrees on what "hidden layer k" is; any other model uses the generic rule: an
    activation call counts when a Linear/Conv call happened since the previous counted one.
    """
    return _hidden_among(model, _trace(model, x))


def _hidden_among(model: nn.Module, calls: list[_Call]) -> list[_Call]:
    """The hidden-layer calls among a ``_trace`` of ``model`` (see ``hidden_layer_calls``)."""
    indices = getattr(model, "hidden_activation_indices", None)
    if isinstance(model, nn.Sequential) and indices is not None:
        children = list(model)
        wanted = {(children[i], sum(1 for c in children[:i] if c is children[i])) for i in indices}
        return [c for c in calls if (c.module, c.call_no) in wanted]
    found: list[_Call] = []
    affine_seen = False
    for c in calls:
        if c.module is model:
            continue
        if is_affine(c.module):
            affine_seen = True
        elif is_activation(c.module) and affine_seen:
            found.append(c)
            affine_seen = False
    return found


def count_hidden_layers(model: nn.Module, input_shape: tuple[int, ...] | None = None) -> int:
    shape = input_shape or input_shape_of(model)
    param = next(iter(model.parameters()), None)
    dtype = param.dtype if param is not None else torch.float32
    device = param.device if param is not None else "cpu"
    was_training = model.training
    model.eval()
    try:
        return len(hidden_layer_calls(model, torch.zeros((1, *shape), dtype=dtype, device=device)))
    finally:
        model.train(was_training)


def feature_map(
    model: nn.Module,
    layer: int | str = -1,
    *,
    input_shape: tuple[int, ...] | None = None,
    device: str | torch.device = "auto",
) -> FeatureMap:
    """Φ = the post-activation output of hidden layer ``layer`` (negative counts from the end),
    or the model's output for ``layer="output"``.

    Returns a ``FeatureMap`` whose ``fn`` takes ONE input (no batch dimension) and returns the
    flattened features in float64; wrap it in ``torch.func.vmap`` for batches.
    """
    work = float64_copy(model, device)
    dev = next(work.parameters()).device if any(True for _ in work.parameters()) else working_device(device)
    shape = tuple(input_shape) if input_shape is not None else input_shape_of(model)
    probe = torch.zeros((1, *shape), dtype=torch.float64, device=dev)
    calls = _trace(work, probe)
    hidden = _hidden_among(work, calls)

    if layer == "output":
        last = calls[-1]
        width = int(torch.Size(last.shape[1:]).numel())

        def output(x: torch.Tensor) -> torch.Tensor:
            return work(x.unsqueeze(0)).reshape(-1)

        return FeatureMap(
            output, work, "output", len(hidden), width, shape, dev, _jets(work, None, shape), last.numel_so_far
        )

    if isinstance(layer, bool) or not isinstance(layer, int):
        raise NNGeoError(f"layer must be an integer hidden-layer index or 'output', got {layer!r}")
    if not hidden:
        raise NNGeoError(
            "the model has no hidden activation layer after a Linear/Conv layer; "
            "use layer='output' to analyse the model's output"
        )
    if not -len(hidden) <= layer < len(hidden):
        raise NNGeoError(
            f"layer {layer} does not exist: the model has {len(hidden)} hidden layers "
            f"(use 0..{len(hidden) - 1} or -1 for the last)"
        )
    index = layer % len(hidden)
    target = hidden[index]
    width = int(torch.Size(target.shape[1:]).numel())
    # the hook only acts inside fn, so FeatureMap.model still runs the whole network
    counter = {"n": 0, "active": False}

    def stop_hook(mod: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        if not counter["active"]:
            return
        if counter["n"] == target.call_no:
            raise _StopForward(output)
        counter["n"] += 1

    target.module.register_forward_hook(stop_hook)  # lives on the private copy only

    def fn(x: torch.Tensor) -> torch.Tensor:
        counter["n"], counter["active"] = 0, True
        try:
            work(x.unsqueeze(0))
        except _StopForward as stop:
            return stop.value.reshape(-1)
        finally:
            counter["active"] = False
        raise NNGeoError("the chosen hidden layer was not reached in the forward pass")

    return FeatureMap(
        fn,
        work,
        index,
        len(hidden),
        width,
        shape,
        dev,
        _jets(work, (target.module, target.call_no), shape),
        target.numel_so_far,
    )


def _jets(work: nn.Module, target: tuple[nn.Module, int] | None, shape: tuple[int, ...]) -> list[nn.Module] | None:
    if len(shape) != 1 or shape[0] > JET_MAX_DIM:
        return None
    return jet_modules(work, target, shape[0])
