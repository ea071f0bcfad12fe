"""The model zoo: a registry of named architectures and ``build`` to make a fresh one.

``build(name, input_shape=..., num_classes=..., **params)`` returns a new ``nn.Module`` (every zoo
model is a ``FeedForward`` ``nn.Sequential``, see ``mlp.py``) carrying ``.input_shape`` (no batch
dimension), ``.num_classes``, ``.zoo_name`` and ``.zoo_params`` (every parameter used, defaults
included), so ``build(m.zoo_name, input_shape=m.input_shape, num_classes=m.num_classes,
**m.zoo_params)`` rebuilds the same architecture. Weights come from torch's generator: seed it
with ``torch.manual_seed`` before ``build`` for a reproducible initialisation.
"""

from __future__ import annotations

import inspect
import math
import numbers
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from ..errors import NNGeoError
from ..registry import Registry
from ..specs import ModelSpec
from .base import (
    LayerInfo,
    builder_name,
    builder_renames,
    get_layer,
    layer_io,
    layer_weights,
    model_input_shape,
    prunable_layers,
)
from .cnn import build_cnn_mnist
from .fcn import build_fcn_mnist
from .lenet import build_lenet5, build_lenet5_s2
from .mlp import ACTIVATIONS, FeedForward, build_mlp, check_positive_int, image_shape, sequential
from .resnet import build_resnet20
from .vgg import build_vgg9, build_vgg11

__all__ = [
    "MODELS",
    "ModelEntry",
    "model_entry",
    "register_model",
    "build",
    "list_models",
    "model_info",
    "FeedForward",
    "ACTIVATIONS",
    "LayerInfo",
    "prunable_layers",
    "builder_name",
    "builder_renames",
    "get_layer",
    "layer_weights",
    "layer_io",
    "model_input_shape",
]


@dataclass(frozen=True)
class ModelEntry:
    name: str
    # builder(input_shape, num_classes, **params) -> (module, params actually used)
    builder: Callable[..., tuple[nn.Module, dict]]
    description: str
    default_input_shape: tuple[int, ...]
    default_num_classes: int
    image: bool  # needs (C, H, W) input; otherwise any shape, flattened
    params: Mapping[str, Any]  # parameter -> default (the builder's keyword-only arguments)
    choices: Mapping[str, tuple] = field(default_factory=dict)  # parameter -> allowed values


MODELS: Registry[ModelEntry] = Registry("model")


def register_model(
    name: str,
    *,
    description: str,
    default_input_shape: Iterable[int],
    image: bool,
    default_num_classes: int = 10,
    choices: Mapping[str, Iterable] | None = None,
):
    """Decorator: add ``builder(input_shape, num_classes, *, param=default, ...)`` to the zoo.

    The builder checks its parameters (raising ``NNGeoError``) and returns the module and the dict
    of parameters it used. Its keyword-only arguments and their defaults are the model's parameters.
    """

    def deco(builder):
        params = {
            p.name: p.default
            for p in inspect.signature(builder).parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY
        }
        MODELS.add(
            name,
            ModelEntry(
                name=name,
                builder=builder,
                description=description,
                default_input_shape=tuple(int(s) for s in default_input_shape),
                default_num_classes=int(default_num_classes),
                image=bool(image),
                params=params,
                choices={k: tuple(v) for k, v in (choices or {}).items()},
            ),
        )
        return builder

    return deco


def list_models() -> list[str]:
    """Names of the registered models, in registration order."""
    return MODELS.names()


def model_entry(name: str) -> ModelEntry:
    return MODELS.get(name)


def model_info(name: str) -> dict:
    """What a picker needs: description, parameters with defaults, allowed values, default shapes."""
    entry = model_entry(name)
    return {
        "name": entry.name,
        "description": entry.description,
        "params": dict(entry.params),
        "choices": dict(entry.choices),
        "default_input_shape": entry.default_input_shape,
        "default_num_classes": entry.default_num_classes,
        "image": entry.image,
    }


