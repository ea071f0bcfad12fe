"""Self-describing checkpoints, and safe loading of our own and foreign files.

Our format is one safetensors file: tensors ``state.<param>`` (effective weights, masks applied)
and ``mask.<layer>`` (bool masks of pruned layers); its string metadata holds the model spec,
data spec, run spec, input shape, class count and training history as JSON. safetensors cannot
carry code, so loading it never executes anything.

Foreign files are read with ``torch.load(weights_only=True)``, which refuses every pickled object
that is not a tensor or a plain container; a refusal names the pickle's offending globals (read
from its opcodes, never unpickled). Foreign safetensors and torch files go through the same
recognition (``recognise``): a plain state_dict, in its layers' natural order, of a zoo
architecture (matched by key names and shapes) or of a stack of Linear layers (an MLP is inferred
from the chain of weight shapes). Which container holds the tensors never changes the model.

Weights do not tell an activation: a Linear-only net (a Linear stack, or a match of ``fcn_mnist``)
loads only with an explicit ``activation``, else ``AmbiguousArchitecture`` names the choices
(conv zoo models have ReLU built in and keep it). A state_dict no zoo model or Linear stack fits
goes to ``models.foreign`` (torchvision, recognised or named by ``arch``), whose error says what
was found and what came closest. An ONNX file is converted by onnx2torch (``models.foreign``); our
checkpoint of it keeps the ONNX bytes (tensor ``source.onnx``), from which any process rebuilds
the module; a torchvision one records ``ModelSpec("torchvision", {arch, ...})``, a registered model,
and a timm one (named ``arch="timm:NAME"``) ``ModelSpec("timm", {arch})``.
"""

from __future__ import annotations

import io
import json
import math
import os
import pickle
import pickletools
import re
import struct
import warnings
import zipfile
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

from .errors import MAX_LINE, NNGeoError, one_line
from .models import ACTIVATIONS, MODELS, TIMM, TORCHVISION, FeedForward, build
from .models.mlp import sequential
from .specs import DataSpec, ModelSpec, RunSpec, spec_from_dict, to_dict

FORMAT_VERSION = "1"
MAX_BYTES = 2 * 1024**3
DETAIL_LIMIT = 200  # characters of an underlying error quoted in our one-line message
SAFE_FORMATS = "only safe formats are accepted: safetensors, or torch.save of a plain state_dict of tensors"
TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
FOREIGN_SUFFIXES = (".onnx", ".pt2")
ONNX = "onnx"  # the model name an ONNX upload's checkpoint records (rebuilt from its bytes)
ONNX_TENSOR = "source.onnx"  # the ONNX file's bytes, as uint8, in our checkpoint of it
ONNX_ATTR = "onnx_source"  # the attribute of a loaded ONNX model holding them (so a pruned copy saves too)
DEFAULT_SIDE = 224  # the image side torchvision's classifiers are trained at, when none is chosen
FAMILIES = (TORCHVISION, TIMM)  # registered models holding a named foreign architecture: never matched by keys


@dataclass
class Checkpoint:
    model: nn.Module
    model_spec: ModelSpec
    data_spec: DataSpec | None = None
    run_spec: RunSpec | None = None
    history: list[dict] = field(default_factory=list)
    masks: dict[str, torch.Tensor] = field(default_factory=dict)
    source: str = "nngeo"  # nngeo | zoo-state-dict | linear-stack | torchvision | timm | onnx
    meta: dict[str, Any] = field(default_factory=dict)
    onnx: bytes | None = None  # an ONNX model's file, which rebuilds it


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
    onnx: bytes | None = None,
) -> bytes:
    """``onnx``: the ONNX file an ``onnx`` model was converted from (a fresh process rebuilds the
    module from it, then loads the state); by default the one the loaded model carries."""
    model_spec = model_spec or _spec_of(model)
    onnx = onnx if onnx is not None else getattr(model, ONNX_ATTR, None)
    if (model_spec.name == ONNX) != (onnx is not None):
        raise NNGeoError("an ONNX model's checkpoint needs its ONNX file (onnx=...), and only it has one")
    tensors = {f"state.{k}": v.detach().to("cpu").contiguous().clone() for k, v in effective_state_dict(model).items()}
    if onnx is not None:
        tensors[ONNX_TENSOR] = torch.frombuffer(bytearray(onnx), dtype=torch.uint8)
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
    model_spec: ModelSpec | None = None


