"""Checkpoint uploads: validate the bytes, store them as a run under their content hash.

Nothing from an uploaded file is executed: ``checkpoint.load`` reads safetensors, or torch files
with ``weights_only=True``, and builds the architecture itself from our zoo. The file name is only
shown (cleaned) as a label; the result is stored under the hash of a spec holding the file's
sha256, so the same bytes always land on the same key and can never replace another run.

The dashboard's Upload page and ``nngeo upload FILE`` both call ``store_upload``. This module is
imported whenever the ``nngeo`` parser is built, so torch, pandas and the store load lazily.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
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
    source: str  # nngeo | zoo-state-dict | linear-stack
    n_params: int
    layers: pd.DataFrame = field(repr=False)
    note: str = ""


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def display_name(name: str | None) -> str:
    """A file name cut to a harmless label: last path part, printable, <= 80 chars."""
    base = re.split(r"[\\/]", str(name or ""))[-1]
    base = re.sub(r"[^\w.\- ]", "_", base).strip(" .")
    return (base or "checkpoint")[:80]


def upload_spec(sha256: str, data_spec: DataSpec | None = None) -> dict[str, Any]:
    """The spec an upload is stored under: its content hash (and the data it is analysed with)."""
    spec: dict[str, Any] = {"kind": UPLOAD_KIND, "sha256": sha256}
    if data_spec is not None:
        spec["data"] = to_dict(data_spec)
    return spec


def upload_key(data: bytes, data_spec: DataSpec | None = None) -> str:
    return spec_hash(upload_spec(content_hash(data), data_spec))


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


def validate_checkpoint(data: bytes, max_bytes: int | None = None, name: str | None = None) -> Checkpoint:
    """Load the bytes as a checkpoint (never unpickling objects); one-line ``NNGeoError`` if bad.
    ``name`` is the file's name: its suffix sharpens the message for a file that is no checkpoint."""
    from . import checkpoint  # lazy: torch (1.3 s CPU, measured); `nngeo --help` must not pay for it

    if data is None or len(data) == 0:
        raise NNGeoError("the uploaded file is empty")
    if max_bytes is not None and len(data) > max_bytes:
        raise NNGeoError(f"the file is {len(data) / 2**20:.1f} MB; the limit is {max_bytes / 2**20:.0f} MB")
    try:
        return checkpoint.load(bytes(data), name=name)
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
) -> UploadResult:
    """Validate and store an uploaded checkpoint; returns its key (its content-hash spec's hash).

    ``data_spec`` names the dataset the model is analysed with when the file does not say
    (foreign state_dicts); a file in our format keeps its own unless one is given.
    """
    # lazy: checkpoint, runs and the store load torch and pandas (seconds); `nngeo --help` must not pay for them
    from . import checkpoint
    from .runs import CHECKPOINT
    from .store import default_store

    store = store or default_store()
    ckpt = validate_checkpoint(data, max_bytes, name=name)
    data_spec = data_spec or ckpt.data_spec
    _check_data_fits(ckpt.model, data_spec)
    spec = upload_spec(content_hash(data), data_spec)
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
    )
    attrs = dict(
        model=ckpt.model_spec.name,
        data=data_spec.name if data_spec else None,
        method="upload",
        label=f"{ckpt.model_spec.name} from {display_name(name)}",
        source=ckpt.source,
        n_params=n_params,
        sha256=spec["sha256"],
    )
    store.put(UPLOAD_KIND, spec, layers, artifacts={CHECKPOINT: blob}, attrs=attrs, key=key)
    result.created = True
    return result


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
    result = store_upload(data, name=a.name or a.file, store=store, data_spec=data_spec, max_bytes=a.max_mb * 2**20)
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
    """Add ``nngeo upload FILE [--name NAME] [--data NAME [--data-param K=V]] [--json]``."""
    p = sub.add_parser(
        "upload",
        help="validate a checkpoint file and store it as a run (as the dashboard's Upload page does)",
        description="Read a checkpoint (an nngeo .safetensors, a zoo model's or a Linear stack's "
        "state_dict in .pt/.pth/.safetensors) as tensors only, nothing in it executed, and store it "
        "under its content hash. Prints the stored key.",
    )
    p.add_argument("file", help="the checkpoint file")
    p.add_argument("--name", help="the name shown in the run's label (default: the file's name)")
    p.add_argument("--data", help="dataset to analyse it with, when the file does not say (see `nngeo datasets`)")
    p.add_argument("--data-param", action="append", metavar="K=V", help="dataset parameter, e.g. resize=28")
    p.add_argument("--max-mb", type=int, default=DEFAULT_MAX_MB, help="size limit in MB (default %(default)s)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_upload)


def add_commands(sub: Any) -> None:
    """The hook ``nngeo_core.cli`` calls for each module in ``COMMAND_MODULES``."""
    add_upload_command(sub)
