"""Training runs in the store: train once per spec, find again by hash, load back.

A run's key is the hash of its ``RunSpec``. Its result table is the training history; its
artefacts are ``checkpoint.safetensors`` and one ``snapshot-<epoch>.safetensors`` per kept epoch.
"""

from __future__ import annotations

import copy

from torch import nn

from . import checkpoint
from .errors import NNGeoError
from .progress import Progress
from .specs import RunSpec
from .store import Store, default_store
from .train import TrainResult, train

CHECKPOINT = "checkpoint.safetensors"


def snapshot_name(epoch: int) -> str:
    return f"snapshot-{int(epoch)}.safetensors"


def train_run(
    spec: RunSpec, *, store: Store | None = None, progress: Progress | None = None, force: bool = False
) -> str:
    """Train the run unless the store already has it; returns the run key."""
    store = store or default_store()
    key = spec.hash
    if store.exists(key) and not force:
        return key
    result = train(spec, progress=progress)
    return save_run(spec, result, store)


def save_run(spec: RunSpec, result: TrainResult, store: Store) -> str:
    history = result.history.to_dict("records")
    artifacts = {
        CHECKPOINT: checkpoint.to_bytes(
            result.model.cpu(), model_spec=spec.model, data_spec=spec.data, run_spec=spec, history=history
        )
    }
    for epoch, state in result.snapshots.items():
        snap = _with_state(result.model, state)
        artifacts[snapshot_name(epoch)] = checkpoint.to_bytes(
            snap, model_spec=spec.model, data_spec=spec.data, run_spec=spec, extra={"epoch": epoch}
        )
    attrs = dict(
        model=spec.model.name,
        data=spec.data.name,
        method="train",
        seed=spec.train.seed,
        metric=result.test_accuracy,
        label=f"{spec.model.name} on {spec.data.name}",
        epochs=spec.train.epochs,
        device=result.device,
        seconds=round(result.seconds, 3),
        snapshots=sorted(result.snapshots),
    )
    return store.put("train", spec, result.history, artifacts=artifacts, attrs=attrs)


def load_run(key: str, *, store: Store | None = None, epoch: int | None = None) -> checkpoint.Checkpoint:
    """The trained model of a run (or one of its snapshots) as a Checkpoint."""
    store = store or default_store()
    entry = store.model_entry(key)
    name = CHECKPOINT if epoch is None else snapshot_name(epoch)
    if name not in store.artifacts(entry["key"]):
        have = [a for a in store.artifacts(entry["key"]) if a.startswith("snapshot-")]
        raise NNGeoError(
            f"run {entry['key']} has no snapshot for epoch {epoch}; kept: {', '.join(a[9:-12] for a in have) or 'none'}"
        )
    return checkpoint.load(store.read_artifact(entry["key"], name))


def read_header(key: str, *, store: Store | None = None) -> checkpoint.Header:
    """A stored model's architecture (weight names and shapes) and dataset, from its checkpoint's
    header alone: cheap enough to compare many runs."""
    store = store or default_store()
    entry = store.model_entry(key)
    return checkpoint.read_header(lambda start, end: store.read_artifact(entry["key"], CHECKPOINT, start, end))


def snapshot_epochs(key: str, *, store: Store | None = None) -> list[int]:
    store = store or default_store()
    return sorted(
        int(a[len("snapshot-") : -len(".safetensors")]) for a in store.artifacts(key) if a.startswith("snapshot-")
    )


def _with_state(model: nn.Module, state) -> nn.Module:
    m = copy.deepcopy(model).cpu()
    m.load_state_dict(state)
    return m
