"""One training loop for every model and dataset.

Data live in memory as tensors (every nngeo dataset does), so batches are index slices of a
seeded permutation: no DataLoader workers, deterministic on CPU for a fixed seed. Progress is
reported through ``Progress`` at most every 0.2 s (the loop itself pays one clock read per step),
and cancel is checked every epoch and every 50 steps.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field

import pandas as pd
import torch
from torch import nn

from .data import Dataset
from .data import load as load_data
from .errors import NNGeoError
from .models import build as build_model
from .progress import Progress
from .settings import pick_device
from .specs import RunSpec, TrainSpec

CANCEL_EVERY_STEPS = 50
EVAL_BATCH = 2048


@dataclass
class TrainResult:
    model: nn.Module
    history: pd.DataFrame  # one row per epoch (epoch 0 = before training)
    snapshots: dict[int, dict[str, torch.Tensor]] = field(default_factory=dict)
    device: str = "cpu"
    seconds: float = 0.0

    @property
    def test_accuracy(self) -> float:
        return float(self.history["test_acc"].iloc[-1])


def build_for(spec: RunSpec, dataset: Dataset) -> nn.Module:
    """The run's model, freshly initialised from the run's seed, shaped for its dataset."""
    torch.manual_seed(spec.train.seed)
    return build_model(
        spec.model.name, input_shape=dataset.input_shape, num_classes=dataset.num_classes, **dict(spec.model.params)
    )


def make_optimizer(params, t: TrainSpec) -> torch.optim.Optimizer:
    if t.optimizer == "adam":
        return torch.optim.Adam(params, lr=t.lr, weight_decay=t.weight_decay)
    if t.optimizer == "sgd":
        return torch.optim.SGD(params, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay)
    raise NNGeoError(f"unknown optimizer {t.optimizer!r}; use adam or sgd")


def make_schedule(opt, t: TrainSpec, steps_per_epoch: int):
    total = max(1, t.epochs * steps_per_epoch)
    if t.schedule == "constant":
        return None
    if t.schedule == "cosine":
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    if t.schedule == "step":  # x0.1 at 50% and 75% of training
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.1 ** ((s >= total // 2) + (s >= 3 * total // 4)))
    raise NNGeoError(f"unknown schedule {t.schedule!r}; use constant, cosine or step")


def validate(t: TrainSpec) -> None:
    if t.epochs < 0:
        raise NNGeoError("epochs must be >= 0")
    if t.batch_size < 1:
        raise NNGeoError("batch_size must be >= 1")
    if not (t.lr > 0 and math.isfinite(t.lr)):
        raise NNGeoError("the learning rate must be a positive number")
    bad = [e for e in t.snapshots if not (0 <= int(e) <= t.epochs)]
    if bad:
        raise NNGeoError(f"snapshot epochs must lie in 0..{t.epochs}, got {bad[0]}")


@torch.no_grad()
def evaluate(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, device: str | torch.device | None = None
) -> tuple[float, float]:
    """Mean cross-entropy loss and accuracy of ``model`` on (x, y), in eval mode, batched."""
    device = device or next(model.parameters()).device
    was = model.training
    model.eval()
    loss_sum, correct = 0.0, 0
    for i in range(0, len(x), EVAL_BATCH):
        xb, yb = x[i : i + EVAL_BATCH].to(device), y[i : i + EVAL_BATCH].to(device)
        out = model(xb)
        loss_sum += float(nn.functional.cross_entropy(out, yb, reduction="sum"))
        correct += int((out.argmax(1) == yb).sum())
    model.train(was)
    n = max(1, len(x))
    return loss_sum / n, correct / n


def fit(
    model: nn.Module,
    dataset: Dataset,
    t: TrainSpec,
    *,
    progress: Progress | None = None,
    masks: dict[str, torch.Tensor] | None = None,
    device: str | None = None,
) -> TrainResult:
    """Train ``model`` in place on ``dataset``. ``masks`` (layer name -> bool) keep pruned weights at 0."""
    validate(t)
    progress = progress or Progress()
    device = pick_device(device or t.device)
    model.to(device)
    x, y = dataset.x_train.to(device), dataset.y_train.to(device)
    n = len(x)
    if n == 0:
        raise NNGeoError(f"dataset {dataset.name} has no training samples")
    steps_per_epoch = math.ceil(n / t.batch_size)
    opt = make_optimizer(model.parameters(), t)
    sched = make_schedule(opt, t, steps_per_epoch)
    gen = torch.Generator().manual_seed(t.seed)
    mask_params = _mask_params(model, masks, device)
    _apply_masks(mask_params)

    rows = []
    snapshots: dict[int, dict[str, torch.Tensor]] = {}
    start = time.monotonic()

    def record(epoch: int, train_loss: float, train_acc: float):
        test_loss, test_acc = evaluate(model, dataset.x_test, dataset.y_test, device)
        rows.append(
            dict(
                epoch=epoch,
                step=epoch * steps_per_epoch,
                train_loss=train_loss,
                train_acc=train_acc,
                test_loss=test_loss,
                test_acc=test_acc,
                lr=opt.param_groups[0]["lr"],
                seconds=time.monotonic() - start,
            )
        )
        if epoch in snap_epochs:
            snapshots[epoch] = {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}
        return test_acc

    snap_epochs = {int(e) for e in t.snapshots}
    l0, a0 = evaluate(model, x, y, device)
    record(0, l0, a0)
    total_steps = max(1, t.epochs * steps_per_epoch)
    step = 0
    model.train()
    for epoch in range(1, t.epochs + 1):
        progress.check()
        perm = torch.randperm(n, generator=gen).to(device)
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        for i in range(0, n, t.batch_size):
            idx = perm[i : i + t.batch_size]
            xb, yb = x[idx], y[idx]
            out = model(xb)
            loss = nn.functional.cross_entropy(out, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            _apply_masks(mask_params)
            with torch.no_grad():  # accumulate on device: no host sync per step
                loss_sum += loss.detach() * len(idx)
                correct += (out.argmax(1) == yb).sum()
            step += 1
            if step % CANCEL_EVERY_STEPS == 0:
                progress.check()
                # this epoch's own running loss and accuracy: the last epoch's would be shown beside "epoch k"
                seen = min(n, i + t.batch_size)
                progress.update(
                    step / total_steps,
                    f"epoch {epoch}/{t.epochs}",
                    epoch=epoch,
                    step=step,
                    loss=float(loss_sum) / seen,
                    accuracy=int(correct) / seen,
                )
        test_acc = record(epoch, float(loss_sum) / n, int(correct) / n)
        progress.update(
            step / total_steps,
            f"epoch {epoch}/{t.epochs}",
            force=True,
            epoch=epoch,
            step=step,
            loss=rows[-1]["train_loss"],
            accuracy=rows[-1]["train_acc"],
            test_accuracy=test_acc,
        )
    model.eval()
    return TrainResult(
        model=model,
        history=pd.DataFrame(rows),
        snapshots=snapshots,
        device=str(device),
        seconds=time.monotonic() - start,
    )


def train(spec: RunSpec, *, progress: Progress | None = None, dataset: Dataset | None = None) -> TrainResult:
    """Build the run's model from its seed and train it on its dataset."""
    dataset = dataset if dataset is not None else load_data(spec.data)
    model = build_for(spec, dataset)
    return fit(model, dataset, spec.train, progress=progress)


def _mask_params(model: nn.Module, masks, device):
    if not masks:
        return []
    modules = dict(model.named_modules())
    out = []
    for name, m in masks.items():
        if name not in modules:
            raise NNGeoError(f"mask for unknown layer {name!r}")
        out.append((modules[name].weight, m.to(device=device, dtype=modules[name].weight.dtype)))
    return out


@torch.no_grad()
def _apply_masks(mask_params) -> None:
    for w, m in mask_params:
        w.mul_(m)


def copy_model(model: nn.Module) -> nn.Module:
    """A deep copy (analyses and strategies must never mutate their input)."""
    return copy.deepcopy(model)