def _safetensors_header(read_range: Callable[[int, int], bytes], size: int | None = None) -> dict:
    """A safetensors file's JSON header (8-byte little-endian length, then that much JSON), checked
    against the file's ``size`` when it is known; an ``NNGeoError`` saying what is wrong otherwise."""
    head = read_range(0, 8)
    if len(head) < 8:
        raise NNGeoError(
            f"it is {len(head)} bytes long, too short for a safetensors header, which starts with an 8-byte length"
        )
    n = struct.unpack("<Q", head)[0]
    room = MAX_BYTES if size is None else size - 8
    if n == 0:
        raise NNGeoError("its header length (the first 8 bytes) is 0")
    if n > room:
        beyond = "the 2 GiB limit" if size is None else f"the {room:,} bytes that follow"
        raise NNGeoError(f"its first 8 bytes give a header length of {n:,} bytes, beyond {beyond}")
    raw = read_range(8, 8 + n)
    if len(raw) < n:
        raise NNGeoError(f"its header is cut short ({len(raw):,} of {n:,} bytes)")
    try:
        header = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise NNGeoError(f"its header is not text (byte {exc.start} is not UTF-8)") from None
    except json.JSONDecodeError as exc:
        raise NNGeoError(f"its header is not JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(header, dict):
        raise NNGeoError(f"its header is JSON but a {type(header).__name__}, not an object")
    meta = header.get("__metadata__", {})
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise NNGeoError("its __metadata__ is not a mapping of strings")
    buffer = None if size is None else size - 8 - n
    for name, entry in header.items():
        if name != "__metadata__":
            _check_tensor_entry(name, entry, buffer)
    return header


def _check_tensor_entry(name: str, entry: Any, buffer: int | None) -> None:
    """One tensor's header entry: dtype, shape and byte range inside the data that follows."""
    shape = entry.get("shape") if isinstance(entry, dict) else None
    offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
    if (
        not isinstance(entry, dict)
        or not isinstance(entry.get("dtype"), str)
        or not isinstance(shape, list)
        or not all(isinstance(d, int) and d >= 0 for d in shape)
        or not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(isinstance(o, int) and o >= 0 for o in offsets)
        or offsets[0] > offsets[1]
    ):
        raise NNGeoError(f"its header entry for tensor {name!r} lacks a valid dtype, shape or data_offsets")
    if buffer is not None and offsets[1] > buffer:
        raise NNGeoError(
            f"tensor {name!r} ends at byte {offsets[1]:,} of the data but the file holds {buffer:,} (truncated?)"
        )


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
        model_spec = spec_from_dict(json.loads(meta["model_spec"])) if "model_spec" in meta else None
    except (ValueError, TypeError, KeyError, AttributeError) as exc:  # NNGeoError is a ValueError
        detail = one_line(exc, typed=False, limit=DETAIL_LIMIT)
        raise NNGeoError(f"corrupt or truncated checkpoint header: {detail}") from None
    if not meta.get("nngeo_format"):
        raise NNGeoError("not an nngeo checkpoint (its header has no nngeo_format)")
    if model_spec is not None and not isinstance(model_spec, ModelSpec):
        raise NNGeoError("corrupt checkpoint header: its model_spec is not a model spec")
    return Header(shapes=shapes, data_spec=data_spec, model_spec=model_spec)


# -- loading -----------------------------------------------------------------------------------
def load(
    source: str | Path | bytes,
    *,
    allow_nonfinite: bool = False,
    arch: str | None = None,
    activation: str | None = None,
    input_shape: tuple[int, ...] | None = None,
    name: str | None = None,
) -> Checkpoint:
    """Load our checkpoint, a foreign state_dict or an ONNX file from a path or bytes. Never
    unpickles objects, never runs code from the file.

    The bytes decide the format; ``name`` (default: the path's) sharpens the message for a file
    that is no checkpoint at all (a ``.safetensors`` name gets the header's diagnosis) and marks
    ``.onnx`` / ``.pt2`` files. ``arch``, ``activation`` and ``input_shape`` are the user's
    choices for a foreign file (see ``recognise``); our own files record theirs and ignore them."""
    data = _read(source)
    if not data:
        raise NNGeoError("the checkpoint file is empty")
    label = name if name is not None else str(source) if isinstance(source, (str, Path)) else ""
    suffix = PurePath(label).suffix.lower()
    kind = _container(data)
    # a zip may be a torch.export program; bytes that are neither format may be ONNX (protobuf)
    if suffix in FOREIGN_SUFFIXES or data[:2] == b"PK" or (kind == "unknown" and data[:1] == b"\x08"):
        converted = _foreign().load_file(data, label)
        if converted is not None:
            ckpt = _from_onnx(converted, data, arch, activation, input_shape)
            if not allow_nonfinite:
                check_finite(ckpt.model)
            return ckpt
    choices = {"arch": arch, "activation": activation, "input_shape": input_shape}
    if kind == "safetensors":
        ckpt = _load_safetensors(data, choices)
    elif kind == "torch":
        ckpt = _load_torch(data, choices)
    else:
        raise _not_a_checkpoint(data, suffix)
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


def _container(data: bytes) -> str:
    """safetensors, torch (a torch.save zip, or a legacy pickle) or unknown, from the first bytes."""
    if data[:2] == b"PK":
        return "torch"
    if len(data) > 8 and data[8:9] == b"{" and 0 < struct.unpack("<Q", data[:8])[0] <= MAX_BYTES:
        return "safetensors"  # even when damaged: its header is then diagnosed
    if data[:1] == b"\x80" and data[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):  # a pickle's PROTO opcode
        return "torch"  # a legacy torch.save file, or a bare pickle
    return "unknown"


def _not_a_checkpoint(data: bytes, suffix: str) -> NNGeoError:
    try:
        _safetensors_header(lambda start, end: data[start:end], len(data))
        problem = "its header does not start with '{'"  # parsed as JSON, yet not where safetensors needs it
    except NNGeoError as exc:
        problem = str(exc)
    if suffix == ".safetensors":
        return NNGeoError(f"not a valid safetensors file: {problem}")
    if suffix in TORCH_SUFFIXES:
        return NNGeoError("not a PyTorch checkpoint: it is neither a zip archive (torch.save) nor a pickle")
    return NNGeoError(
        f"not a checkpoint: not safetensors ({problem}) and not a PyTorch file (no zip archive or pickle)"
    )


def _foreign() -> Any:
    """``nngeo_core.models.foreign``, imported on first need."""
    # lazy: torchvision, onnx and onnx2torch (~1.8 s measured); our own checkpoints never need them
    from .models import foreign

    return foreign


def _load_safetensors(data: bytes, choices: Mapping[str, Any]) -> Checkpoint:
    try:
        meta = _safetensors_header(lambda start, end: data[start:end], len(data)).get("__metadata__") or {}
    except NNGeoError as exc:
        raise NNGeoError(f"not a valid safetensors file: {exc}") from None
    try:
        tensors = st_load(data)
    except Exception as exc:  # the header was sound; safetensors names what else is wrong
        detail = one_line(exc, typed=False, limit=DETAIL_LIMIT)
        raise NNGeoError(f"corrupt safetensors file ({detail})") from None
    if meta.get("nngeo_format"):
        return _from_ours(tensors, meta)
    # a plain safetensors state_dict from elsewhere
    return recognise(tensors, **choices)


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
    onnx = tensors[ONNX_TENSOR].numpy().tobytes() if ONNX_TENSOR in tensors else None
    if model_spec.name == ONNX:
        if onnx is None or input_shape is None or num_classes is None:
            raise NNGeoError("the checkpoint of an ONNX model lacks its ONNX file or its input shape")
        model = _onnx_net(_foreign().load_onnx(onnx).model, input_shape, num_classes, model_spec.params, onnx)
    else:
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
        onnx=onnx,
    )


