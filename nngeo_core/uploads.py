"""Checkpoint uploads: validate the bytes, store them as a run under their content hash.

Nothing from an uploaded file is executed: ``checkpoint.load`` reads safetensors, or torch files
with ``weights_only=True``, or ONNX (protobuf, converted by onnx2torch), and builds the
architecture itself (our zoo, torchvision, timm when named, or the ONNX graph). The file name is only shown
(cleaned) as a label; the result is stored under the hash of a spec holding the file's sha256 and
the user's explicit choices (architecture, activation, input shape), so the same bytes with the
same choices always land on the same key and can never replace another run. A file whose
architecture or activation the weights leave open is ``AmbiguousArchitecture`` and stores nothing.

The dashboard's Upload page and ``nngeo upload FILE`` both call ``store_upload``. This module is
imported whenever the ``nngeo`` parser is built, so torch, pandas and the store load lazily.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from math import prod
from typing import TYPE_CHECKING, Any

from .cli_args import parse_params, print_json
from .errors import NNGeoError, one_line
from .specs import DataSpec, spec_hash, to_dict

if TYPE_CHECKING:
    import pandas as pd
    from torch import nn

    from .checkpoint import Checkpoint
    from .store import Store

UPLOAD_KIND = "upload"
DEFAULT_MAX_MB = 200  # same as server.maxUploadSize in .streamlit/config.toml
LAYER_COLUMNS = ["layer", "kind", "weight_shape", "n_weights"]


@dataclass
class UploadResult:
    key: str
    created: bool  # False: these bytes were already stored
    model: str
    source: str  # nngeo | zoo-state-dict | linear-stack | torchvision | timm | onnx
    n_params: int
    layers: pd.DataFrame = field(repr=False)
    note: str = ""
    input_shape: tuple[int, ...] = ()
    num_classes: int | None = None
    arch: str = ""  # the architecture within a family model (torchvision or timm: resnet18, …)


def choice_needed(exc: BaseException) -> dict[str, Any] | None:
    """What an ``AmbiguousArchitecture`` asks the user to choose (``option``: arch or activation,
    ``candidates``, ``message``); ``None`` for any other error. Read from the error's attributes,
    so a caller need not import ``models.foreign`` (torchvision, onnx: ~1.8 s) to recognise it."""
    candidates = getattr(exc, "candidates", None)
    option = getattr(exc, "option", None)
    if not isinstance(exc, NNGeoError) or not candidates or option not in ("arch", "activation"):
        return None
    return {"option": option, "candidates": list(candidates), "message": one_line(exc)}


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def display_name(name: str | None) -> str:
    """A file name cut to a harmless label: last path part, printable, <= 80 chars."""
    base = re.split(r"[\\/]", str(name or ""))[-1]
    base = re.sub(r"[^\w.\- ]", "_", base).strip(" .")
    return (base or "checkpoint")[:80]


def upload_spec(
    sha256: str, data_spec: DataSpec | None = None, choices: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The spec an upload is stored under: its content hash, the data it is analysed with, and the
    choices the user made (only those given, so an upload without choices keeps its old key)."""
    spec: dict[str, Any] = {"kind": UPLOAD_KIND, "sha256": sha256}
    if data_spec is not None:
        spec["data"] = to_dict(data_spec)
    made = {k: list(v) if isinstance(v, tuple) else v for k, v in (choices or {}).items() if v is not None}
    if made:
        spec["choices"] = made
    return spec


def upload_key(data: bytes, data_spec: DataSpec | None = None, **choices: Any) -> str:
    return spec_hash(upload_spec(content_hash(data), data_spec, choices))


def parse_input_shape(text: str | None) -> tuple[int, ...] | None:
    """``"3,32,32"`` (or ``3x32x32``) as ``(3, 32, 32)``; ``None`` for nothing; a one-line error else."""
    if text is None or not str(text).strip():
        return None
    parts = re.split(r"\s*[,x×]\s*|\s+", str(text).strip())
    if not all(p.isdigit() and int(p) > 0 for p in parts):
        raise NNGeoError(f"input shape {text!r} must be positive whole numbers such as 3,32,32 (C,H,W)")
    return tuple(int(p) for p in parts)


def layer_table(model: nn.Module) -> pd.DataFrame:
    """One row per prunable layer: name, kind, weight shape, weight count."""
    # lazy: pandas and the model zoo (torch) take seconds; `nngeo --help` must not pay for them
    import pandas as pd

    from .models import prunable_layers

    rows = [
        {
            "layer": li.name,
            "kind": li.kind,
            "weight_shape": "×".join(map(str, li.weight_shape)),
            "n_weights": int(li.n_weights),
        }
        for li in prunable_layers(model)
    ]
    return pd.DataFrame(rows, columns=LAYER_COLUMNS)


