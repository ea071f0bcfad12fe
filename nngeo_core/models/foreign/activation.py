"""The activation a foreign state_dict's weights cannot tell.

A zoo match (``checkpoint._match_zoo``) is by key names and shapes, and activations have no
weights: a tanh MLP whose layers are 784-100-...-10 fits ``fcn_mnist`` (ReLU) exactly. So an
explicit activation must be honoured, and without one the match is ambiguous, never silently ReLU.
``honour_activation`` does both for a zoo model that such a match built.
"""

from __future__ import annotations

import torch
from torch import nn

from ...errors import NNGeoError
from ...specs import ModelSpec
from .. import ACTIVATIONS, FeedForward, build
from ..mlp import MLP
from .base import AmbiguousArchitecture

DEFAULT_ACTIVATION = "relu"  # what every fixed zoo model uses


def _hidden_widths(model: FeedForward) -> tuple[tuple[int, ...], bool]:
    linears = [m for m in model if isinstance(m, nn.Linear)]
    return tuple(int(m.out_features) for m in linears[:-1]), linears[0].bias is not None


def honour_activation(model: FeedForward, activation: str | None) -> tuple[FeedForward, ModelSpec]:
    """``model`` (a zoo model whose weights were loaded from a foreign state_dict) with
    ``activation``, and the spec that rebuilds it.

    * ``None``: ``AmbiguousArchitecture`` over the activations (the weights do not say which).
    * a zoo model with an ``activation`` parameter: rebuilt with it.
    * a Linear-only zoo model with its activation fixed (``fcn_mnist``): the same layers as an
      ``mlp`` of those widths with that activation (the fixed one keeps the zoo model).
    * any other zoo model (convs, ReLU built in): kept for ``relu``, a one-line error otherwise.
    """
    name = model.zoo_name
    if activation is None:
        raise AmbiguousArchitecture(f"{name}'s weights (an activation has none)", ACTIVATIONS, "activation")
    act = activation.lower()
    if act not in ACTIVATIONS:
        raise NNGeoError(f"unknown activation {activation!r}; choose one of {', '.join(ACTIVATIONS)}")
    params = dict(model.zoo_params)
    if "activation" in params:
        params["activation"] = act
        new = build(name, input_shape=model.input_shape, num_classes=model.num_classes, **params)
    elif act == DEFAULT_ACTIVATION:
        return model, ModelSpec(name, params)
    elif isinstance(model, MLP):
        widths, bias = _hidden_widths(model)
        new = build(
            "mlp",
            input_shape=model.input_shape,
            num_classes=model.num_classes,
            widths=widths,
            activation=act,
            bias=bias,
        )
    else:
        raise NNGeoError(
            f"the weights fit {name}, whose activation is fixed to {DEFAULT_ACTIVATION}; "
            f"activation {act} cannot be honoured for it"
        )
    # same children at the same indices (Flatten, Linear, activation, ...): the keys carry over
    with torch.no_grad():
        new.load_state_dict(model.state_dict(), strict=True)
    return new, ModelSpec(new.zoo_name, dict(new.zoo_params))