def _load_torch(data: bytes, choices: Mapping[str, Any]) -> Checkpoint:
    pickled = data
    if data[:2] == b"PK":
        try:
            archive = zipfile.ZipFile(io.BytesIO(data))
            archive.testzip()
            pkl = [n for n in archive.namelist() if n == "data.pkl" or n.endswith("/data.pkl")]
            pickled = archive.read(pkl[0]) if pkl else b""
        except (zipfile.BadZipFile, EOFError, OSError, zlib.error):
            raise NNGeoError("corrupt or truncated PyTorch checkpoint (its zip archive is damaged)") from None
        if not pkl:
            raise NNGeoError("a zip archive but not a PyTorch checkpoint (it has no data.pkl)")
    try:
        with warnings.catch_warnings():  # torch warns on stderr about pickle protocols: the CLI prints one line
            warnings.simplefilter("ignore")
            obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise _refusal(pickled, exc) from None
    except (RuntimeError, EOFError, ValueError, OSError, struct.error, UnicodeDecodeError) as exc:
        detail = one_line(exc, typed=False, limit=DETAIL_LIMIT)
        raise NNGeoError(f"corrupt or truncated checkpoint, or not a PyTorch file ({detail})") from None
    except Exception as exc:  # weights_only loading raises a few other types on garbage
        detail = one_line(exc, typed=True, limit=DETAIL_LIMIT)
        raise NNGeoError(f"unreadable checkpoint ({detail})") from None
    return recognise(_find_state_dict(obj), **choices)


