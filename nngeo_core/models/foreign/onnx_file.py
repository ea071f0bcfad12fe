"""ONNX files converted to a torch module by onnx2torch.

Loading an ONNX file executes no code from it: the file is one protobuf message (``onnx.ModelProto``)
and parsing it builds plain data (graph nodes naming standard operators, tensors as bytes). The
torch module is then made by onnx2torch from its own fixed table of converters, one per
(domain, operator, opset version); an operator it has no converter for is named in a one-line error
before any conversion starts. Weights kept in external files (an ONNX option for large models) are
refused rather than read, since their paths come from the file.

The converted module is one ``fx.GraphModule``; its hidden representation for geometry (the
volume element, ``nngeo_core.geometry.features``) is the input of its final Gemm / Linear (or
MatMul) call, named in ``module.meta[REPRESENTATION_ATTR]`` (``representation_module``): the
pooled features of a converted ResNet, the flattened last ReLU of a small CNN.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import warnings
from collections.abc import Iterator
from typing import Any

import onnx
import onnx2torch
from google.protobuf.message import DecodeError
from onnx import defs
from onnx2torch.node_converters import get_converter
from torch import fx, nn

from ...errors import NNGeoError, one_line
from .base import ForeignModel, fit_line

DETAIL_LIMIT = 160  # characters of a library's error quoted in our line
ONNX_DOMAINS = ("", "ai.onnx")
# the attribute (in GraphModule.meta) geometry.features reads: the module whose input is the
# representation (the same string as geometry.features.REPRESENTATION_ATTR; a test checks it)
REPRESENTATION_ATTR = "nngeo_representation_input"
# onnx2torch's modules for Gemm / MatMul when it does not make an nn.Linear of them
_LINEAR_CLASS_NAMES = ("OnnxGemm", "OnnxMatMul")


def representation_module(module: nn.Module) -> str | None:
    """The qualified name of the module of the last Gemm / Linear / MatMul call in ``module``'s
    fx graph (its input is the representation the classifier reads), or ``None`` without one."""
    graph = getattr(module, "graph", None)
    if not isinstance(graph, fx.Graph):
        return None
    found = None
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(node.target, str):
            continue
        sub = module.get_submodule(node.target)
        if isinstance(sub, nn.Linear) or type(sub).__name__ in _LINEAR_CLASS_NAMES:
            found = node.target
    return found


def _nodes(graph: onnx.GraphProto) -> Iterator[onnx.NodeProto]:
    """Every node, including those of subgraphs (If / Loop bodies)."""
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from _nodes(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    yield from _nodes(g)


def unsupported_ops(model: onnx.ModelProto) -> list[str]:
    """The operators of ``model`` onnx2torch has no converter for, as "Op (opset N)" or
    "domain.Op", in graph order; asked of onnx2torch's own registry, as its converter does."""
    opsets = {o.domain: int(o.version) for o in model.opset_import}
    out: list[str] = []
    for node in _nodes(model.graph):
        domain = node.domain
        version = opsets.get(domain, opsets.get("ai.onnx" if domain == "" else domain))
        label = node.op_type if domain in ONNX_DOMAINS else f"{domain}.{node.op_type}"
        if version is None:
            out.append(f"{label} (its domain is not imported)")
            continue
        try:
            get_converter(operation_type=node.op_type, version=version, domain=domain or defs.ONNX_DOMAIN)
        except NotImplementedError:
            out.append(f"{label} (opset {version})")
    return list(dict.fromkeys(out))


def _dims(value: onnx.ValueInfoProto) -> list[int | str]:
    shape = value.type.tensor_type.shape
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in shape.dim]


def parse_onnx(data: bytes) -> onnx.ModelProto:
    """The model in ``data`` as a checked protobuf (parsing runs no code from the file)."""
    if not data:
        raise NNGeoError("the ONNX file is empty")
    try:
        model = onnx.load_model_from_string(data)
    except (DecodeError, ValueError, RuntimeError) as exc:
        detail = one_line(exc, typed=False, limit=DETAIL_LIMIT) or "its protobuf does not parse"
        raise NNGeoError(f"not a valid ONNX file ({detail})") from None
    if not model.graph.node:
        raise NNGeoError("not a valid ONNX file: it holds no graph nodes (corrupt, or not ONNX)")
    external = [t.name for t in model.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    if external:
        raise NNGeoError(
            f"this ONNX file keeps {len(external)} weight tensors in separate files ({external[0]}, ...); "
            "save it with the weights inside (onnx.save_model(..., save_as_external_data=False))"
        )
    try:
        onnx.checker.check_model(model)
    except Exception as exc:  # onnx raises ValidationError and a few others
        raise NNGeoError(f"invalid ONNX model ({one_line(exc, typed=False, join=True, limit=DETAIL_LIMIT)})") from None
    return model


def load_onnx(data: bytes) -> ForeignModel:
    """An ONNX file as a torch module (an ``fx.GraphModule``, eval mode) and its spec: the file's
    sha256 (the stored file rebuilds it), its opsets and its inputs' and outputs' shapes."""
    model = parse_onnx(data)
    missing = unsupported_ops(model)
    if missing:
        raise NNGeoError(
            fit_line(
                f"cannot convert this ONNX model: onnx2torch {onnx2torch_version()} has no converter for "
                f"{', '.join(missing)}"
            )
        )
    try:
        with warnings.catch_warnings():  # onnx2torch warns about opsets it has not tested
            warnings.simplefilter("ignore")
            module = onnx2torch.convert(model)
    except Exception as exc:  # a converter refusing an attribute value raises NotImplementedError and others
        raise NNGeoError(
            f"cannot convert this ONNX model to torch ({one_line(exc, typed=True, join=True, limit=DETAIL_LIMIT)})"
        ) from None
    initializers = {t.name for t in model.graph.initializer}
    inputs = [v for v in model.graph.input if v.name not in initializers]
    spec: dict[str, Any] = {
        "source": "onnx",
        "sha256": hashlib.sha256(data).hexdigest(),
        "opsets": {o.domain or "ai.onnx": int(o.version) for o in model.opset_import},
        "inputs": [{"name": v.name, "shape": _dims(v)} for v in inputs],
        "outputs": [{"name": v.name, "shape": _dims(v)} for v in model.graph.output],
    }
    if len(inputs) == 1 and len(dims := _dims(inputs[0])) > 1 and all(isinstance(d, int) for d in dims[1:]):
        spec["input_shape"] = [int(d) for d in dims[1:]]
    out = spec["outputs"]
    if len(out) == 1 and len(out[0]["shape"]) == 2 and isinstance(out[0]["shape"][1], int):
        spec["num_classes"] = int(out[0]["shape"][1])
    rep = representation_module(module)
    if rep is not None:  # meta, not an attribute: copies of a GraphModule keep only their meta
        module.meta[REPRESENTATION_ATTR] = rep
    return ForeignModel(module.eval(), spec)


def onnx2torch_version() -> str:
    try:
        return importlib.metadata.version("onnx2torch")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree
        return "(installed)"


def looks_like_onnx(data: bytes, name: str = "") -> bool:
    """Whether ``data`` should be read as ONNX: a ``.onnx`` name, or protobuf bytes that parse to a
    ModelProto with a graph (an ONNX file starts with field 1, ir_version: byte 0x08)."""
    if name.lower().endswith(".onnx"):
        return True
    if data[:1] != b"\x08":
        return False
    try:
        return bool(onnx.load_model_from_string(data).graph.node)
    except Exception:  # not protobuf, or not a model
        return False
