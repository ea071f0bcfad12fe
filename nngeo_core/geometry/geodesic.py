"""Geodesic paths in weight space (Raghavan & Thomson, arXiv 2012.09605).

A path walks from the weights w₀ of a trained network towards a target set while keeping the
network's function as unchanged as possible: each step is the exact solution of
argmin_θ θᵀg_wθ − β·θᵀv, ‖θ‖² ≤ ε (``weight_space.solve_step``), where g_w is the functional metric
over a fresh batch of inputs and v points to the target.

* ``sparsify_path``: the target is the p%-sparse hyperplane (global magnitude mask, frozen at the
  start or recomputed each step); the path stops when its distance to the hyperplane is below a
  tolerance, then projects onto it.
* ``forgetting_path``: from a net trained on task A towards one trained on task B (v = w_B − w,
  or −∇L_B), with the metric taken on task-A inputs, recording the accuracy on both tasks.
* ``method="gradient"``: the cheaper variant of the authors' later code, a normalised gradient
  step of length √ε on mean‖f(x, w) − f(x, w₀)‖² + λ‖w − w_target‖².

Nothing here mutates the models it is given.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.func import grad

from ..errors import NNGeoError
from ..progress import Progress
from .weight_space import (
    ParamSpace,
    exact_batch_size,
    functional_jacobian,
    global_magnitude_mask,
    metric_norm,
    output_fn,
    plain_copy,
    solve_step,
)

METHODS = ("exact", "gradient")
MASK_MODES = ("frozen", "recompute")


# ---------------------------------------------------------------- checks and helpers


def _check_fraction(name: str, value) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.floating, np.integer))
        or not math.isfinite(value)
        or not (0 < value < 1)
    ):
        raise NNGeoError(f"{name} must be a number strictly between 0 and 1, got {value!r}")
    return float(value)


def _check_int(name: str, value, low: int = 1, high: int = 1_000_000) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= high:
        raise NNGeoError(f"{name} must be a whole number from {low} to {high}, got {value!r}")
    return int(value)


def _check_positive(name: str, value, allow_none=False) -> float | None:
    if value is None and allow_none:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.floating, np.integer))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise NNGeoError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def _check_choice(name: str, value, choices) -> str:
    if value not in choices:
        raise NNGeoError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def _as_inputs(x, input_shape: tuple[int, ...] | None, device, name: str) -> torch.Tensor:
    t = torch.as_tensor(x)
    if t.ndim == 0 or len(t) == 0:
        raise NNGeoError(f"{name} is empty; give at least one input")
    t = t.to(device=device, dtype=torch.float64)
    if input_shape is not None and tuple(t.shape[1:]) != tuple(input_shape):
        if t[0].numel() == math.prod(input_shape):
            t = t.reshape(len(t), *input_shape)
        else:
            raise NNGeoError(f"{name} has inputs of shape {tuple(t.shape[1:])}, the model takes {tuple(input_shape)}")
    if not torch.isfinite(t).all():
        raise NNGeoError(f"{name} contains NaN or infinite values")
    return t


def _as_labels(y, n: int, device, name: str) -> torch.Tensor:
    t = torch.as_tensor(y).to(device=device, dtype=torch.int64).reshape(-1)
    if len(t) != n:
        raise NNGeoError(f"{name} has {len(t)} labels for {n} inputs")
    return t


@torch.no_grad()
def _accuracy(f, w: torch.Tensor, x: torch.Tensor, y: torch.Tensor, batch: int = 2048) -> float:
    correct = 0
    for i in range(0, len(x), batch):
        correct += int((f(w, x[i : i + batch]).argmax(1) == y[i : i + batch]).sum())
    return correct / max(1, len(x))


@torch.no_grad()
def _n_outputs(model: nn.Module, x: torch.Tensor) -> int:
    return int(model(x[:1]).reshape(1, -1).shape[1])


def _subset(x: torch.Tensor, y: torch.Tensor, size: int, gen: torch.Generator):
    if len(x) <= size:
        return x, y
    idx = torch.randperm(len(x), generator=gen)[:size].to(x.device)
    return x[idx], y[idx]


def _prunable_vector(model: nn.Module, space: ParamSpace, input_shape) -> tuple[torch.Tensor, dict[str, slice], dict]:
    """Bool vector over w marking Linear/Conv weights, each layer's slice, and each layer's weight shape."""
    from ..models.base import prunable_layers

    prunable = torch.zeros(space.size, dtype=torch.bool)
    slices, shapes = {}, {}
    for info in prunable_layers(model, input_shape):
        sl = space.slice_of(f"{info.name}.weight")
        prunable[sl] = True
        slices[info.name] = sl
        shapes[info.name] = info.weight_shape
    return prunable, slices, shapes


def _result_model(model: nn.Module, space: ParamSpace, w: torch.Tensor) -> nn.Module:
    """A copy of the caller's model (its dtype, device and train/eval mode) holding weights w."""
    param = next(model.parameters())
    out, _ = plain_copy(model, dtype=param.dtype, device=param.device)
    space.load_into(out, w)
    for p in out.parameters():
        p.requires_grad_(True)
    out.train(model.training)
    return out