# -- what a refused pickle holds, read from its opcodes (nothing is unpickled) -------------------
_STRING_OPS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING", "BINSTRING", "STRING"}
_PUT_OPS = {"PUT", "BINPUT", "LONG_BINPUT"}
_GET_OPS = {"GET", "BINGET", "LONG_BINGET"}
_OS_MODULES = {"posix": "os", "nt": "os"}  # os.system pickles as posix.system (nt.system on Windows)


def pickle_globals(pickled: bytes) -> list[str]:
    """Every ``module.name`` a pickle (or a run of pickles, as legacy torch files are) imports, in
    order, without unpickling: GLOBAL's argument, or STACK_GLOBAL's two strings on the stack."""
    found: list[str] = []
    stream = io.BytesIO(pickled)
    while stream.tell() < len(pickled):
        strings: list[str] = []  # string values pushed so far (STACK_GLOBAL takes the last two)
        memo: dict[Any, str] = {}
        last: str | None = None
        try:
            for op, arg, _ in pickletools.genops(stream):
                pushed = None
                if op.name == "GLOBAL":
                    found.append(".".join(str(arg).split(" ", 1)))
                elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                    found.append(f"{strings[-2]}.{strings[-1]}")
                elif op.name in _STRING_OPS:
                    pushed = str(arg)  # pickletools decodes these (py2 strings as latin-1)
                elif op.name in _GET_OPS and arg in memo:
                    pushed = memo[arg]
                elif op.name in _PUT_OPS and last is not None:
                    memo[arg] = last
                elif op.name == "MEMOIZE" and last is not None:
                    memo[len(memo)] = last
                if pushed is not None:
                    strings.append(pushed)
                if op.name not in _PUT_OPS and op.name != "MEMOIZE":
                    last = pushed
        except Exception:  # damaged or followed by raw storage bytes (legacy format): stop reading
            break
    return list(dict.fromkeys(found))


