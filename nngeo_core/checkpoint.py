"""Self-describing checkpoints, and safe loading of our own and foreign files.

Our format is one safetensors file: tensors ``state.<param>`` (effective weights, masks applied)
and ``mask.<layer>`` (bool masks of pruned layers); its string metadata holds the model spec,
data spec, run spec, input shape, class count and training history as JSON. safetensors cannot
carry code, so loading it never executes anything.

Foreign files are read with ``torch.load(weights_only=True)``, which refuses every pickled object
that is not a tensor or a plain container, and must hold a plain state_dict: either of a zoo
architecture (matched by key names and shapes) or of a stack of Linear layers (an MLP is inferred
from the chain of weight shapes).
"""

from __future__ import annotations

import io
import json
import os
import pickle
import re
import struct
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

from .errors import NNGeoError, one_line
from .models import MODELS, build
from .specs import DataSpec, ModelSpec, RunSpec, spec_from_dict, to_dict

FORMAT_VERSION = "1"
MAX_BYTES = 2 * 1024**3
DETAIL_LIMIT = 200  # characters of an underlying error quoted in our one-line message


@dataclass
class Checkpoint:
    model: nn.Module
    model_spec: ModelSpec
    data_spec: DataSpec | None = None
    run_spec: RunSpec | None = None
    history: list[dict] = field(default_factory=list)
    masks: dict[str, torch.Tensor] = field(default_factory=dict)
    source: str = "nngeo"  # nngeo | zoo-state-dict | linear-stack
    meta: dict[str, Any] = field(default_factory=dict)


