"""Export a stored model, or one level of a stored pruning sweep, for use outside nngeo.

Formats (``export_formats()``):

* ``safetensors``: the model's own ``state_dict`` keys, pruned weights stored as zeros; string
  metadata (JSON) names the architecture (``model_spec``, ``input_shape``, ``num_classes``), the
  sparsity and the source (result key, kind, dense run, seed, level). It loads into a freshly built
  architecture with ``load_state_dict``.
* ``state_dict``: the same tensors as ``torch.save`` of a plain dict (loads with ``weights_only=True``).
* ``pruned``: ``torch.save`` of the ``torch.nn.utils.prune`` form: every dense/conv layer as
  ``<layer>.weight_orig`` and ``<layer>.weight_mask`` (all ones where the level pruned nothing),
  the other parameters and buffers as they are; ``prune.identity`` (or ``prune.custom_from_mask``)
  on those layers of the original architecture, then ``load_state_dict``, gives the pruned model.
* ``onnx``: the pruned model through ``torch.onnx.export`` (TorchScript exporter, fixed opset, a
  dynamic batch dimension, input ``input`` of the model's input shape, output ``logits``).

A sweep stores its table (one row per seed and level) and, since sweeps store them, each level's
final model as the artefact ``level_artifact(seed, index)`` (our checkpoint format, masks
included): such a level is exported from that artefact as it is. A sweep stored before that has
only its table, so its level is rebuilt: the sweep's own steps for that seed (strategy, seed, settings, fine-tuning) run
again from its stored dense run, up to that level (an iterative strategy goes through every lower
level), and the rebuilt model must reproduce the stored row (sparsity, nonzero weights, accuracy
and loss before and after fine-tuning) or the export is refused: the file is always the model the
sweep reports. The steps are seeded and data loading has no workers, so on the device and torch
build that ran the sweep they repeat exactly.

Every export is computed in memory first and written through a temporary file renamed into place,
so a failure (bad level, an operator ONNX lacks) leaves nothing at the destination.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import os
import re
import sys
import tempfile
import threading
import uuid
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save as st_save
from torch import nn

from . import checkpoint
from .data import load as load_data
from .errors import NNGeoError, one_line
from .models import builder_name, builder_renames, model_input_shape, prunable_layers
from .progress import Progress
from .pruning.masks import Masks, apply_masks, export_state_dict, full_masks, plain_copy
from .pruning.masks import sparsity as mask_sparsity
from .pruning.specs import SweepSpec
from .pruning.sweep import Level, cost_of, level_artifact, seed_run_spec
from .pruning.sweep import iter_levels as sweep_levels
from .runs import load_run
from .settings import pick_device
from .specs import ModelSpec, spec_from_dict, to_dict
from .store import MODEL_KINDS, Store, default_store

EXPORT_VERSION = "1"
ONNX_OPSET = 17  # fixed, so a file does not change with torch's default; onnxruntime >= 1.14 runs it
SWEEP_KIND = "prune-sweep"
# a requested level matches the nearest stored one within this: levels are typed as the 6 digits
# listed (0.666667 for 1 - 1/3)
LEVEL_TOLERANCE = 1e-6
LOSS_RTOL = 1e-5  # the rebuilt level's losses must match the stored ones this closely (float sums)


@dataclass(frozen=True)
class Format:
    suffix: str
    mime: str
    description: str


FORMATS: dict[str, Format] = {
    "safetensors": Format(".safetensors", "application/octet-stream", "state_dict, pruned weights zeroed"),
    "state_dict": Format(".pt", "application/octet-stream", "torch.save of the plain state_dict"),
    "pruned": Format(".pruned.pt", "application/octet-stream", "torch.nn.utils.prune weight_orig/weight_mask"),
    "onnx": Format(".onnx", "application/octet-stream", "ONNX graph of the pruned model"),
}


def export_formats() -> tuple[str, ...]:
    """The model export formats, in the order to offer them."""
    return tuple(FORMATS)


@dataclass
class Exportable:
    """One model ready to export: its weights (possibly carrying pruning parametrisations), the
    masks of every dense/conv layer, its architecture and where it came from."""

    model: nn.Module
    masks: Masks
    model_spec: ModelSpec
    source: dict[str, Any]
    sparsity: dict[str, Any] = field(default_factory=dict)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return model_input_shape(self.model)


# -- finding the model -------------------------------------------------------------------------
def exportable(
    store: Store, key: str, *, level: float | None = None, seed: int | None = None, progress: Progress | None = None
) -> Exportable:
    """The model behind a result key: a stored model (``level``/``seed`` must be None) or one
    level and seed of a pruning sweep (``seed`` defaults to the sweep's first)."""
    entry = store.entry(key)
    kind = entry["kind"]
    if kind in MODEL_KINDS:
        if level is not None or seed is not None:
            raise NNGeoError(
                f"result {entry['key']} is a stored model ({kind}), not a pruning sweep: it has no levels or "
                "seeds; drop --level/--seed, or export a level of a prune-sweep result"
            )
        return _stored_model(store, entry)
    if kind == SWEEP_KIND:
        return _sweep_level(store, entry, level, seed, progress or Progress())
    raise NNGeoError(
        f"result {entry['key']} is a {kind} result, neither a model nor a pruning sweep; "
        "give the key of a trained run, an upload or a prune-sweep"
    )


def _stored_model(store: Store, entry: dict) -> Exportable:
    ckpt = load_run(entry["key"], store=store)
    model = ckpt.model.cpu().eval()
    masks = _all_masks(model, ckpt.masks)
    cost = cost_of(plain_copy(model), prunable_layers(model))
    return Exportable(
        model=model,
        masks=masks,
        model_spec=_spec_of(model, ckpt.model_spec),
        source={
            "key": entry["key"],
            "kind": entry["kind"],
            "label": entry["label"],
            "data": to_dict(ckpt.data_spec) if ckpt.data_spec is not None else None,
        },
        sparsity={"requested": None, "achieved": mask_sparsity(masks), "overall": _zero_fraction(cost)},
    )


def _sweep_level(store: Store, entry: dict, level: float | None, seed: int | None, progress: Progress) -> Exportable:
    spec = spec_from_dict(entry["spec"])
    if not isinstance(spec, SweepSpec):
        raise NNGeoError(f"result {entry['key']} is a prune-sweep whose stored spec is a {type(spec).__name__}")
    levels = ", ".join(f"{s:g}" for s in spec.sparsities)
    if level is None and len(spec.sparsities) > 1:
        raise NNGeoError(f"sweep {entry['key']} has several levels; choose one with --level (its levels: {levels})")
    index = 0 if level is None else _level_index(spec, level)
    if index is None:
        raise NNGeoError(f"sweep {entry['key']} has no level {level}; its levels: {levels}")
    seed = spec.seeds[0] if seed is None else int(seed)
    if seed not in spec.seeds:
        raise NNGeoError(f"sweep {entry['key']} has no seed {seed}; its seeds: {', '.join(map(str, spec.seeds))}")
    table = store.get(entry["key"])
    rows = table[(table["seed"] == seed) & (table["level"] == index)]
    if len(rows) != 1:
        raise NNGeoError(f"sweep {entry['key']} has no stored row for seed {seed} at level {spec.sparsities[index]:g}")
    row = rows.iloc[0].to_dict()
    name = level_artifact(seed, index)
    model_spec = spec.run.model
    if name in store.artifacts(entry["key"]):
        # the sweep stored this level's model: exported as it is, nothing recomputed
        ckpt = checkpoint.load(store.read_artifact(entry["key"], name))
        model, masks, model_spec = ckpt.model, ckpt.masks, ckpt.model_spec
    else:
        rebuilt = rebuild_level(spec, seed, index, store=store, run_key=str(row["run"]), progress=progress)
        check_rebuilt(rebuilt, row, entry["key"])
        model, masks = rebuilt.tuned, rebuilt.result.masks
    model = model.cpu().eval()
    return Exportable(
        model=model,
        masks=_all_masks(model, masks),
        model_spec=_spec_of(model, model_spec),
        source={
            "key": entry["key"],
            "kind": SWEEP_KIND,
            "run": str(row["run"]),
            "seed": seed,
            "level": index,
            "strategy": spec.strategy,
            "finetune_epochs": int(spec.finetune_epochs),
            "data": to_dict(spec.run.data),
            "accuracy": float(row["accuracy"]),
            "loss": float(row["loss"]),
        },
        sparsity={
            "requested": float(row["sparsity_requested"]),
            "achieved": float(row["sparsity_achieved"]),
            "overall": float(row["sparsity_overall"]),
            "scope": spec.scope,
        },
    )


def _level_index(spec: SweepSpec, level: float) -> int | None:
    """The index of the stored level nearest ``level``, if within ``LEVEL_TOLERANCE`` of it."""
    try:
        want = float(level)
    except (TypeError, ValueError):
        return None
    gaps = [abs(s - want) for s in spec.sparsities]
    best = min(range(len(gaps)), key=gaps.__getitem__)
    return best if gaps[best] <= LEVEL_TOLERANCE else None


def _spec_of(model: nn.Module, fallback: ModelSpec) -> ModelSpec:
    """Every parameter the architecture was built with (defaults included), so it rebuilds as is."""
    name = getattr(model, "zoo_name", None)
    return ModelSpec(name, dict(getattr(model, "zoo_params", {}))) if name else fallback


def _all_masks(model: nn.Module, masks: Mapping[str, torch.Tensor]) -> Masks:
    """A mask for every dense/conv layer: the given ones, all True for the rest."""
    full = full_masks(model, prunable_layers(model))
    return {n: masks[n].bool().cpu() if n in masks else m.cpu() for n, m in full.items()}


def _zero_fraction(cost: Mapping[str, Any]) -> float:
    return 1 - cost["nonzero_weights"] / cost["total_weights"]


# -- rebuilding a sweep level ------------------------------------------------------------------
RebuiltLevel = Level  # one level of a sweep for one seed, as ``sweep.iter_levels`` computes it


def iter_levels(
    spec: SweepSpec,
    seed: int,
    *,
    store: Store,
    run_key: str | None = None,
    upto: int | None = None,
    progress: Progress | None = None,
) -> Iterator[RebuiltLevel]:
    """The sweep's levels for one seed, recomputed from its stored dense model by the sweep's own
    level loop (``sweep.iter_levels``: same inputs, same order); one-shot strategies skip the
    levels below ``upto``, iterative ones need them (each continues from the previous level)."""
    run_spec = seed_run_spec(spec, seed)
    run_key = run_key or spec.source or run_spec.hash
    if not store.exists(run_key):
        raise NNGeoError(
            f"the dense run {run_key} that the sweep pruned for seed {seed} is no longer in the store; "
            "the level cannot be rebuilt"
        )
    dataset = load_data(spec.run.data)
    dense = load_run(run_key, store=store).model.to(pick_device(run_spec.train.device)).eval()
    yield from sweep_levels(spec, seed, dataset, dense, run_key=run_key, store=store, upto=upto, progress=progress)


def rebuild_level(
    spec: SweepSpec,
    seed: int,
    index: int,
    *,
    store: Store,
    run_key: str | None = None,
    progress: Progress | None = None,
) -> RebuiltLevel:
    """Level ``index`` of the sweep for ``seed``, recomputed (see ``iter_levels``)."""
    *_, last = iter_levels(spec, seed, store=store, run_key=run_key, upto=index, progress=progress)
    return last  # iter_levels yields level ``upto`` last


def check_rebuilt(rebuilt: RebuiltLevel, row: Mapping[str, Any], key: str) -> None:
    """Refuse a rebuilt level that is not the stored one (another device or torch build, a changed
    strategy): the export must be the model whose numbers the sweep reports."""
    checks = [
        ("sparsity achieved", mask_sparsity(rebuilt.result.masks), row["sparsity_achieved"], 0.0),
        ("nonzero weights", rebuilt.cost["nonzero_weights"], row["nonzero_weights"], 0.0),
        ("accuracy after pruning", rebuilt.accuracy_pruned, row["accuracy_pruned"], 0.0),
        ("accuracy", rebuilt.accuracy, row["accuracy"], 0.0),
        ("loss after pruning", rebuilt.loss_pruned, row["loss_pruned"], LOSS_RTOL),
        ("loss", rebuilt.loss, row["loss"], LOSS_RTOL),
    ]
    for what, got, stored, rtol in checks:
        if not math.isclose(float(got), float(stored), rel_tol=rtol, abs_tol=1e-12):
            raise NNGeoError(
                f"rebuilding level {rebuilt.sparsity:g} of sweep {key} gave {what} {float(got):.6g} but the "
                f"sweep stored {float(stored):.6g} (another device or torch build?); not exporting a different model"
            )


# -- formats -----------------------------------------------------------------------------------
def original_keys(model: nn.Module, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` under the keys the architecture's own builder uses (``models.builder_renames``),
    so the file of a foreign network loads into ``torchvision.models.<arch>()``."""
    renames = builder_renames(model)
    return {builder_name(renames, key): value for key, value in state.items()}


def plain_state(ex: Exportable) -> dict[str, torch.Tensor]:
    """The model's own state_dict keys, masks folded in (pruned weights are zeros), on the CPU."""
    model = apply_masks(plain_copy(ex.model), ex.masks)
    return original_keys(model, {k: v.contiguous() for k, v in export_state_dict(model).items()})


def pruned_state(ex: Exportable) -> dict[str, torch.Tensor]:
    """The ``torch.nn.utils.prune`` form: ``weight_orig``/``weight_mask`` for every dense/conv layer."""
    model = apply_masks(copy.deepcopy(ex.model).cpu(), ex.masks)
    return original_keys(model, {k: v.detach().cpu().clone().contiguous() for k, v in model.state_dict().items()})


def metadata(ex: Exportable) -> dict[str, str]:
    """The safetensors metadata: every value a JSON string."""
    return {
        "format": "pt",
        "nngeo_export": EXPORT_VERSION,
        "model_spec": json.dumps(to_dict(ex.model_spec)),
        "input_shape": json.dumps(list(ex.input_shape)),
        "num_classes": json.dumps(getattr(ex.model, "num_classes", None)),
        "sparsity": json.dumps(ex.sparsity),
        "source": json.dumps(ex.source, default=str),
    }


def _torch_bytes(state: Mapping[str, torch.Tensor]) -> bytes:
    buf = io.BytesIO()
    torch.save(dict(state), buf)
    return buf.getvalue()


_FD_LOCK = threading.Lock()


@contextlib.contextmanager
def _silenced_fds() -> Iterator[None]:
    """Send file descriptors 1 and 2 to a temporary file for the block: torch's TorchScript exporter
    prints its whole IR graph from C++ when an operator fails, past ``sys.stdout``; the CLI and the
    app show one line instead."""
    with _FD_LOCK, tempfile.TemporaryFile() as sink:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        saved = [os.dup(1), os.dup(2)]
        try:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            yield
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def model_to_onnx(model: nn.Module, input_shape: tuple[int, ...], *, name: str = "the model") -> bytes:
    """``model`` (folded, on the CPU, eval mode) as ONNX bytes with a dynamic batch dimension; a
    one-line ``NNGeoError`` naming the operator that has no ONNX form when it does not export."""
    model = plain_copy(model).cpu().eval()
    dummy = torch.zeros((1, *input_shape))
    # a file, not a BytesIO: torch.onnx.export is typed (and documented) for paths
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.onnx")
        _onnx_export(model, dummy, path, name)
        with open(path, "rb") as fh:
            return fh.read()


def _onnx_export(model: nn.Module, dummy: torch.Tensor, path: str, name: str) -> None:
    try:
        with warnings.catch_warnings(), _silenced_fds():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            torch.onnx.export(
                model,
                (dummy,),
                path,
                dynamo=False,  # the dynamo exporter needs onnxscript; this one only onnx
                opset_version=ONNX_OPSET,
                input_names=["input"],
                output_names=["logits"],
                dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
            )
    except Exception as exc:  # the exporter raises several types; each becomes one line
        text = str(exc)
        if "onnx is not installed" in text:
            raise NNGeoError("ONNX export needs the onnx package (pip install onnx)") from None
        op = re.search(r"operator '([^']+)'", text)
        if op:
            raise NNGeoError(
                f"cannot export {name} to ONNX: operator {op.group(1)} has no ONNX form at opset {ONNX_OPSET}"
            ) from None
        raise NNGeoError(f"cannot export {name} to ONNX: {one_line(exc, typed=True, join=True)}") from None


def to_format(ex: Exportable, fmt: str) -> bytes:
    """The bytes of ``ex`` in format ``fmt``."""
    check_format(fmt)
    if fmt == "safetensors":
        return st_save(plain_state(ex), metadata=metadata(ex))
    if fmt == "state_dict":
        return _torch_bytes(plain_state(ex))
    if fmt == "pruned":
        return _torch_bytes(pruned_state(ex))
    return model_to_onnx(apply_masks(plain_copy(ex.model), ex.masks), ex.input_shape, name=ex.model_spec.name)


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise NNGeoError(f"unknown export format {fmt!r}; model formats: {', '.join(FORMATS)}")
    return fmt


def filename(ex: Exportable, fmt: str) -> str:
    """A default file name: model, strategy, level and seed for a sweep level, then the key."""
    src = ex.source
    parts = [str(ex.model_spec.params.get("arch", ex.model_spec.name))]  # resnet18, not "torchvision"
    if src["kind"] == SWEEP_KIND:
        parts += [src["strategy"], f"s{ex.sparsity['requested']:g}", f"seed{src['seed']}"]
    parts.append(str(src["key"])[:12])
    return "-".join(parts) + FORMATS[check_format(fmt)].suffix


# -- entry points ------------------------------------------------------------------------------
def export_bytes(
    store: Store | None, key: str, level: float | None, seed: int | None, fmt: str
) -> tuple[bytes, str, str]:
    """``(bytes, file name, MIME type)`` of one export, for the dashboard's download button."""
    check_format(fmt)
    ex = exportable(store or default_store(), key, level=level, seed=seed)
    return to_format(ex, fmt), filename(ex, fmt), FORMATS[fmt].mime


def export_model(
    store: Store | None,
    key: str,
    *,
    level: float | None = None,
    seed: int | None = None,
    fmt: str,
    out: str | os.PathLike | type[bytes] | None = None,
    progress: Progress | None = None,
) -> bytes | Path:
    """Export a stored model or a sweep level as ``fmt``: the bytes (``out`` None or ``bytes``),
    else written to the path ``out`` (atomically: nothing is written when the export fails)."""
    check_format(fmt)
    dest = Path(out) if isinstance(out, (str, os.PathLike)) else None
    if dest is None and out is not None and out is not bytes:
        raise NNGeoError(f"out must be a file path, or None (or bytes) for the bytes; got {type(out).__name__}")
    if dest is not None and not dest.parent.is_dir():
        raise NNGeoError(f"cannot write {dest}: the folder {dest.parent} does not exist")
    if dest is not None and dest.is_dir():
        raise NNGeoError(f"cannot write {dest}: it is a folder; give a file name")
    ex = exportable(store or default_store(), key, level=level, seed=seed, progress=progress)
    data = to_format(ex, fmt)
    if dest is None:
        return data
    write_atomic(dest, data)
    return dest


def write_atomic(dest: Path, data: bytes) -> None:
    """Write through a temporary file in the same folder, renamed into place."""
    tmp = dest.with_name(f".tmp-{dest.name}-{uuid.uuid4().hex[:8]}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