def torch_refuses(global_name: str) -> bool:
    """Whether ``torch.load(weights_only=True)`` refuses this global: torch's own allowlist is asked
    with a pickle that only names it (GLOBAL, STOP), so nothing is imported or called."""
    module, _, name = global_name.rpartition(".")
    if not module or "\n" in global_name:
        return True
    probe = b"\x80\x02c" + module.encode() + b"\n" + name.encode() + b"\n."
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.load(io.BytesIO(probe), weights_only=True)
    except pickle.UnpicklingError:
        return True
    except Exception:  # allowed: the unpickler got past the global, then found no checkpoint
        return False
    return False


def _refusal(pickled: bytes, exc: BaseException) -> NNGeoError:
    """The one line for a pickle that torch's safe loader refused: what it references, never how
    to load it anyway."""
    refused = [_shown_global(g) for g in pickle_globals(pickled) if torch_refuses(g)]
    if not refused:
        broken = _pickle_problem(pickled)
        if broken:
            return NNGeoError(f"corrupt or truncated PyTorch checkpoint: its pickle is malformed ({broken})")
        reason = _torch_reason(exc)
        said = f" ({reason})" if reason else ""
        return NNGeoError(f"refusing to load: torch's safe loader cannot read its pickle{said}; {SAFE_FORMATS}")
    which = (
        "which is not a tensor or a plain container"
        if len(refused) == 1
        else "which are not tensors or plain containers"
    )
    # as many names as fit the one line a user sees (errors.MAX_LINE), the rest counted
    for n in range(len(refused), 0, -1):
        more = f" and {len(refused) - n} more" if n < len(refused) else ""
        text = f"refusing to load: the file's pickle references {', '.join(refused[:n])}{more}, {which}; {SAFE_FORMATS}"
        if len(text) <= MAX_LINE:
            break
    return NNGeoError(text)


def _pickle_problem(pickled: bytes) -> str:
    """What is wrong with the first pickle in ``pickled`` as pickletools reads it ('' if nothing)."""
    try:
        for _ in pickletools.genops(io.BytesIO(pickled)):
            pass
    except Exception as exc:  # pickletools raises ValueError and a few others on malformed opcodes
        return one_line(exc, typed=False, limit=DETAIL_LIMIT)
    return ""


def _shown_global(name: str) -> str:
    module, _, attr = name.partition(".")
    return f"{name} ({_OS_MODULES[module]}.{attr})" if module in _OS_MODULES else name


# sentences of torch's refusal that tell how to load the file unsafely: never passed on
_UNSAFE_ADVICE = ("weights_only", "trust", "safe_globals", "can still be loaded", "Alternatively", "documentation")


def _torch_reason(exc: BaseException) -> str:
    """The sentence of torch's refusal that says what it found, without its advice to load anyway."""
    text = str(exc).split("WeightsUnpickler error:", 1)[-1]
    sentences = [one_line(t) for line in text.splitlines() for t in re.split(r"(?<=[.!?])\s+", line)]
    keep = [t for t in sentences if t and not any(w in t for w in _UNSAFE_ADVICE)]
    return one_line(keep[0], limit=DETAIL_LIMIT).rstrip(".") if keep else ""


def _find_state_dict(obj: Any) -> dict[str, torch.Tensor]:
    if isinstance(obj, Mapping):
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return dict(obj)
        for key in ("state_dict", "model_state_dict", "model", "net", "weights"):
            inner = obj.get(key)
            if isinstance(inner, Mapping) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
                return dict(inner)
    raise NNGeoError("the file holds no state_dict (a mapping of parameter names to tensors)")


