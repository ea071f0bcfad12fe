"""Networks from elsewhere, loaded without executing anything from the file.

* torchvision classification architectures, recognised from a plain state_dict (a mapping of
  names to tensors, already read safely by ``nngeo_core.checkpoint``) by key names and shapes
  (``torchvision_zoo.load_torchvision``); several fits are an ``AmbiguousArchitecture``;
* timm models, only when named (``arch="timm:resnet18"``; timm is optional, imported only then,
  and never asked for pretrained weights): ``load_timm``, and ``timm_feedforward_parts`` to hold
  one as a registered ``timm`` model;
* ONNX files, converted by onnx2torch (``onnx_file.load_onnx``); ONNX is protobuf, never code;
* ``torch.export`` programs (``.pt2``), refused: ``export_pt2`` says why (torch.export.load
  unpickles without restriction);
* the activation a zoo match cannot read from the weights (``activation.honour_activation``).

Each loader returns a ``ForeignModel(model, spec)``; ``build_foreign(spec)`` rebuilds the
architecture (fresh weights) of a torchvision or timm spec.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ...errors import NNGeoError
from .activation import honour_activation
from .base import AmbiguousArchitecture, ForeignModel, describe_state, fit_line, layer_kinds
from .export_pt2 import is_pt2, load_pt2, refuse_pt2
from .onnx_file import load_onnx, looks_like_onnx, unsupported_ops
from .torchvision_zoo import (
    Fit,
    Signature,
    build_timm,
    build_torchvision,
    closest,
    feedforward_parts,
    fit,
    load_timm,
    load_torchvision,
    matches,
    timm_feedforward_parts,
)

__all__ = [
    "AmbiguousArchitecture",
    "Fit",
    "ForeignModel",
    "Signature",
    "build_foreign",
    "build_timm",
    "build_torchvision",
    "closest",
    "describe_state",
    "feedforward_parts",
    "fit",
    "fit_line",
    "honour_activation",
    "is_pt2",
    "layer_kinds",
    "load_file",
    "load_onnx",
    "load_pt2",
    "load_state_dict",
    "load_timm",
    "load_torchvision",
    "looks_like_onnx",
    "matches",
    "refuse_pt2",
    "timm_feedforward_parts",
    "unsupported_ops",
]


def load_state_dict(state: Mapping[str, torch.Tensor], arch: str | None = None) -> ForeignModel:
    """A foreign state_dict as a torchvision model (recognised, or ``arch``) or a named timm one."""
    return load_torchvision(state, arch)


def load_file(data: bytes, name: str = "") -> ForeignModel | None:
    """An ONNX file converted, a ``.pt2`` refused (``NNGeoError``); ``None`` for anything else
    (a state_dict container, which ``nngeo_core.checkpoint`` reads)."""
    if is_pt2(data, name):
        raise refuse_pt2()
    if looks_like_onnx(data, name):
        return load_onnx(data)
    return None


def build_foreign(spec: Mapping[str, Any]) -> nn.Module:
    """A fresh module of a foreign spec's architecture (torchvision or timm; an ONNX spec names its
    stored file by sha256, from which ``load_onnx`` rebuilds it)."""
    source = spec.get("source")
    if source == "torchvision":
        return build_torchvision(spec)
    if source == "timm":
        return build_timm(spec)
    if source == "onnx":
        raise NNGeoError(f"an ONNX model is rebuilt from its file (sha256 {spec.get('sha256')}), not from a spec")
    raise NNGeoError(f"unknown foreign model source {source!r}; expected torchvision, timm or onnx")