def validate_checkpoint(
    data: bytes, max_bytes: int | None = None, name: str | None = None, **choices: Any
) -> Checkpoint:
    """Load the bytes as a checkpoint (never unpickling objects); one-line ``NNGeoError`` if bad
    (``AmbiguousArchitecture`` when a choice is needed). ``name`` is the file's name: its suffix
    marks ONNX and sharpens the message for a file that is no checkpoint. ``choices``: ``arch``,
    ``activation``, ``input_shape`` (see ``checkpoint.recognise``)."""
    from . import checkpoint  # lazy: torch (1.3 s CPU, measured); `nngeo --help` must not pay for it

    if data is None or len(data) == 0:
        raise NNGeoError("the uploaded file is empty")
    if max_bytes is not None and len(data) > max_bytes:
        raise NNGeoError(f"the file is {len(data) / 2**20:.1f} MB; the limit is {max_bytes / 2**20:.0f} MB")
    try:
        return checkpoint.load(bytes(data), name=name, **choices)
    except NNGeoError:
        raise
    except Exception as exc:  # anything else a hostile or broken file provokes: still one line
        raise NNGeoError(f"not a usable checkpoint ({one_line(exc, typed=True, limit=200)})") from None


def store_upload(
    data: bytes,
    *,
    name: str | None = None,
    store: Store | None = None,
    data_spec: DataSpec | None = None,
    max_bytes: int | None = None,
    arch: str | None = None,
    activation: str | None = None,
    input_shape: tuple[int, ...] | None = None,
) -> UploadResult:
    """Validate and store an uploaded checkpoint; returns its key (its content-hash spec's hash).

    ``data_spec`` names the dataset the model is analysed with when the file does not say
    (foreign state_dicts); a file in our format keeps its own unless one is given. ``arch``,
    ``activation`` and ``input_shape`` are the user's choices for a foreign file; they are part
    of the key. Nothing is stored when anything is wrong (or ambiguous).
    """
    # lazy: checkpoint, runs and the store load torch and pandas (seconds); `nngeo --help` must not pay for them
    from . import checkpoint
    from .runs import CHECKPOINT
    from .store import default_store

    store = store or default_store()
    # the data's image shape is the default input shape (a torchvision net's, an ONNX file's open
    # one): the same shape given explicitly is no choice, so the page and the CLI give one key
    data_shape = _data_shape(data_spec)
    if input_shape is not None and tuple(input_shape) == data_shape:
        input_shape = None
    ckpt = validate_checkpoint(
        data,
        max_bytes,
        name=name,
        arch=arch,
        activation=activation,
        input_shape=input_shape or (data_shape if len(data_shape) == 3 else None),
    )
    choices = {"arch": arch, "activation": activation, "input_shape": input_shape}
    data_spec = data_spec or ckpt.data_spec
    _check_data_fits(ckpt.model, data_spec)
    spec = upload_spec(content_hash(data), data_spec, choices)
    key = spec_hash(spec)
    layers = layer_table(ckpt.model)
    n_params = int(sum(p.numel() for p in ckpt.model.parameters()))
    note = str(ckpt.meta.get("inferred", "")) if isinstance(ckpt.meta, dict) else ""
    result = UploadResult(
        key=key,
        created=False,
        model=ckpt.model_spec.name,
        source=ckpt.source,
        n_params=n_params,
        layers=layers,
        note=note,
        input_shape=tuple(getattr(ckpt.model, "input_shape", ()) or ()),
        num_classes=getattr(ckpt.model, "num_classes", None),
        arch=str(ckpt.model_spec.params.get("arch", "")),
    )
    if store.exists(key):
        return result
    blob = checkpoint.to_bytes(
        ckpt.model,
        model_spec=ckpt.model_spec,
        data_spec=data_spec,
        run_spec=ckpt.run_spec,
        history=ckpt.history,
        masks=ckpt.masks,
        extra={"uploaded_as": display_name(name), "source": ckpt.source},
        onnx=ckpt.onnx,
    )
    attrs = dict(
        model=ckpt.model_spec.name,
        data=data_spec.name if data_spec else None,
        method="upload",
        label=f"{ckpt.model_spec.params.get('arch', ckpt.model_spec.name)} from {display_name(name)}",
        source=ckpt.source,
        n_params=n_params,
        sha256=spec["sha256"],
    )
    store.put(UPLOAD_KIND, spec, layers, artifacts={CHECKPOINT: blob}, attrs=attrs, key=key)
    result.created = True
    return result