# -- saving ------------------------------------------------------------------------------------
def to_bytes(
    model: nn.Module,
    *,
    model_spec: ModelSpec | None = None,
    data_spec: DataSpec | None = None,
    run_spec: RunSpec | None = None,
    history: list[dict] | None = None,
    masks: Mapping[str, torch.Tensor] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> bytes:
    model_spec = model_spec or _spec_of(model)
    tensors = {f"state.{k}": v.detach().to("cpu").contiguous().clone() for k, v in effective_state_dict(model).items()}
    for name, m in (masks or {}).items():
        tensors[f"mask.{name}"] = m.detach().to("cpu", torch.bool).contiguous()
    meta = {
        "nngeo_format": FORMAT_VERSION,
        "model_spec": json.dumps(to_dict(model_spec)),
        "input_shape": json.dumps(list(getattr(model, "input_shape", ()) or ())),
        "num_classes": json.dumps(getattr(model, "num_classes", None)),
        "history": json.dumps(history or [], default=float),
        "extra": json.dumps(dict(extra or {}), default=str),
    }
    if data_spec is not None:
        meta["data_spec"] = json.dumps(to_dict(data_spec))
    if run_spec is not None:
        meta["run_spec"] = json.dumps(to_dict(run_spec))
    return st_save(tensors, metadata=meta)


def save(path: str | Path, model: nn.Module, **kwargs) -> Path:
    """Write a checkpoint atomically (temp file + rename)."""
    path = Path(path)
    data = to_bytes(model, **kwargs)
    tmp = path.with_name(f".tmp-{path.name}")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


def effective_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """state_dict with pruning parametrisations folded in (``weight`` = weight_orig * weight_mask)."""
    sd = model.state_dict()
    out = {}
    for k, v in sd.items():
        if k.endswith("_orig"):
            base = k[: -len("_orig")]
            mask = sd.get(base + "_mask")
            out[base] = v * mask if mask is not None else v
        elif k.endswith("_mask") and (k[: -len("_mask")] + "_orig") in sd:
            continue
        else:
            out[k] = v
    return out


def _spec_of(model: nn.Module) -> ModelSpec:
    name = getattr(model, "zoo_name", None)
    if name is None:
        raise NNGeoError("this model is not from the zoo; pass model_spec=ModelSpec(...) to save it")
    return ModelSpec(name=name, params=dict(getattr(model, "zoo_params", {}) or {}))


# -- header only -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Header:
    """What one of our checkpoints says about itself, read without loading a tensor."""

    shapes: tuple[tuple[str, tuple[int, ...]], ...]  # (weight or buffer name, shape), sorted by name
    data_spec: DataSpec | None = None


def _safetensors_header(read_range: Callable[[int, int], bytes]) -> dict:
    """A safetensors file's JSON header (8-byte little-endian length, then the JSON)."""
    size = struct.unpack("<Q", read_range(0, 8))[0]
    if not 0 < size <= MAX_BYTES:
        raise ValueError(f"header size {size}")
    return json.loads(read_range(8, 8 + size))


def _data_spec(meta: Mapping[str, str]) -> DataSpec | None:
    return spec_from_dict(json.loads(meta["data_spec"])) if "data_spec" in meta else None


def read_header(read_range: Callable[[int, int], bytes]) -> Header:
    """The header of one of our checkpoints; ``read_range(start, end)`` returns those bytes of the file."""
    try:
        header = _safetensors_header(read_range)
        meta = header.get("__metadata__") or {}
        shapes = tuple(
            sorted(
                (k[len("state.") :], tuple(int(n) for n in v["shape"]))
                for k, v in header.items()
                if k.startswith("state.")
            )
        )
        data_spec = _data_spec(meta)
    except (struct.error, ValueError, TypeError, KeyError, AttributeError) as exc:
        detail = one_line(exc, typed=False, limit=DETAIL_LIMIT)
        raise NNGeoError(f"corrupt or truncated checkpoint header ({detail})") from None
    if not meta.get("nngeo_format"):
        raise NNGeoError("not an nngeo checkpoint (its header has no nngeo_format)")
    return Header(shapes=shapes, data_spec=data_spec)


# -- loading -----------------------------------------------------------------------------------
def load(source: str | Path | bytes, *, allow_nonfinite: bool = False, activation: str = "relu") -> Checkpoint:
    """Load our checkpoint or a foreign state_dict from a path or bytes. Never unpickles objects."""
    data = _read(source)
    if not data:
        raise NNGeoError("the checkpoint file is empty")
    ckpt = _load_safetensors(data, activation) if _looks_like_safetensors(data) else _load_torch(data, activation)
    if not allow_nonfinite:
        check_finite(ckpt.model)
    return ckpt


def check_finite(model: nn.Module) -> None:
    for name, p in model.named_parameters():
        if not torch.isfinite(p).all():
            bad = int((~torch.isfinite(p)).sum())
            raise NNGeoError(f"parameter {name} has {bad} NaN/inf values; the network cannot be analysed")


def _read(source) -> bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    path = Path(source)
    if not path.is_file():
        raise NNGeoError(f"no checkpoint file at {path}")
    if path.stat().st_size > MAX_BYTES:
        raise NNGeoError(f"{path} is larger than {MAX_BYTES // 1024**3} GiB; refusing to load it")
    return path.read_bytes()


def _looks_like_safetensors(data: bytes) -> bool:
    if len(data) < 10:
        return False
    n = struct.unpack("<Q", data[:8])[0]
    return 0 < n <= len(data) - 8 and data[8:9] == b"{"


def _load_safetensors(data: bytes, activation: str) -> Checkpoint:
    try:
        tensors = st_load(data)
        meta = _safetensors_header(lambda start, end: data[start:end]).get("__metadata__") or {}
    except Exception as exc:
        detail = one_line(exc, typed=False, limit=DETAIL_LIMIT)
        raise NNGeoError(f"corrupt or truncated safetensors file ({detail})") from None
    if meta.get("nngeo_format"):
        return _from_ours(tensors, meta)
    # a plain safetensors state_dict from elsewhere
    return _from_state_dict(tensors, activation)


def _from_ours(tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> Checkpoint:
    try:
        model_spec = spec_from_dict(json.loads(meta["model_spec"]))
        input_shape = tuple(json.loads(meta.get("input_shape", "[]"))) or None
        num_classes = json.loads(meta.get("num_classes", "null"))
        data_spec = _data_spec(meta)
        run_spec = spec_from_dict(json.loads(meta["run_spec"])) if "run_spec" in meta else None
        history = json.loads(meta.get("history", "[]"))
        extra = json.loads(meta.get("extra", "{}"))
    except (KeyError, ValueError, TypeError) as exc:
        detail = one_line(exc, typed=False, limit=DETAIL_LIMIT)
        raise NNGeoError(f"the checkpoint's metadata is damaged ({detail})") from None
    model = build(model_spec.name, input_shape=input_shape, num_classes=num_classes, **dict(model_spec.params))
    state = {k[len("state.") :]: v for k, v in tensors.items() if k.startswith("state.")}
    masks = {k[len("mask.") :]: v.bool() for k, v in tensors.items() if k.startswith("mask.")}
    _load_state(model, state, what=f"zoo model {model_spec.name!r}")
    return Checkpoint(
        model=model,
        model_spec=model_spec,
        data_spec=data_spec,
        run_spec=run_spec,
        history=history,
        masks=masks,
        source="nngeo",
        meta=extra,
    )


def _load_torch(data: bytes, activation: str) -> Checkpoint:
    if data[:2] == b"PK":
        try:
            zipfile.ZipFile(io.BytesIO(data)).testzip()
        except (zipfile.BadZipFile, EOFError, OSError):
            raise NNGeoError("corrupt or truncated PyTorch checkpoint (its zip archive is damaged)") from None
    try:
        obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        msg = one_line(exc, typed=False, limit=DETAIL_LIMIT)
        if "Unsupported global" in msg or "GLOBAL" in msg or "weights_only" in msg:
            found = re.search(r"GLOBAL ([\w.]+)", msg)
            what = f" ({found.group(1)})" if found else ""
            raise NNGeoError(
                f"refusing to load: the file holds Python objects{what}, not only tensors; "
                "save a plain state_dict or use safetensors"
            ) from None
        raise NNGeoError(f"not a checkpoint: {msg}") from None
    except (RuntimeError, EOFError, ValueError, OSError, struct.error, UnicodeDecodeError) as exc:
        detail = one_line(exc, typed=False, limit=DETAIL_LIMIT)
        raise NNGeoError(f"corrupt or truncated checkpoint, or not a PyTorch file ({detail})") from None
    except Exception as exc:  # weights_only loading raises a few other types on garbage
        detail = one_line(exc, typed=True, limit=DETAIL_LIMIT)
        raise NNGeoError(f"unreadable checkpoint ({detail})") from None
    state = _find_state_dict(obj)
    return _from_state_dict(state, activation)


def _find_state_dict(obj: Any) -> dict[str, torch.Tensor]:
    if isinstance(obj, Mapping):
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return dict(obj)
        for key in ("state_dict", "model_state_dict", "model", "net", "weights"):
            inner = obj.get(key)
            if isinstance(inner, Mapping) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
                return dict(inner)
    raise NNGeoError("the file holds no state_dict (a mapping of parameter names to tensors)")


def _from_state_dict(state: dict[str, torch.Tensor], activation: str) -> Checkpoint:
    """Infer the architecture of a foreign state_dict: a zoo model first, then a Linear stack."""
    state = {_strip_prefix(k): v for k, v in state.items()}
    if not state:
        raise NNGeoError("the state_dict is empty")
    zoo = _match_zoo(state)
    if zoo is not None:
        return zoo
    return _linear_stack(state, activation)


def _strip_prefix(k: str) -> str:
    for p in ("module.", "_orig_mod."):
        while k.startswith(p):
            k = k[len(p) :]
    return k


def _match_zoo(state: dict[str, torch.Tensor]) -> Checkpoint | None:
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    for name in MODELS:
        for params in _candidate_params(name, state):
            try:
                torch.manual_seed(0)
                model = build(name, **params)
            except Exception:
                continue
            ref = {k: tuple(v.shape) for k, v in model.state_dict().items()}
            if ref == shapes:
                _load_state(model, state, what=f"zoo model {name!r}")
                return Checkpoint(
                    model=model,
                    model_spec=ModelSpec(name, dict(getattr(model, "zoo_params", params))),
                    source="zoo-state-dict",
                )
    return None


def _candidate_params(name: str, state: dict[str, torch.Tensor]) -> list[dict]:
    """Parameter guesses for zoo models whose size is configurable (width multipliers, input channels)."""
    cands: list[dict] = [{}]
    weights = [v for k, v in state.items() if k.endswith("weight") and v.dim() == 4]
    dense = [v for k, v in state.items() if k.endswith("weight") and v.dim() == 2]
    if name in ("vgg11", "resnet20") and weights:
        first = weights[0]
        base = 64 if name == "vgg11" else 16
        width = first.shape[0] / base
        n_cls = dense[-1].shape[0] if dense else 10
        cands = [{"width": width, "input_shape": (first.shape[1], 32, 32), "num_classes": n_cls}]
    elif name in ("lenet5", "cnn_mnist") and weights and dense:
        cands = [{"input_shape": (weights[0].shape[1], 28, 28), "num_classes": dense[-1].shape[0]}]
    elif name == "fcn_mnist" and dense:
        cands = [{"num_classes": dense[-1].shape[0]}]
    return cands


def _linear_stack(state: dict[str, torch.Tensor], activation: str) -> Checkpoint:
    weights = [(k, v) for k, v in state.items() if k.endswith("weight")]
    if not weights or any(v.dim() != 2 for _, v in weights):
        kinds = sorted({f"{v.dim()}-D" for _, v in weights}) or ["no weights"]
        raise NNGeoError(
            "wrong architecture: the state_dict matches no zoo model and is not a stack of "
            f"Linear layers (weights found: {', '.join(kinds)})"
        )
    weights.sort(key=lambda kv: _natural_key(kv[0]))
    for (k1, w1), (k2, w2) in zip(weights, weights[1:], strict=False):
        if w2.shape[1] != w1.shape[0]:
            raise NNGeoError(f"wrong architecture: {k1} has {w1.shape[0]} outputs but {k2} takes {w2.shape[1]} inputs")
    extra = set(state) - {k for k, _ in weights} - {k[: -len("weight")] + "bias" for k, _ in weights}
    if extra:
        raise NNGeoError(f"wrong architecture: unexpected entries for a Linear stack: {', '.join(sorted(extra)[:3])}")
    has_bias = [(k[: -len("weight")] + "bias") in state for k, _ in weights]
    if len(set(has_bias)) > 1:
        raise NNGeoError("wrong architecture: some Linear layers have a bias and some do not")
    widths = [int(w.shape[0]) for _, w in weights[:-1]]
    n_in, n_out = int(weights[0][1].shape[1]), int(weights[-1][1].shape[0])
    model = build(
        "mlp", input_shape=(n_in,), num_classes=n_out, widths=tuple(widths), activation=activation, bias=has_bias[0]
    )
    ours = [(k, m) for k, m in model.named_modules() if isinstance(m, nn.Linear)]
    with torch.no_grad():
        for (_, mod), (k, w) in zip(ours, weights, strict=False):
            mod.weight.copy_(w.float())
            if has_bias[0]:
                mod.bias.copy_(state[k[: -len("weight")] + "bias"].float())
    spec = ModelSpec("mlp", dict(getattr(model, "zoo_params", {"widths": tuple(widths), "activation": activation})))
    return Checkpoint(
        model=model,
        model_spec=spec,
        source="linear-stack",
        meta={
            "inferred": f"Linear stack {n_in}-{'-'.join(map(str, widths))}{'-' if widths else ''}{n_out}, "
            f"activation assumed {activation}"
        },
    )


def _natural_key(s: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


def _load_state(model: nn.Module, state: Mapping[str, torch.Tensor], what: str) -> None:
    ref = model.state_dict()
    missing = sorted(set(ref) - set(state))
    unexpected = sorted(set(state) - set(ref))
    if missing or unexpected:
        first = (missing or unexpected)[0]
        raise NNGeoError(
            f"wrong architecture for {what}: {'missing' if missing else 'unexpected'} "
            f"parameter {first!r} ({len(missing)} missing, {len(unexpected)} unexpected)"
        )
    for k, v in state.items():
        if tuple(v.shape) != tuple(ref[k].shape):
            raise NNGeoError(
                f"wrong architecture for {what}: {k} has shape {tuple(v.shape)}, expected {tuple(ref[k].shape)}"
            )
    model.load_state_dict({k: v.to(ref[k].dtype) for k, v in state.items()})