@dataclass
class _Stepper:
    """Computes one step of either method towards direction v / target."""

    model: nn.Module
    space: ParamSpace
    method: str
    beta: float
    eps: float
    lam: float
    fisher: bool

    def __post_init__(self):
        self.f = output_fn(self.model, self.space)

    def step(
        self, w: torch.Tensor, v: torch.Tensor, xb: torch.Tensor, w_start: torch.Tensor
    ) -> tuple[torch.Tensor, float, float]:
        """(θ, functional length √θᵀgθ, μ or nan)."""
        if self.method == "exact":
            J = functional_jacobian(self.model, self.space, w, xb, fisher=self.fisher)
            res = solve_step(J, v, beta=self.beta, eps=self.eps)
            return res.theta, res.length, res.mu
        with torch.no_grad():
            ref = self.f(w_start, xb)
        target = w + v

        def loss(w_):
            out = self.f(w_, xb)
            return (out - ref).pow(2).sum() / len(xb) + self.lam * (w_ - target).pow(2).sum()

        g = grad(loss)(w)
        gn = float(g.norm())
        if gn == 0.0:
            return torch.zeros_like(w), 0.0, math.nan
        theta = -math.sqrt(self.eps) * g / gn
        return theta, metric_norm(self.model, self.space, w, theta, xb), math.nan


# ---------------------------------------------------------------- sparsification

_MAX_RECORD_EVERY = 100_000  # also the most steps a path may take


def _check_path_settings(steps, batch_size, record_every, eval_size, eps, beta, lam, tol):
    """The walking settings shared by the sparsification and forgetting paths, validated."""
    return (
        _check_int("steps", steps, 1, 100_000),
        _check_int("batch_size", batch_size, 1, 100_000),
        _check_int("record_every", record_every, 1, _MAX_RECORD_EVERY),
        _check_int("eval_size", eval_size, 1, 10_000_000),
        _check_positive("eps", eps, allow_none=True),
        _check_positive("beta", beta),
        _check_positive("lam", lam),
        _check_positive("tol", tol, allow_none=True),
    )