def _data_shape(data_spec: DataSpec | None) -> tuple[int, ...]:
    if data_spec is None:
        return ()
    from .data import dataset_info  # lazy: torch via the data registry (1.4 s CPU); `nngeo --help` must not pay

    return tuple(int(d) for d in dataset_info(data_spec.name, **dict(data_spec.params)).input_shape)


def _check_data_fits(model: nn.Module, data_spec: DataSpec | None) -> None:
    """Refuse a dataset whose input shape the model cannot take (caught now, not in a job)."""
    if data_spec is None:
        return
    from .data import dataset_info  # lazy: torch via the data registry (1.4 s CPU); `nngeo --help` must not pay

    info = dataset_info(data_spec.name, **dict(data_spec.params))
    want = tuple(getattr(model, "input_shape", ()) or ())
    if want and prod(want) != prod(info.input_shape):
        raise NNGeoError(
            f"the model takes inputs of shape {want} but {data_spec.name} has {tuple(info.input_shape)}; "
            "pick a matching dataset"
        )


# -- `nngeo upload FILE` -------------------------------------------------------------------------
def cmd_upload(a: argparse.Namespace) -> int:
    """Validate and store a checkpoint file as the Upload page does; print its key (``--json``: a
    record of what was stored). A bad file is a one-line error (exit 2) and stores nothing."""
    from .store import Store, default_store  # lazy: pandas, pyarrow (~0.5 s); `nngeo --help` must not pay for them

    with open(a.file, "rb") as f:
        data = f.read()
    data_spec = DataSpec(a.data, params=parse_params(a.data_param)) if a.data else None
    if data_spec is None and a.data_param:
        raise NNGeoError("--data-param needs --data")
    store = Store(a.store) if a.store else default_store()
    result = store_upload(
        data,
        name=a.name or a.file,
        store=store,
        data_spec=data_spec,
        max_bytes=a.max_mb * 2**20,
        arch=a.arch,
        activation=a.activation,
        input_shape=parse_input_shape(a.input_shape),
    )
    if a.json:
        print_json(
            {
                "key": result.key,
                "created": result.created,
                "model": result.model,
                "source": result.source,
                "n_params": result.n_params,
                "note": result.note,
                "store": store.root,
            }
        )
    else:
        verb = "stored" if result.created else "already stored"
        print(
            f"{verb}: {result.model} ({result.source}), {result.n_params:,} parameters"
            + (f"; {result.note}" if result.note else ""),
            file=sys.stderr,
        )
        print(result.key)
    return 0


def add_upload_command(sub: Any) -> None:
    """Add ``nngeo upload FILE [--arch NAME] [--activation NAME] [--input-shape C,H,W] [--name NAME]
    [--data NAME [--data-param K=V]] [--json]``."""
    p = sub.add_parser(
        "upload",
        help="validate a checkpoint file and store it as a run (as the dashboard's Upload page does)",
        description="Read a checkpoint (an nngeo .safetensors; a state_dict in .pt/.pth/.safetensors of "
        "a zoo model, a Linear stack, a torchvision classifier or a timm model named with --arch timm:NAME; "
        "or an .onnx file) without executing "
        "anything in it, and store it under its content hash and your choices. Prints the stored key. "
        "When the weights fit several architectures or activations, the error names them: choose with "
        "--arch or --activation.",
    )
    p.add_argument("file", help="the checkpoint file")
    p.add_argument(
        "--arch",
        help="the architecture, when the weights fit several: a zoo model or a torchvision builder; "
        "timm:NAME for a timm model (needs timm installed)",
    )
    p.add_argument("--activation", help="the activation of a Linear-only net (the weights cannot tell), e.g. tanh")
    p.add_argument(
        "--input-shape",
        metavar="C,H,W",
        help="input shape for a torchvision or timm net, or an ONNX file with open dims "
        "(default: the data's, else C,224,224 / the file's)",
    )
    p.add_argument("--name", help="the name shown in the run's label (default: the file's name)")
    p.add_argument("--data", help="dataset to analyse it with, when the file does not say (see `nngeo datasets`)")
    p.add_argument("--data-param", action="append", metavar="K=V", help="dataset parameter, e.g. resize=28")
    p.add_argument("--max-mb", type=int, default=DEFAULT_MAX_MB, help="size limit in MB (default %(default)s)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_upload)


def add_commands(sub: Any) -> None:
    """The hook ``nngeo_core.cli`` calls for each module in ``COMMAND_MODULES``."""
    add_upload_command(sub)