def _check_input_shape(model: str, shape: Any) -> tuple[int, ...]:
    if isinstance(shape, (str, bytes)) or not isinstance(shape, Iterable):
        raise NNGeoError(f"{model}: input_shape must be a tuple of positive whole numbers, got {shape!r}")
    dims = tuple(shape)
    if not dims or any(
        isinstance(d, bool)
        or not isinstance(d, numbers.Real)
        or not math.isfinite(d)
        or not float(d).is_integer()
        or d < 1
        for d in dims
    ):
        raise NNGeoError(
            f"{model}: input_shape must be a tuple of positive whole numbers (no batch dimension), got {shape!r}"
        )
    return tuple(int(d) for d in dims)


def build(
    name: str | ModelSpec, *, input_shape: Iterable[int] | None = None, num_classes: int | None = None, **params
) -> FeedForward:
    """A freshly initialised zoo model. ``name`` may be a ``ModelSpec`` (its params, then ``params``)."""
    if isinstance(name, ModelSpec):
        params = {**name.params, **params}
        name = name.name
    entry = model_entry(name)
    unknown = sorted(set(params) - set(entry.params))
    if unknown:
        known = ", ".join(entry.params) or "none"
        raise NNGeoError(f"{name} has no parameter {unknown[0]!r}; its parameters: {known}")
    shape = _check_input_shape(name, entry.default_input_shape if input_shape is None else input_shape)
    classes = check_positive_int(name, "num_classes", entry.default_num_classes if num_classes is None else num_classes)
    model, used = entry.builder(shape, classes, **{**entry.params, **params})
    if not isinstance(model, FeedForward):
        raise NNGeoError(f"the builder of {name} returned a {type(model).__name__}, not a FeedForward")
    model.input_shape = shape
    model.num_classes = classes
    model.zoo_name = name
    model.zoo_params = dict(used)
    return model


register_model(
    "mlp",
    description="Fully connected net on the flattened input: hidden layers of the "
    "given widths, one activation, a linear output layer.",
    default_input_shape=(2,),
    default_num_classes=2,
    image=False,
    choices={"activation": tuple(ACTIVATIONS), "bias": (True, False)},
)(build_mlp)
register_model(
    "fcn_mnist",
    description="784-100-100-100-100-100-10 ReLU net (SynFlow / topological IMP "
    "papers); the first layer adapts to the input size.",
    default_input_shape=(1, 28, 28),
    image=False,
)(build_fcn_mnist)
register_model(
    "lenet5",
    description="LeNet-5: conv 6@5x5 pad 2, max-pool, conv 16@5x5, max-pool, fc 120, fc 84, output; ReLU.",
    default_input_shape=(1, 28, 28),
    image=True,
)(build_lenet5)
register_model(
    "cnn_mnist",
    description="Two 32-channel 3x3 convs (padding 1) with ReLU, then one dense layer (25,088 -> 10 on 28x28).",
    default_input_shape=(1, 28, 28),
    image=True,
)(build_cnn_mnist)
register_model(
    "vgg11",
    description="CIFAR VGG-11 with batch norm and a linear classifier; width "
    "multiplies the channels. Needs images of at least 32x32.",
    default_input_shape=(3, 32, 32),
    image=True,
)(build_vgg11)
register_model(
    "resnet20",
    description="CIFAR ResNet-20 (He et al. 2016), 16/32/64 channels, option-A "
    "shortcuts; width multiplies the channels.",
    default_input_shape=(3, 32, 32),
    image=True,
)(build_resnet20)
register_model(
    "vgg9",
    description="Pool-free CIFAR VGG-9 of the neural-curvature pruning paper (Tan et al., arXiv "
    "2601.16366): convs 64@2x2 s2, 128, 128, 128 s2, 256, 256 (3x3, no padding), each with batch norm, "
    "then fc 512, fc 128, output; ReLU. Needs images of at least 30x30.",
    default_input_shape=(3, 32, 32),
    image=True,
)(build_vgg9)
register_model(
    "lenet5_s2",
    description="Pool-free LeNet-5 of the neural-curvature pruning paper (Tan et al., arXiv 2601.16366): "
    "conv 6@6x6 s2, conv 16@6x6 s2 (no padding), fc 120, fc 84, output; ReLU. Needs images of at least 16x16.",
    default_input_shape=(1, 28, 28),
    image=True,
)(build_lenet5_s2)