def sparsify_path(
    model: nn.Module,
    data_x,
    data_y=None,
    *,
    sparsity: float = 0.7,
    steps: int = 200,
    eps: float | None = None,
    beta: float = 0.01,
    batch_size: int = 64,
    mask: str = "frozen",
    tol: float | None = None,
    method: str = "exact",
    lam: float = 10.0,
    fisher: bool = False,
    eval_x=None,
    eval_y=None,
    eval_size: int = 2000,
    masks: dict | None = None,
    seed: int = 0,
    record_every: int = 1,
    device: str = "auto",
    progress: Progress | None = None,
    return_masks: bool = False,
) -> tuple:
    """Walk from ``model`` to the ``sparsity``-sparse hyperplane along an approximate geodesic.

    ``data_x`` supplies the inputs of the functional metric (a fresh batch of ``batch_size`` each
    step); accuracies are measured on ``eval_x, eval_y`` (default ``data_x, data_y``; a fixed
    random subset of at most ``eval_size``). ``eps`` is the squared Euclidean length of a step
    (default: steps of 1.5·d₀/steps, d₀ the starting distance to the hyperplane); ``beta`` weighs
    the pull towards the hyperplane against the change of function; ``tol`` (default 1e-3·d₀) ends
    the walk. ``masks`` (layer -> bool, True = kept) are weights already pruned, which stay pruned.

    Returns (a pruned copy of the model, the path table with one row per recorded step: step,
    path_length (Σ√θᵀgθ), step_length, mu, distance (Euclidean, to the hyperplane), accuracy
    (current net), accuracy_projected (its hard projection onto the hyperplane), n_pruned, final,
    seconds). The last row (``final`` True) is the projected network that is returned.
    With ``return_masks`` a third item is added: the masks (layer -> bool, True = kept).
    """
    sparsity = _check_fraction("sparsity", sparsity)
    steps, batch_size, record_every, eval_size, eps, beta, lam, tol = _check_path_settings(
        steps, batch_size, record_every, eval_size, eps, beta, lam, tol
    )
    mask = _check_choice("mask", mask, MASK_MODES)
    method = _check_choice("method", method, METHODS)
    progress = progress or Progress()

    work, folded = plain_copy(model, device=device)
    dev = next(work.parameters()).device
    input_shape = tuple(getattr(model, "input_shape", None) or torch.as_tensor(data_x).shape[1:])
    x = _as_inputs(data_x, input_shape, dev, "data_x")
    if eval_x is None:
        if data_y is None:
            raise NNGeoError("give data_y (or eval_x and eval_y) to measure accuracy along the path")
        eval_x, eval_y = data_x, data_y
    ex = _as_inputs(eval_x, input_shape, dev, "eval_x")
    ey = _as_labels(eval_y, len(ex), dev, "eval_y")
    gen = torch.Generator().manual_seed(int(seed))
    ex, ey = _subset(ex, ey, eval_size, gen)

    space = ParamSpace(work)
    prunable, layer_slices, layer_shapes = _prunable_vector(work, space, input_shape)
    prunable = prunable.to(dev)
    forced = torch.zeros_like(prunable)
    for name, m in {**folded, **(masks or {})}.items():
        if name not in layer_slices:
            raise NNGeoError(f"mask for unknown layer {name!r}")
        forced[layer_slices[name]] |= ~torch.as_tensor(m, device=dev).bool().reshape(-1)
    n_prunable = int(prunable.sum())
    if int(forced.sum()) > round(sparsity * n_prunable):
        raise NNGeoError(f"the given masks already prune more than {sparsity:.0%} of the weights")

    w = space.flatten(work).clone()
    w_start = w.clone()
    if method == "exact":
        batch_size = exact_batch_size(batch_size, _n_outputs(work, x), space.size)
    pruned = global_magnitude_mask(w, prunable, sparsity, forced)
    d0 = float(w[pruned].norm())
    if eps is None:
        eps = (1.5 * max(d0, 1e-12) / steps) ** 2
    tol = tol if tol is not None else max(1e-3 * d0, 1e-12)
    stepper = _Stepper(work, space, method, beta, eps, lam, fisher)
    f = stepper.f

    rows: list[dict] = []
    length = 0.0
    start = time.monotonic()

    def record(step: int, step_len: float, mu: float, final: bool = False):
        dist = float(w[pruned].norm())
        projected = torch.where(pruned, torch.zeros_like(w), w)
        rows.append(
            dict(
                step=step,
                path_length=length,
                step_length=step_len,
                mu=mu,
                distance=dist,
                accuracy=_accuracy(f, w, ex, ey),
                accuracy_projected=_accuracy(f, projected, ex, ey),
                n_pruned=int(pruned.sum()),
                final=final,
                seconds=time.monotonic() - start,
            )
        )

    record(0, 0.0, math.nan)
    step = 0
    for step in range(1, steps + 1):
        progress.check()
        if mask == "recompute":
            pruned = global_magnitude_mask(w, prunable, sparsity, forced)
        v = torch.where(pruned, -w, torch.zeros_like(w))  # from w to its projection
        if float(v.norm()) < tol:
            step -= 1
            break
        idx = torch.randint(len(x), (min(batch_size, len(x)),), generator=gen).to(dev)
        theta, step_len, mu = stepper.step(w, v, x[idx], w_start)
        w = w + theta
        length += step_len
        if step % record_every == 0:
            record(step, step_len, mu)
        progress.update(step / steps, "geodesic path", step=step, distance=float(w[pruned].norm()))
    if mask == "recompute":
        pruned = global_magnitude_mask(w, prunable, sparsity, forced)
    w = torch.where(pruned, torch.zeros_like(w), w)  # the hard projection ends the path
    record(step, 0.0, math.nan, final=True)
    progress.update(1.0, "geodesic path", force=True)
    out = _result_model(model, space, w)
    frame = pd.DataFrame(rows)
    frame.attrs["start_distance"] = d0
    frame.attrs["eps"] = eps
    frame.attrs["batch_size"] = batch_size
    kept = {name: (~pruned[sl]).reshape(layer_shapes[name]).cpu() for name, sl in layer_slices.items()}
    return (out, frame, kept) if return_masks else (out, frame)


