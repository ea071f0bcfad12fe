"""Which modules of a network are activations and which are affine (Linear/Conv) layers.

Feature maps count hidden layers by these (an activation call after an affine one), and the jet
fast path carries derivatives through the activations it recognises.
"""

from __future__ import annotations

from torch import nn

ACTIVATION_TYPES: tuple[type[nn.Module], ...] = (
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
    """A torch activation, or a parameterless leaf module whose class name says it is one."""
    if isinstance(module, ACTIVATION_TYPES):
        return True
    if any(True for _ in module.children()) or any(True for _ in module.parameters(recurse=False)):
        return False
    name = type(module).__name__.lower()
    return any(part in name for part in _ACTIVATION_NAME_PARTS)


def is_affine(module: nn.Module) -> bool:
    return isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d))