def recognise(
    state: Mapping[str, torch.Tensor],
    activation: str | None = None,
    *,
    arch: str | None = None,
    input_shape: tuple[int, ...] | None = None,
) -> Checkpoint:
    """The architecture of a foreign state_dict, whatever file held it.

    ``arch`` (a zoo model or a torchvision builder, or ``timm:NAME``) is used when given; else a
    zoo model, a Linear stack, then a torchvision architecture, in that order. An explicit
    ``activation`` is always honoured; a Linear-only net without one is ``AmbiguousArchitecture``
    over the activations (the weights cannot tell). ``input_shape`` (C, H, W) is for a torchvision
    model, whose input size the weights do not fix (default: its channels at 224×224). Keys are
    put in their natural order first (layer 10 after layer 9), since containers disagree on order
    (safetensors does not keep torch's)."""
    state = {_strip_prefix(k): v for k, v in sorted(state.items(), key=lambda kv: _natural_key(_strip_prefix(kv[0])))}
    if not state:
        raise NNGeoError("the state_dict is empty")
    if arch == TIMM:
        raise NNGeoError("name the timm architecture as timm:NAME, e.g. --arch timm:resnet18")
    if arch is not None and arch in MODELS and arch not in FAMILIES:
        return _honoured(_named_zoo(state, arch), activation)
    if arch is not None:
        return _torchvision_checkpoint(_foreign().load_state_dict(state, arch), activation, input_shape)
    zoo = _match_zoo(state)
    if zoo is not None:
        return _honoured(zoo, activation)
    if all(v.dim() == 2 for k, v in state.items() if k.endswith("weight")) and any(k.endswith("weight") for k in state):
        return _linear_stack(state, activation)
    foreign = _foreign()
    try:
        found = foreign.load_state_dict(state)
    except foreign.AmbiguousArchitecture:
        raise
    except NNGeoError:
        raise _unrecognised(state) from None
    return _torchvision_checkpoint(found, activation, input_shape)


SHOWN_CLOSEST = 2  # architectures named when nothing fits


def _unrecognised(state: dict[str, torch.Tensor]) -> NNGeoError:
    """What the state_dict holds and the closest zoo and torchvision architectures, with why each
    does not fit (a network of our zoo's layout differs in a few shapes; a custom one in keys)."""
    foreign = _foreign()
    shapes = {k: tuple(int(d) for d in v.shape) for k, v in state.items()}
    fits = []
    with torch.random.fork_rng(devices=[]):
        for name in (n for n in MODELS if n not in FAMILIES):
            try:
                ref = build(name, **_candidate_params(name, state)[0]).state_dict()
            except Exception:  # the guessed parameters do not build this model: it is not close
                continue
            sig = foreign.Signature(name, {}, tuple(ref), tuple(tuple(v.shape) for v in ref.values()), None)
            fits.append(("zoo", foreign.fit(sig, shapes)))
    fits += [("torchvision", f) for f in foreign.closest(state)]
    # fewest differences first; among equals, those whose differing tensors at least have the same rank
    fits.sort(key=lambda wf: (wf[1].distance, sum(len(a) != len(b) for _, a, b in wf[1].differ)))
    near = "; ".join(f"{where} {f.why_not()}" for where, f in fits[:SHOWN_CLOSEST]) or "none shares its layer names"
    return NNGeoError(
        foreign.fit_line(
            "unrecognised architecture (a network of your own uploads as an ONNX export): the state_dict holds "
            f"{foreign.describe_state(state)}; closest: {near}"
        )
    )


def _honoured(ckpt: Checkpoint, activation: str | None) -> Checkpoint:
    """A zoo match with the user's activation; a Linear-only one needs it (the weights cannot
    tell), a conv one keeps its built-in ReLU when none is given."""
    model = ckpt.model
    linear_only = not any(isinstance(m, nn.Conv2d) for m in model.modules())
    if activation is None and not linear_only:
        return ckpt
    honoured, spec = _foreign().honour_activation(model, activation)
    return Checkpoint(model=honoured, model_spec=spec, source=ckpt.source, meta=ckpt.meta)


