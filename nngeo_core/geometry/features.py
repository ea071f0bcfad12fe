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

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import NNGeoError
from ..settings import float64_device

_ACTIVATION_TYPES = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.PReLU,
    nn.RReLU,
    nn.ELU,
    nn.SELU,
    nn.CELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Tanh,
    nn.Sigmoid,
    nn.Softplus,
    nn.Softsign,
    nn.Hardtanh,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.LogSigmoid,
    nn.Tanhshrink,
    nn.Softshrink,
    nn.Hardshrink,
)
# custom activation modules (e.g. an Erf module in the zoo) are recognised by their class name
_ACTIVATION_NAME_PARTS = ("erf", "relu", "tanh", "sigmoid", "gelu", "softplus", "swish", "activation")


def is_activation(module: nn.Module) -> bool:
    if isinstance(module, _ACTIVATION_TYPES):
        return True
    if any(True for _ in module.children()) or any(True for _ in module.parameters(recurse=False)):
        return False
    name = type(module).__name__.lower()
    return any(part in name for part in _ACTIVATION_NAME_PARTS)


def _is_affine(module: nn.Module) -> bool:
    return isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d))


class _StopForward(Exception):
    """Raised by the hook of the chosen layer to end the forward pass early."""

    def __init__(self, value: torch.Tensor):
        super().__init__("feature reached")
        self.value = value


def working_device(device: str = "auto") -> torch.device:
    """The device for float64 geometry: CUDA when present; MPS has no float64, so it means CPU."""
    return torch.device(float64_device(device))


def float64_copy(
    model: nn.Module, device: str | torch.device = "auto", *, dtype: torch.dtype = torch.float64
) -> nn.Module:
    """A private copy (float64 unless ``dtype`` says otherwise) in eval mode, without gradients.

    The caller's model is never changed.
    """
    if not isinstance(model, nn.Module):
        raise NNGeoError(f"expected a torch nn.Module, got {type(model).__name__}")
    dev = device if isinstance(device, torch.device) else working_device(device)
    for name, p in list(model.named_parameters()) + list(model.named_buffers()):
        if p.is_floating_point() and not torch.isfinite(p).all():
            raise NNGeoError(f"the model's {name} holds NaN or infinite values; retrain or reload it")
    copied = copy.deepcopy(model).to(device=dev, dtype=dtype).eval()
    for m in copied.modules():
        if getattr(m, "inplace", False) is True:
            m.inplace = False  # in-place activations do not mix with torch.func transforms
    for p in copied.parameters():
        p.requires_grad_(False)
    return copied


def input_shape_of(model: nn.Module, points: torch.Tensor | None = None) -> tuple[int, ...]:
    shape = getattr(model, "input_shape", None)
    if shape is not None:
        return tuple(int(s) for s in shape)
    if points is not None:
        return tuple(points.shape[1:])
    raise NNGeoError("the model does not say its input shape; set model.input_shape = (d,) or (C, H, W)")


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

    def hook(mod, inputs, output):
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
            f"the model does not accept inputs of shape {tuple(x.shape[1:])}: "
            f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
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
    found, affine_seen = [], False
    for c in calls:
        if c.module is model:
            continue
        if _is_affine(c.module):
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

        def fn(x: torch.Tensor) -> torch.Tensor:
            return work(x.unsqueeze(0)).reshape(-1)

        return FeatureMap(
            fn, work, "output", len(hidden), width, shape, dev, _jets(work, None, shape), last.numel_so_far
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

    def stop_hook(mod, inputs, output):
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
    from .jets import JET_MAX_DIM, jet_modules

    if len(shape) != 1 or shape[0] > JET_MAX_DIM:
        return None
    return jet_modules(work, target, shape[0])
