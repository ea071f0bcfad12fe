"""What every model exposes: its ordered prunable layers and their inputs/outputs.

A prunable layer is an ``nn.Linear`` ("dense") or ``nn.Conv2d`` ("conv") weight. Order is the
order in which the forward pass uses them, found by running one dummy input through the model
with hooks, so it works for zoo models and for any uploaded ``nn.Module`` alike.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import NNGeoError, one_line


@dataclass(frozen=True)
class LayerInfo:
    name: str  # qualified module name, e.g. "layers.0"
    kind: str  # "dense" | "conv"
    weight_shape: tuple[int, ...]  # (out, in) or (out, in/groups, kh, kw)
    input_size: tuple[int, int] | None = None  # conv: spatial (H, W) of the input, before padding
    output_size: tuple[int, int] | None = None  # conv: spatial (H, W) of the output
    stride: tuple[int, int] | None = None
    padding: tuple[int, int] | None = None
    dilation: tuple[int, int] | None = None
    groups: int = 1

    @property
    def n_weights(self) -> int:
        n = 1
        for s in self.weight_shape:
            n *= s
        return n


def _is_prunable(m: nn.Module) -> bool:
    return isinstance(m, (nn.Linear, nn.Conv2d))


def model_input_shape(model: nn.Module) -> tuple[int, ...]:
    shape = getattr(model, "input_shape", None)
    if shape is None:
        raise NNGeoError("the model does not say its input shape; pass input_shape=(C, H, W) or (d,)")
    return tuple(int(s) for s in shape)


def prunable_layers(model: nn.Module, input_shape: Iterable[int] | None = None) -> list[LayerInfo]:
    """Ordered list of the model's dense/conv layers with conv spatial sizes.

    ``input_shape`` (without batch dimension) defaults to ``model.input_shape`` (zoo models set it).
    """
    shape = tuple(input_shape) if input_shape is not None else model_input_shape(model)
    names = {m: n for n, m in model.named_modules() if _is_prunable(m)}
    if not names:
        raise NNGeoError("the model has no Linear or Conv2d layers to analyse or prune")
    seen: list[LayerInfo] = []
    done: set[str] = set()

    def hook(mod, inputs, output):
        name = names[mod]
        if name in done:  # a module used twice is one layer
            return
        done.add(name)
        w = mod.weight
        if isinstance(mod, nn.Conv2d):
            x = inputs[0]
            seen.append(
                LayerInfo(
                    name=name,
                    kind="conv",
                    weight_shape=tuple(w.shape),
                    input_size=(int(x.shape[-2]), int(x.shape[-1])),
                    output_size=(int(output.shape[-2]), int(output.shape[-1])),
                    stride=_pair(mod.stride),
                    padding=_padding(mod),
                    dilation=_pair(mod.dilation),
                    groups=int(mod.groups),
                )
            )
        else:
            seen.append(LayerInfo(name=name, kind="dense", weight_shape=tuple(w.shape)))

    handles = [m.register_forward_hook(hook) for m in names]
    try:
        param = next(model.parameters())
        x = torch.zeros((1, *shape), dtype=param.dtype, device=param.device)
        was_training = model.training
        model.eval()
        with torch.no_grad():
            model(x)
        model.train(was_training)
    except NNGeoError:
        raise
    except Exception as exc:  # a shape mismatch between the data and the model
        raise NNGeoError(f"the model does not accept inputs of shape {shape}: {one_line(exc, typed=False)}") from None
    finally:
        for h in handles:
            h.remove()
    return seen


def _pair(values: tuple[int, ...]) -> tuple[int, int]:
    """A Conv2d's per-dimension setting (stride, padding, dilation) as (H, W)."""
    return (values[0], values[1])


def _padding(conv: nn.Conv2d) -> tuple[int, int]:
    p = conv.padding
    if isinstance(p, str):  # "same" / "valid"
        if p == "valid":
            return (0, 0)
        k = conv.kernel_size
        d = conv.dilation
        return ((d[0] * (k[0] - 1)) // 2, (d[1] * (k[1] - 1)) // 2)
    return _pair(p)


def get_layer(model: nn.Module, name: str) -> nn.Module:
    """The module called ``name``; a clear error for unknown names."""
    modules = dict(model.named_modules())
    if name not in modules:
        raise NNGeoError(f"the model has no layer named {name!r}")
    return modules[name]


def tensor_attribute(module: nn.Module, name: str) -> torch.Tensor:
    """``module.<name>`` (a parameter, buffer or plain tensor attribute such as a pruned ``weight``).

    A missing attribute raises ``AttributeError`` as plain attribute access does.
    """
    value = getattr(module, name)
    if not isinstance(value, torch.Tensor):
        raise NNGeoError(f"{name} of {type(module).__name__} is a {type(value).__name__}, not a tensor")
    return value


def layer_weights(model: nn.Module, input_shape=None) -> dict[str, torch.Tensor]:
    """Effective weight of each prunable layer (mask applied if pruned), detached, in forward order."""
    return {
        info.name: tensor_attribute(get_layer(model, info.name), "weight").detach()
        for info in prunable_layers(model, input_shape)
    }


def layer_io(
    model: nn.Module, x: torch.Tensor, names: Iterable[str] | None = None
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Input and output of each named layer (all prunable layers by default) for a batch ``x``,
    computed in eval mode. A layer called twice reports its first call."""
    wanted = set(names) if names is not None else {n for n, m in model.named_modules() if _is_prunable(m)}
    modules = {n: m for n, m in model.named_modules() if n in wanted}
    unknown = wanted - set(modules)
    if unknown:
        raise NNGeoError(f"the model has no layer named {sorted(unknown)[0]!r}")
    out: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    handles = []
    for n, m in modules.items():

        def hook(mod, inputs, output, n=n):
            out.setdefault(n, (inputs[0].detach(), output.detach()))

        handles.append(m.register_forward_hook(hook))
    was_training = model.training
    model.eval()  # batch-norm layers must use (and keep) their running statistics
    try:
        with torch.no_grad():
            model(x)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return out


def builder_renames(model: nn.Module) -> list[tuple[str, str]]:
    """(our name prefix, the builder's) for every part of a foreign network: a module that wraps
    part of one (a torchvision or timm net is held as body and head) declares ``original_names`` =
    (its own prefix, the architecture builder's), e.g. ``("net.", "")`` on ``0`` gives ``("0.net.", "")``."""
    return [
        (f"{name}.{ours}", theirs)
        for name, module in model.named_modules()
        if name and (names := getattr(module, "original_names", None)) is not None
        for ours, theirs in [names]
    ]


def builder_name(renames: list[tuple[str, str]], name: str) -> str:
    """``name`` (a parameter or module of ours) as the architecture's builder names it (``0.net.conv1``
    -> ``conv1``, ``1.head`` -> ``fc``); unchanged outside a foreign network's parts."""
    for ours, theirs in renames:
        if name.startswith(ours) or f"{name}." == ours:
            return (theirs + name[len(ours) :]) if name.startswith(ours) else theirs.rstrip(".")
    return name
