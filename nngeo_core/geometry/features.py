"""Feature maps Φ(x) = a hidden layer's post-activation output, for any model.

"Hidden layer k": zoo models (``FeedForward``) use the zoo's own list
``model.hidden_activation_indices`` so every nngeo capability means the same layer. Any other
model uses a rule on the order of calls in the forward pass: a call of an activation module
counts when a Linear or Conv module was called since the previous counted activation. For
``Sequential(Flatten, Linear, act, Linear, act, ..., Linear)`` both give the outputs after each
activation that follows a Linear; ``layer=-1`` is the last one. ``layer="output"`` takes the
model's own output (logits) as Φ.

Which representation that is for networks from elsewhere:

* a torchvision upload is the registered model ``torchvision``, a ``FeedForward`` [body, head]
  whose one hidden layer is the body's output: the pooled features, i.e. the input of the final
  classifier Linear (512 values for resnet18);
* a custom ``nn.Sequential`` CNN (Conv-ReLU-MaxPool-Conv-ReLU-Flatten-Linear) follows the generic
  rule: ``layer=-1`` is the last ReLU's output, which the Flatten hands to the final Linear;
* a model may name, in its attribute ``REPRESENTATION_ATTR`` (``nngeo_representation_input``),
  the submodule whose *input* is its last hidden representation: that input is appended as the
  last hidden layer (after the generic rule's layers called before it). ONNX uploads set it to
  their final Gemm/Linear when what feeds it is not already an activation's output (e.g. a
  global average pool), see ``models.foreign.onnx_file.representation_module``.

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

REPRESENTATION_ATTR = "nngeo_representation_input"


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
    # multiply-adds of one forward pass up to the layer, per point (cost planning)
    macs: int = 0
    # a zoo model's children after the layer (logits = head(Φ reshaped to feature_shape)), else None
    head: nn.Module | None = None
    feature_shape: tuple[int, ...] = ()

    def logits_from_features(self, phi: torch.Tensor) -> torch.Tensor | None:
        """The model's output for a batch of features Φ (N, n), when ``head`` is known; else None."""
        if self.head is None:
            return None
        return self.head(phi.reshape(len(phi), *self.feature_shape))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


@dataclass
class _Call:
    module: nn.Module
    call_no: int  # how many times this module was called before this call
    shape: torch.Size  # output shape (with the batch dimension)
    numel_so_far: int  # floats in all leaf-module outputs up to and including this call
    macs_so_far: int = 0  # multiply-adds of all leaf-module calls up to and including this call
    kind: str = "output"  # "input": the call's input is the representation (REPRESENTATION_ATTR)
    value: torch.Tensor | None = None  # the probe's tensor, kept alive so addresses are never reused


