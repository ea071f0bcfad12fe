"""The weight layers of any ``nn.Module`` for the weight-based analyses, with a reason for the rest.

``analysis_layers(model)`` returns, in forward order, every ``nn.Linear`` and ``nn.Conv2d`` that
the forward pass uses (``prunable_layers`` gives their order and conv geometry) with its
*effective* weight, plus one ``SkippedLayer`` with a reason for every other module that owns
weights, so nothing is dropped silently:

* A ``BatchNorm2d`` whose input is a conv's output and nothing else reads that output is folded into
  the conv: ``w' = w * gamma / sqrt(running_var + eps)`` per output channel (eval-mode batch norm
  is an affine map per channel, so conv+BN is one conv with weight ``w'``; the bias does not enter
  weight graphs). The layer's ``note`` says so ("batch norm bn1 folded"). The structure comes from
  ``torch.fx.symbolic_trace``; a model fx cannot trace (data-dependent control flow) falls back to
  forward hooks (a batch norm whose input tensor *is* a conv's output tensor), and the note says so.
* Grouped and depthwise convs are analysed with the existing conv convention (the layer graph is
  ``groups`` disjoint blocks); the note names the groups.
* Pooling, flatten, activations and residual additions own no weights: they are not layers.
* Anything else with weights (attention, recurrent, embedding, Conv1d/3d, transposed convs, layer
  or group norm, a batch norm that cannot be folded) is a ``SkippedLayer`` with its reason.

Skip connections: every analysis that uses these layers treats each layer as its own bipartite
graph (persistence, critical compression, MST overlap are per layer), so a residual addition
changes nothing there.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
import torch.fx
from torch import nn

from ..errors import NNGeoError, one_line
from .base import LayerInfo, get_layer, model_input_shape, prunable_layers, tensor_attribute
from .parametrisations import fold_masks

_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


@dataclass(frozen=True)
class AnalysisLayer:
    info: LayerInfo
    weight: torch.Tensor  # effective weight (batch norm folded), detached
    note: str = ""

    @property
    def name(self) -> str:
        return self.info.name


@dataclass(frozen=True)
class SkippedLayer:
    name: str
    module: str  # the module's class name
    reason: str


@dataclass
class LayerPlan:
    layers: list[AnalysisLayer]
    skipped: list[SkippedLayer]
    folded: dict[str, str] = field(default_factory=dict)  # batch norm name -> conv name
    structure: str = "fx"  # how conv -> batch norm pairs were found: "fx" or "hooks (...)"

    @property
    def notes(self) -> dict[str, str]:
        return {layer.name: layer.note for layer in self.layers}


def _fx_pairs(model: nn.Module) -> dict[str, str]:
    """conv name -> batch norm name for every BN that alone reads a conv's output (fx graph)."""
    traced = torch.fx.symbolic_trace(model)
    modules = dict(model.named_modules())
    calls: dict[str, int] = {}
    for node in traced.graph.nodes:
        if node.op == "call_module":
            calls[str(node.target)] = calls.get(str(node.target), 0) + 1
    pairs = {}
    for node in traced.graph.nodes:
        if node.op != "call_module" or not isinstance(modules.get(node.target), nn.BatchNorm2d):
            continue
        src = node.args[0] if node.args else None
        if not isinstance(src, torch.fx.Node) or src.op != "call_module":
            continue
        # a conv read elsewhere too (a skip), or a module called twice, is not folded
        alone = len(src.users) == 1 and calls[str(src.target)] == 1 and calls[str(node.target)] == 1
        if isinstance(modules.get(src.target), nn.Conv2d) and alone:
            pairs[str(src.target)] = str(node.target)
    return pairs


def _hook_pairs(model: nn.Module, shape: tuple[int, ...]) -> dict[str, str]:
    """conv name -> batch norm name where the BN's input is the very tensor the conv returned."""
    names = {m: n for n, m in model.named_modules()}
    # the outputs are kept alive in ``produced`` so no later tensor can reuse their id
    produced: dict[int, tuple[str, torch.Tensor]] = {}
    pairs: dict[str, str] = {}

    def conv_hook(mod, inputs, output):
        produced[id(output)] = (names[mod], output)

    def bn_hook(mod, inputs):
        hit = produced.get(id(inputs[0]))
        if hit is not None and hit[0] not in pairs:
            pairs[hit[0]] = names[mod]

    handles = [m.register_forward_hook(conv_hook) for m in names if isinstance(m, nn.Conv2d)]
    handles += [m.register_forward_pre_hook(bn_hook) for m in names if isinstance(m, nn.BatchNorm2d)]
    param = next(model.parameters())
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros((1, *shape), dtype=param.dtype, device=param.device))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return pairs