def magnitude_prune(model: nn.Module, sparsity: float) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """One-shot global magnitude pruning (no retraining): the baseline a geodesic path is compared to."""
    sparsity = _check_fraction("sparsity", sparsity)
    param = next(model.parameters())
    work, folded = plain_copy(model, dtype=param.dtype, device=param.device)
    space = ParamSpace(work)
    prunable, slices, shapes = _prunable_vector(work, space, getattr(model, "input_shape", None))
    forced = torch.zeros_like(prunable)
    for name, m in folded.items():
        forced[slices[name]] |= ~m.cpu().reshape(-1)
    w = space.flatten(work).cpu()
    pruned = global_magnitude_mask(w, prunable, sparsity, forced)
    space.load_into(work, torch.where(pruned, torch.zeros_like(w), w))
    for p in work.parameters():
        p.requires_grad_(True)
    return work, {n: (~pruned[sl]).reshape(shapes[n]) for n, sl in slices.items()}


# ---------------------------------------------------------------- pruning-lab strategy


def geodesic_prune(
    model: nn.Module, x, y, sparsity: float, *, masks: dict | None = None, **settings
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Pruning strategy ``geodesic``: (state_dict of the pruned network, masks layer -> bool, True = kept).

    ``x, y``: the inputs of the functional metric and the labels used for the recorded accuracy.
    ``masks``: weights already pruned (stay pruned). ``settings``: any keyword of ``sparsify_path``.
    The state_dict holds plain weights (pruned entries are exactly 0), in the model's dtype.
    """
    # the path table is dropped, so record as few rows as possible (recording never changes the walk)
    settings.setdefault("record_every", _MAX_RECORD_EVERY)
    pruned_model, _, out_masks = sparsify_path(
        model, x, y, sparsity=sparsity, masks=masks, return_masks=True, **settings
    )
    return {k: v.detach().clone() for k, v in pruned_model.state_dict().items()}, out_masks


def geodesic_masks(model: nn.Module, masks: dict | None, data, sparsity: float, **settings) -> dict[str, torch.Tensor]:
    """Masks only (layer -> bool, True = kept) of ``geodesic_prune``; ``data`` is a Dataset or (x, y).

    The weights the path arrived at are what makes these masks good: use ``geodesic_prune`` to
    get them too.
    """
    x, y = _xy(data)
    _, out = geodesic_prune(model, x, y, sparsity, masks=masks, **settings)
    return out


def _xy(data):
    if hasattr(data, "x_train") and hasattr(data, "y_train"):
        return data.x_train, data.y_train
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return data
    raise NNGeoError("data must be a Dataset or an (x, y) pair")


# ---------------------------------------------------------------- forgetting


def _task(task, name: str):
    from ..data.base import Dataset

    if isinstance(task, str):
        from ..data import load

        task = load(task)
    if not isinstance(task, Dataset):
        raise NNGeoError(f"{name} must be a Dataset or a dataset name, got a {type(task).__name__}")
    if len(task.x_test) == 0 or len(task.x_train) == 0:
        raise NNGeoError(f"{name} ({task.name}) has no training or test inputs")
    return task


def forgetting_path(
    model_a: nn.Module,
    model_b: nn.Module | None,
    task_a,
    task_b,
    *,
    steps: int = 100,
    eps: float | None = None,
    beta: float = 0.01,
    batch_size: int = 64,
    direction: str = "target",
    method: str = "exact",
    lam: float = 10.0,
    fisher: bool = False,
    tol: float | None = None,
    eval_size: int = 2000,
    seed: int = 0,
    record_every: int = 1,
    device: str = "auto",
    progress: Progress | None = None,
) -> tuple[nn.Module, pd.DataFrame]:
    """Walk from a net trained on task A towards task B while keeping task A's function.

    The metric is taken on task-A training inputs; the direction is v = w_B − w (``direction=
    "target"``, needs ``model_b`` of the same architecture) or −∇L_B(w) on a task-B training batch
    (``"gradient"``). Records per step: path_length, distance_to_b (if model_b), accuracy_a,
    accuracy_b, accuracy_mean. Returns (the net on the path with the best mean accuracy, table);
    the table's ``best`` column marks that row.
    """
    steps, batch_size, record_every, eval_size, eps, beta, lam, tol = _check_path_settings(
        steps, batch_size, record_every, eval_size, eps, beta, lam, tol
    )
    direction = _check_choice("direction", direction, ("target", "gradient"))
    method = _check_choice("method", method, METHODS)
    if method == "gradient" and direction != "target":
        raise NNGeoError("method 'gradient' needs direction 'target' (it pulls towards w_B)")
    progress = progress or Progress()
    task_a, task_b = _task(task_a, "task_a"), _task(task_b, "task_b")

    work, _ = plain_copy(model_a, device=device)
    dev = next(work.parameters()).device
    space = ParamSpace(work)
    w = space.flatten(work).clone()
    w_start = w.clone()
    w_b = None
    if model_b is not None:
        work_b, _ = plain_copy(model_b, device=dev)
        space_b = ParamSpace(work_b)
        if space_b.names != space.names or space_b.shapes != space.shapes:
            raise NNGeoError("model_a and model_b must have the same architecture")
        w_b = space_b.flatten(work_b)
    elif direction == "target":
        raise NNGeoError("direction 'target' needs model_b (the net trained on task B)")

    shape = tuple(getattr(model_a, "input_shape", None) or task_a.input_shape)
    xa = _as_inputs(task_a.x_train, shape, dev, "task A inputs")
    xb_train = _as_inputs(task_b.x_train, shape, dev, "task B inputs")
    yb_train = _as_labels(task_b.y_train, len(xb_train), dev, "task B labels")
    gen = torch.Generator().manual_seed(int(seed))
    ea = _subset(
        _as_inputs(task_a.x_test, shape, dev, "task A test inputs"),
        _as_labels(task_a.y_test, len(task_a.x_test), dev, "task A test labels"),
        eval_size,
        gen,
    )
    eb = _subset(
        _as_inputs(task_b.x_test, shape, dev, "task B test inputs"),
        _as_labels(task_b.y_test, len(task_b.x_test), dev, "task B test labels"),
        eval_size,
        gen,
    )

    if method == "exact":
        batch_size = exact_batch_size(batch_size, _n_outputs(work, xa), space.size)
    d0 = float((w_b - w).norm()) if w_b is not None else None
    if eps is None:
        if d0 is None:
            raise NNGeoError("give eps (the squared step length) when walking by the task-B gradient")
        eps = (1.5 * max(d0, 1e-12) / steps) ** 2
    tol = tol if tol is not None else (1e-3 * d0 if d0 else 0.0)
    stepper = _Stepper(work, space, method, beta, eps, lam, fisher)
    f = stepper.f

    def loss_b(w_, xs, ys):
        return nn.functional.cross_entropy(f(w_, xs), ys)

    rows: list[dict] = []
    length = 0.0
    best_w, best_mean = w.clone(), -1.0

    def record(step: int, step_len: float):
        nonlocal best_w, best_mean
        acc_a, acc_b = _accuracy(f, w, *ea), _accuracy(f, w, *eb)
        mean = 0.5 * (acc_a + acc_b)
        if mean > best_mean:
            best_w, best_mean = w.clone(), mean
        rows.append(
            dict(
                step=step,
                path_length=length,
                step_length=step_len,
                distance_to_b=float((w_b - w).norm()) if w_b is not None else math.nan,
                accuracy_a=acc_a,
                accuracy_b=acc_b,
                accuracy_mean=mean,
            )
        )

    record(0, 0.0)
    for step in range(1, steps + 1):
        progress.check()
        if direction == "target":
            v = w_b - w
            if float(v.norm()) < tol:
                break
        else:
            idx = torch.randint(len(xb_train), (min(batch_size, len(xb_train)),), generator=gen).to(dev)
            v = -grad(loss_b)(w, xb_train[idx], yb_train[idx])
        idx = torch.randint(len(xa), (min(batch_size, len(xa)),), generator=gen).to(dev)
        theta, step_len, _ = stepper.step(w, v, xa[idx], w_start)
        w = w + theta
        length += step_len
        if step % record_every == 0 or step == steps:
            record(step, step_len)
        progress.update(step / steps, "forgetting path", step=step)
    frame = pd.DataFrame(rows)
    frame["best"] = False
    frame.loc[int(frame["accuracy_mean"].to_numpy().argmax()), "best"] = True
    progress.update(1.0, "forgetting path", force=True)
    return _result_model(model_a, space, best_w), frame