def _named_zoo(state: dict[str, torch.Tensor], name: str) -> Checkpoint:
    """The zoo model ``name`` with the state loaded, or a one-line error saying why it does not fit."""
    found = _match_zoo(state, names=(name,))
    if found is not None:
        return found
    with torch.random.fork_rng(devices=[]):
        model = build(name, **_candidate_params(name, state)[0])
    _load_state(model, state, what=f"zoo model {name!r}")  # raises: the shapes differ somewhere
    raise NNGeoError(f"the weights do not fit zoo model {name!r}")


def _torchvision_checkpoint(found: Any, activation: str | None, input_shape: tuple[int, ...] | None) -> Checkpoint:
    """A ``models.foreign`` state_dict match as a registered ``torchvision`` model (or, for a
    named timm one, the registered ``timm`` model): a FeedForward [body, head] (the keys
    ``build("torchvision" / "timm", ...)`` gives), checked on a zero batch of ``input_shape``."""
    model, spec = found
    source = spec.get("source")
    if source not in FAMILIES:
        raise NNGeoError(f"{spec.get('arch')} ({source}) cannot be stored: only torchvision and timm models rebuild")
    arch, channels, classes = str(spec["arch"]), int(spec["in_channels"]), int(spec["num_classes"])
    foreign = _foreign()
    if source == TIMM:
        arch = arch.removeprefix(f"{TIMM}:")
    if activation is not None:
        raise NNGeoError(f"{source}'s {arch} has its activations built in; an activation choice does not apply")
    assumed = input_shape is None
    shape = (channels, DEFAULT_SIDE, DEFAULT_SIDE) if input_shape is None else tuple(int(d) for d in input_shape)
    if len(shape) != 3 or shape[0] != channels or min(shape) < 1:
        raise NNGeoError(f"{arch}'s weights take {channels}-channel images: give an input shape {channels},H,W")
    if source == TIMM:
        net = sequential(FeedForward, foreign.timm_feedforward_parts(model))
        params: dict[str, Any] = {"arch": arch}
    else:
        net = sequential(FeedForward, foreign.feedforward_parts(model))
        params = {"arch": arch, "aux_logits": spec.get("kwargs", {}).get("aux_logits", True)}
    net.input_shape, net.num_classes = shape, classes
    net.zoo_name, net.zoo_params = str(source), params
    _check_forward(net, shape, classes, what=f"{source}'s {arch}")
    note = f"{source} {arch}, {classes} classes, input {'×'.join(map(str, shape))}"
    return Checkpoint(
        model=net,
        model_spec=ModelSpec(str(source), dict(params)),
        source=str(source),
        meta={"inferred": note + (" (assumed; choose another with --input-shape C,H,W)" if assumed else "")},
    )


def _check_forward(net: nn.Module, shape: tuple[int, ...], classes: int | None, what: str) -> int:
    """The class count ``net`` gives for one zero input of ``shape`` (eval mode, no gradients); a
    one-line error when it cannot take that shape or does not give one logit per class."""
    was = net.training
    net.eval()
    try:
        with torch.no_grad():
            out = net(torch.zeros(1, *shape))
    except Exception as exc:  # a conv stack too deep for small images raises RuntimeError, others too
        detail = one_line(exc, typed=False, limit=DETAIL_LIMIT)
        raise NNGeoError(f"{what} cannot take inputs of shape {'×'.join(map(str, shape))} ({detail})") from None
    finally:
        net.train(was)
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or (classes is not None and out.shape[1] != classes):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise NNGeoError(f"{what} gives {got} for one input, not one logit per class")
    return int(out.shape[1])