def fold_scale(bn: nn.BatchNorm2d) -> torch.Tensor:
    """Per-channel factor ``gamma / sqrt(running_var + eps)`` of an eval-mode batch norm."""
    if bn.running_var is None:
        raise NNGeoError("batch norm without running statistics")
    scale = 1.0 / torch.sqrt(bn.running_var.detach() + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight.detach()
    return scale


def _skip_reason(module: nn.Module) -> str:
    kind = type(module).__name__
    if isinstance(module, nn.MultiheadAttention):
        return "attention: not supported (with its projections)"
    if isinstance(module, (nn.RNNBase, nn.RNNCellBase)):
        return f"recurrent layer {kind}: not supported"
    if isinstance(module, (nn.Embedding, nn.EmbeddingBag)):
        return "embedding: not supported"
    if isinstance(module, _BATCH_NORMS):
        return f"{kind} not directly after a conv: not folded, not a weight layer"
    if isinstance(module, (nn.LayerNorm, nn.GroupNorm, nn.InstanceNorm2d)):
        return f"{kind}: normalisation, not a weight layer"
    if isinstance(module, nn.modules.conv._ConvNd):
        return f"{kind}: only Linear and Conv2d layers have layer graphs here"
    return f"{kind}: has weights but is not a Linear or Conv2d layer, not supported"


def _conv_note(info: LayerInfo) -> str:
    if info.groups == 1:
        return ""
    c_in = info.weight_shape[1] * info.groups
    kind = "depthwise" if info.groups == c_in else "grouped"
    return f"{kind} conv: groups={info.groups}, the graph is {info.groups} disjoint blocks"


def analysis_layers(model: nn.Module, input_shape: Iterable[int] | None = None, *, fold_bn: bool = True) -> LayerPlan:
    """The model's weight layers with effective weights and notes, and the skipped modules."""
    if not isinstance(model, nn.Module):
        raise NNGeoError(f"expected a torch nn.Module, got {type(model).__name__}")
    shape = tuple(int(s) for s in input_shape) if input_shape is not None else model_input_shape(model)
    infos = prunable_layers(model, shape)
    pairs: dict[str, str] = {}
    structure = "fx"
    if fold_bn and any(isinstance(m, nn.BatchNorm2d) for m in model.modules()):
        try:
            pairs = _fx_pairs(model)
        except Exception as exc:  # fx cannot trace data-dependent control flow: use the forward pass
            structure = f"hooks (fx trace failed: {one_line(exc, typed=False)})"
            pairs = _hook_pairs(model, shape)
    modules = dict(model.named_modules())
    layers, folded, skipped = [], {}, []
    for info in infos:
        weight = tensor_attribute(get_layer(model, info.name), "weight").detach()
        notes = [_conv_note(info)] if info.kind == "conv" else []
        bn_name = pairs.get(info.name)
        if bn_name is not None:
            bn = modules[bn_name]
            assert isinstance(bn, nn.BatchNorm2d)  # _fx_pairs / _hook_pairs only pair BatchNorm2d
            try:
                scale = fold_scale(bn).to(weight.device, weight.dtype)
            except NNGeoError as exc:
                skipped.append(SkippedLayer(bn_name, type(bn).__name__, f"{exc}: not folded into {info.name}"))
            else:
                weight = weight * scale.reshape(-1, 1, 1, 1)
                folded[bn_name] = info.name
                how = "" if structure == "fx" else " (found by forward hooks)"
                notes.append(f"batch norm {bn_name} folded{how}")
        layers.append(AnalysisLayer(info, weight, "; ".join(n for n in notes if n)))
    used = {info.name for info in infos}
    reported = {s.name for s in skipped}
    covered: list[str] = []  # skipped modules: their submodules (attention's out_proj) are part of that row
    for name, module in model.named_modules():
        if name in used or name in folded or name in reported or any(name.startswith(c + ".") for c in covered):
            continue
        if isinstance(module, (nn.MultiheadAttention, nn.RNNBase)):
            covered.append(name)
        if not any(p is not None for p in module._parameters.values()):
            continue  # owns no weights of its own (containers, activations, pooling, flatten)
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            reason = "not used by the forward pass"
        elif isinstance(module, _BATCH_NORMS) and not fold_bn:
            reason = f"{type(module).__name__}: not folded (fold_bn=False), not a weight layer"
        else:
            reason = _skip_reason(module)
        skipped.append(SkippedLayer(name, type(module).__name__, reason))
    return LayerPlan(layers, skipped, folded, structure)


def fold_batchnorm(model: nn.Module, input_shape: Iterable[int] | None = None) -> tuple[nn.Module, LayerPlan]:
    """A copy of ``model`` whose foldable batch norms are folded into their convs and replaced by
    ``nn.Identity`` (so code that reads ``conv.weight`` sees the effective weight), and the plan."""
    plan = analysis_layers(model, input_shape)
    clone = fold_masks(copy.deepcopy(model))  # pruning masks made permanent, so weight is a parameter
    with torch.no_grad():
        for bn_name, conv_name in plan.folded.items():
            conv, bn = get_layer(clone, conv_name), get_layer(clone, bn_name)
            assert isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d)
            scale = fold_scale(bn).to(conv.weight.dtype)
            shift = bn.bias.detach() if bn.bias is not None else torch.zeros_like(scale)
            bias = conv.bias.detach() if conv.bias is not None else torch.zeros_like(scale)
            mean = bn.running_mean if bn.running_mean is not None else torch.zeros_like(scale)
            new_bias = (bias - mean) * scale + shift
            conv.weight.mul_(scale.reshape(-1, 1, 1, 1))
            if conv.bias is None:
                conv.bias = nn.Parameter(new_bias.clone())
            else:
                conv.bias.copy_(new_bias)
            parent, _, leaf = bn_name.rpartition(".")
            setattr(get_layer(clone, parent) if parent else clone, leaf, nn.Identity())
    return clone, plan