# a torchvision classifier (uploaded as a state_dict, see ``models.foreign``) as a FeedForward of
# two children, its body (a representation: the pooled features) and its head; the name is what an
# upload's stored checkpoint records, so a fresh process rebuilds it
TORCHVISION = "torchvision"
# builder keyword arguments some torchvision architectures take that change their keys
_AUX_LOGITS_ARCHS = ("googlenet", "inception_v3")


def build_torchvision_net(
    input_shape: tuple[int, ...], num_classes: int, *, arch: str = "resnet18", aux_logits: bool = True
) -> tuple[FeedForward, dict[str, Any]]:
    """torchvision's ``arch`` for ``num_classes`` classes on ``input_shape`` (C, H, W) images (its
    stem conv takes C channels), fresh weights, as a ``FeedForward`` [body, head]."""
    # lazy: torchvision and the foreign loaders (~1.8 s measured); only a torchvision model needs them
    from .foreign.torchvision_zoo import build_torchvision, feedforward_parts

    if not isinstance(arch, str) or not arch:
        raise NNGeoError(f"{TORCHVISION}: arch must be a torchvision builder name, got {arch!r}")
    if not isinstance(aux_logits, bool):
        raise NNGeoError(f"{TORCHVISION}: aux_logits must be true or false, got {aux_logits!r}")
    if not aux_logits and arch not in _AUX_LOGITS_ARCHS:
        raise NNGeoError(f"{TORCHVISION}: aux_logits applies to {', '.join(_AUX_LOGITS_ARCHS)} only, not {arch}")
    shape = image_shape(TORCHVISION, input_shape)
    kwargs = {} if aux_logits else {"aux_logits": False}
    spec = {
        "arch": arch,
        "num_classes": num_classes,
        "in_channels": shape[0],
        "source": "torchvision",
        "kwargs": kwargs,
    }
    net = sequential(FeedForward, feedforward_parts(build_torchvision(spec)))
    return net, {"arch": arch, "aux_logits": aux_logits}


register_model(
    TORCHVISION,
    description="A torchvision classification architecture by name (arch), e.g. an uploaded "
    "state_dict's; its stem takes the input's channels.",
    default_input_shape=(3, 224, 224),
    image=True,
)(build_torchvision_net)

# a timm model (optional: timm is imported only to build one), held as the torchvision one is: a
# FeedForward [body, head], the head being the layer timm's config names its classifier; an upload
# named ``--arch timm:NAME`` is stored as this model, so a fresh process rebuilds it by name
TIMM = "timm"


def build_timm_net(
    input_shape: tuple[int, ...], num_classes: int, *, arch: str = "resnet18"
) -> tuple[FeedForward, dict[str, Any]]:
    """timm's ``arch`` (``timm.create_model(arch, pretrained=False, num_classes=..., in_chans=C)``,
    nothing downloaded) on ``input_shape`` (C, H, W) images, fresh weights, as a ``FeedForward``
    [body, head]."""
    # lazy: timm and the foreign loaders (torchvision, ~2.5 s measured); only a timm model needs them
    from .foreign.torchvision_zoo import build_timm, timm_feedforward_parts, timm_name

    if not isinstance(arch, str) or not timm_name(arch):
        raise NNGeoError(f"{TIMM}: arch must be a timm model name such as resnet18, got {arch!r}")
    name = timm_name(arch)
    shape = image_shape(TIMM, input_shape)
    spec = {"arch": name, "num_classes": num_classes, "in_channels": shape[0], "source": "timm", "kwargs": {}}
    net = sequential(FeedForward, timm_feedforward_parts(build_timm(spec)))
    return net, {"arch": name}


register_model(
    TIMM,
    description="A timm model by name (arch; needs timm installed, never pretrained), e.g. an uploaded "
    "state_dict's named timm:NAME; its stem takes the input's channels.",
    default_input_shape=(3, 224, 224),
    image=True,
)(build_timm_net)