def _macs(mod: nn.Module, output: torch.Tensor) -> int:
    """Multiply-adds of one call for one sample: convs and Linears by their weights, others elementwise."""
    out = output[0].numel()
    if isinstance(mod, nn.modules.conv._ConvNd):
        return out * (mod.in_channels // mod.groups) * int(torch.Size(mod.kernel_size).numel())
    if isinstance(mod, nn.Linear):
        return out * mod.in_features
    return out


def representation_module(model: nn.Module) -> nn.Module | None:
    """The submodule whose input is ``model``'s last hidden representation: named by the model's
    attribute ``REPRESENTATION_ATTR`` or, for an ``fx.GraphModule`` (whose copies keep only its
    ``meta`` of its own attributes), by ``model.meta[REPRESENTATION_ATTR]``."""
    meta = getattr(model, "meta", None)
    name = getattr(model, REPRESENTATION_ATTR, meta.get(REPRESENTATION_ATTR) if isinstance(meta, dict) else None)
    if not isinstance(name, str):
        return None
    try:
        return model.get_submodule(name)
    except AttributeError:
        raise NNGeoError(f"the model names {name!r} as its representation's module, but has no such module") from None


def _trace(model: nn.Module, x: torch.Tensor) -> list[_Call]:
    """Every call of a leaf module (and of the model's own children) in forward order; the
    representation module's calls (``REPRESENTATION_ATTR``) also as "input" calls, before them."""
    calls: list[_Call] = []
    counts: dict[nn.Module, int] = {}
    input_counts: dict[nn.Module, int] = {}
    state = {"numel": 0, "macs": 0}
    children = set(model.children())

    def hook(mod: nn.Module, inputs: tuple, output: object) -> None:
        if not isinstance(output, torch.Tensor):
            return
        leaf = not any(True for _ in mod.children())
        if leaf:
            state["numel"] += output[0].numel()
            state["macs"] += _macs(mod, output)
        k = counts.get(mod, 0)
        counts[mod] = k + 1
        calls.append(_Call(mod, k, output.shape, state["numel"], state["macs"], value=output))

    def pre_hook(mod: nn.Module, inputs: tuple) -> None:
        if not inputs or not isinstance(inputs[0], torch.Tensor):
            return
        k = input_counts.get(mod, 0)
        input_counts[mod] = k + 1
        calls.append(_Call(mod, k, inputs[0].shape, state["numel"], state["macs"], "input", inputs[0]))

    handles = [
        m.register_forward_hook(hook)
        for m in model.modules()
        if m is not model and (m in children or not any(True for _ in m.children()))
    ]
    rep = representation_module(model)
    if rep is not None:
        handles.append(rep.register_forward_pre_hook(pre_hook))
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
        calls.append(_Call(model, 0, out.shape, state["numel"], state["macs"]))
    return calls


def hidden_layer_calls(model: nn.Module, x: torch.Tensor) -> list[_Call]:
    """The calls whose outputs are the hidden layers, in forward order.

    Zoo models (``hidden_activation_indices``) use the zoo's own definition, so every nngeo
    capability agrees on what "hidden layer k" is; any other model uses the generic rule: an
    activation call counts when a Linear/Conv call happened since the previous counted one; a
    model naming its representation's module (``REPRESENTATION_ATTR``) ends the list with that
    module's (last) input.
    """
    return _hidden_among(model, _trace(model, x))


def _hidden_among(model: nn.Module, calls: list[_Call]) -> list[_Call]:
    """The hidden-layer calls among a ``_trace`` of ``model`` (see ``hidden_layer_calls``)."""
    indices = getattr(model, "hidden_activation_indices", None)
    if isinstance(model, nn.Sequential) and indices is not None:
        children = list(model)
        wanted = {(children[i], sum(1 for c in children[:i] if c is children[i])) for i in indices}
        return [c for c in calls if c.kind == "output" and (c.module, c.call_no) in wanted]
    inputs = [i for i, c in enumerate(calls) if c.kind == "input"]
    if not inputs:
        return _generic_hidden(model, calls)
    # the generic rule's layers before the representation module's last input, then that input,
    # unless it is the last of them as it is (a view of it: a Flatten after the last ReLU)
    found, rep = _generic_hidden(model, calls[: inputs[-1]]), calls[inputs[-1]]
    if found and _same_values(found[-1], rep):
        return found
    return [*found, rep]


def _same_values(a: _Call, b: _Call) -> bool:
    """Whether two traced tensors are views of the same memory holding the same number of values
    (the trace keeps every tensor alive, so an address is never reused within it)."""
    if a.value is None or b.value is None:
        return False
    return a.value.data_ptr() == b.value.data_ptr() and a.value.numel() == b.value.numel()


def _generic_hidden(model: nn.Module, calls: list[_Call]) -> list[_Call]:
    """Activation calls with a Linear/Conv call since the previous counted one."""
    found: list[_Call] = []
    affine_seen = False
    for c in calls:
        if c.module is model or c.kind != "output":
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
            output,
            work,
            "output",
            len(hidden),
            width,
            shape,
            dev,
            _jets(work, None, shape),
            last.numel_so_far,
            last.macs_so_far,
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

    def stop_pre_hook(mod: nn.Module, inputs: tuple) -> None:
        if not counter["active"]:
            return
        if counter["n"] == target.call_no:
            raise _StopForward(inputs[0])
        counter["n"] += 1

    if target.kind == "input":
        target.module.register_forward_pre_hook(stop_pre_hook)  # lives on the private copy only
    else:
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
        _jets(work, (target.module, target.call_no), shape) if target.kind == "output" else None,
        target.numel_so_far,
        target.macs_so_far,
        _head_after(work, target),
        tuple(target.shape[1:]),
    )


def _head_after(work: nn.Module, target: _Call) -> nn.Module | None:
    """The children of a zoo model after the one whose output is ``target`` (None otherwise)."""
    indices = getattr(work, "hidden_activation_indices", None)
    if not isinstance(work, nn.Sequential) or indices is None or target.kind != "output" or target.call_no:
        return None
    children = list(work)
    for i in indices:
        if children[i] is target.module and all(c is not target.module for c in children[i + 1 :]):
            return work[i + 1 :]
    return None


def _jets(work: nn.Module, target: tuple[nn.Module, int] | None, shape: tuple[int, ...]) -> list[nn.Module] | None:
    if len(shape) != 1 or shape[0] > JET_MAX_DIM:
        return None
    return jet_modules(work, target, shape[0])
