"""The feed-forward base every zoo model is built on, shared parameter checks, and the ``mlp``.

Every zoo model is a ``FeedForward``: an ``nn.Sequential`` whose children are named "0", "1", ...
so that ``model[:k]`` is the network up to (not including) child ``k`` and a layer's name in
``prunable_layers`` starts with its child index. Geometry code takes the representation after
hidden layer ``j`` as ``model[:model.hidden_activation_indices[j] + 1](x)``, or all of them in one
pass with ``model.hidden_outputs(x)``.
"""

from __future__ import annotations

import math
import numbers
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any, TypeVar

import torch
from torch import nn

from ..errors import NNGeoError


class Erf(nn.Module):
    """The error function as a layer (infinite-width kernels have a closed form for it)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.erf(x)


ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "erf": Erf,
    "sigmoid": nn.Sigmoid,
    "softplus": nn.Softplus,
}


class ResidualBlock(nn.Module):
    """Marker base for blocks whose output is a representation (like an activation's output)."""


# children after which FeedForward.hidden_outputs takes a representation
REPRESENTATION_TYPES: tuple[type[nn.Module], ...] = (*ACTIVATIONS.values(), ResidualBlock)


def _has_prunable(module: nn.Module) -> bool:
    return any(isinstance(m, (nn.Linear, nn.Conv2d)) for m in module.modules())


class FeedForward(nn.Sequential):
    """An ``nn.Sequential`` that knows where its hidden representations are.

    Do not give subclasses their own ``__init__``: ``model[a:b]`` rebuilds the class from an
    ``OrderedDict`` of the selected children (and keeps their names). A slice does not carry the
    zoo attributes (``input_shape``, ``num_classes``, ...), only the modules.
    """

    # set by ``models.build`` on zoo models (declared here so readers know their types)
    input_shape: tuple[int, ...]
    num_classes: int
    zoo_name: str
    zoo_params: dict[str, Any]

    @property
    def hidden_activation_indices(self) -> list[int]:
        """Child indices whose output is a hidden representation, in forward order.

        A child counts when it is an activation (or a residual block, which ends in one) and a
        Linear/Conv2d layer comes after it, so the output logits are never included. The output of
        hidden layer ``j`` is ``self[:self.hidden_activation_indices[j] + 1](x)``.
        """
        children = list(self)
        later_prunable = [False] * len(children)
        seen = False
        for i in range(len(children) - 1, -1, -1):
            later_prunable[i] = seen
            seen = seen or _has_prunable(children[i])
        return [i for i, m in enumerate(children) if isinstance(m, REPRESENTATION_TYPES) and later_prunable[i]]

    def feature_layers(self) -> list[int]:
        """Same as ``hidden_activation_indices`` (kept as a method for callers that expect one)."""
        return self.hidden_activation_indices

    def hidden_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The post-activation output of every hidden layer for a batch ``x``, in one forward pass."""
        wanted = set(self.hidden_activation_indices)
        outputs = []
        for i, module in enumerate(self):
            x = module(x)
            if i in wanted:
                outputs.append(x)
        return outputs


FeedForwardT = TypeVar("FeedForwardT", bound=FeedForward)


def sequential(cls: type[FeedForwardT], modules: Iterable[nn.Module]) -> FeedForwardT:
    """A ``cls`` with children named "0", "1", ... (so names are indices)."""
    return cls(OrderedDict((str(i), m) for i, m in enumerate(modules)))


# ---- parameter checks shared by the zoo builders (each raises NNGeoError with one line) ----


def check_activation(model: str, value: Any) -> str:
    name = value.lower() if isinstance(value, str) else value
    if name not in ACTIVATIONS:
        raise NNGeoError(f"{model}: unknown activation {value!r}; choose one of {', '.join(ACTIVATIONS)}")
    return name


def check_positive_int(model: str, param: str, value: Any) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
        or not float(value).is_integer()
        or value < 1
    ):
        raise NNGeoError(f"{model}: {param} must be a positive whole number, got {value!r}")
    # a whole-valued Real: Integral converts exactly, the rest (floats) through float
    return int(value) if isinstance(value, numbers.Integral) else int(float(value))


def check_widths(model: str, value: Any) -> tuple[int, ...]:
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        value = (value,)  # one hidden layer
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise NNGeoError(f"{model}: widths must be a list of positive whole numbers, got {value!r}")
    return tuple(check_positive_int(model, "every entry of widths", w) for w in value)


def check_bool(model: str, param: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise NNGeoError(f"{model}: {param} must be true or false, got {value!r}")
    return value


def check_multiplier(model: str, param: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value <= 0:
        raise NNGeoError(f"{model}: {param} must be a positive number, got {value!r}")
    return float(value)


def scaled(channels: int, width: float) -> int:
    """Channel count times a width multiplier, at least 1."""
    return max(1, int(round(channels * width)))


def image_shape(model: str, input_shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(input_shape) != 3:
        raise NNGeoError(
            f"{model} needs an image input shape (C, H, W), got {input_shape}; use an image dataset or the mlp"
        )
    return input_shape


# ---- the mlp ----


class MLP(FeedForward):
    """Flatten, then Linear and activation alternating, then the output Linear."""


def mlp_layers(
    input_shape: tuple[int, ...], num_classes: int, widths: tuple[int, ...], activation: str, bias: bool
) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Flatten()]
    fan_in = math.prod(input_shape)
    for width in widths:
        layers += [nn.Linear(fan_in, width, bias=bias), ACTIVATIONS[activation]()]
        fan_in = width
    layers.append(nn.Linear(fan_in, num_classes, bias=bias))
    return layers


def build_mlp(
    input_shape: tuple[int, ...], num_classes: int, *, widths=(32, 32), activation="relu", bias=True
) -> tuple[MLP, dict[str, Any]]:
    """Fully connected network on the flattened input; ``widths`` are the hidden layer sizes."""
    hidden = check_widths("mlp", widths)
    act = check_activation("mlp", activation)
    use_bias = check_bool("mlp", "bias", bias)
    params: dict[str, Any] = {"widths": hidden, "activation": act, "bias": use_bias}
    return sequential(MLP, mlp_layers(input_shape, num_classes, hidden, act, use_bias)), params