def _onnx_net(
    module: nn.Module, input_shape: Any, num_classes: int, params: Mapping[str, Any], source: bytes
) -> FeedForward:
    net = sequential(FeedForward, [module])
    net.input_shape, net.num_classes = tuple(int(d) for d in input_shape), int(num_classes)
    net.zoo_name, net.zoo_params = ONNX, dict(params)
    setattr(net, ONNX_ATTR, source)
    return net


def _from_onnx(
    found: Any, data: bytes, arch: str | None, activation: str | None, input_shape: tuple[int, ...] | None
) -> Checkpoint:
    """An ONNX file converted by ``models.foreign``: its input shape is the file's (or the
    user's, where the file leaves it open), its class count what one input gives."""
    module, spec = found
    if arch is not None or activation is not None:
        raise NNGeoError("an ONNX file carries its own architecture and activations; arch and activation do not apply")
    shape = tuple(int(d) for d in input_shape) if input_shape is not None else spec.get("input_shape")
    if not shape:
        dims = [i["shape"] for i in spec.get("inputs", [])]
        raise NNGeoError(f"the ONNX model's input shape is not fixed (inputs {dims}); give one with --input-shape")
    shape = tuple(int(d) for d in shape)
    params = {"sha256": spec["sha256"]}
    net = _onnx_net(module, shape, int(spec.get("num_classes") or 1), params, data)
    net.num_classes = _check_forward(net, shape, spec.get("num_classes"), what="the ONNX model")
    opsets = ", ".join(f"{d} {v}" for d, v in spec.get("opsets", {}).items())
    return Checkpoint(
        model=net,
        model_spec=ModelSpec(ONNX, params),
        source="onnx",
        meta={"inferred": f"ONNX graph ({opsets}), input {'×'.join(map(str, shape))}, {net.num_classes} classes"},
        onnx=data,
    )


def _strip_prefix(k: str) -> str:
    for p in ("module.", "_orig_mod."):
        while k.startswith(p):
            k = k[len(p) :]
    return k


def _match_zoo(state: dict[str, torch.Tensor], names: tuple[str, ...] | None = None) -> Checkpoint | None:
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    # torchvision architectures are recognised by models.foreign, from their own keys
    names = names or tuple(n for n in MODELS if n not in FAMILIES)
    # the candidates' random initialisations (overwritten by the state) must not move the caller's RNG
    with torch.random.fork_rng(devices=[]):
        for name in names:
            for params in _candidate_params(name, state):
                try:
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
    elif name == "vgg9" and weights and dense:  # no width multiplier; the first dense layer fits the image
        cands = [{"input_shape": (weights[0].shape[1], 32, 32), "num_classes": dense[-1].shape[0]}]
    elif name in ("lenet5", "lenet5_s2", "cnn_mnist") and weights and dense:
        cands = [{"input_shape": (weights[0].shape[1], 28, 28), "num_classes": dense[-1].shape[0]}]
    elif name == "fcn_mnist" and dense:
        # it flattens its input, so only the first layer's width tells the input size
        n_in = int(dense[0].shape[1])
        side = math.isqrt(n_in)
        shape = (1, side, side) if side * side == n_in else (n_in,)
        cands = [{"num_classes": dense[-1].shape[0], "input_shape": shape}]
    return cands


def _linear_stack(state: dict[str, torch.Tensor], activation: str | None) -> Checkpoint:
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
    shown = f"{n_in}-{'-'.join(map(str, widths))}{'-' if widths else ''}{n_out}"
    if activation is None and widths:  # activations have no weights: asked, never assumed
        foreign = _foreign()
        raise foreign.AmbiguousArchitecture(
            f"a Linear stack {shown} (its activation has no weights)", ACTIVATIONS, "activation"
        )
    activation = activation or "relu"  # no hidden layer: no activation is applied
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
        meta={"inferred": f"Linear stack {shown}" + (f", activation {activation}" if widths else "")},
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
