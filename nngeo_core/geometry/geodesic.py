"""Geodesic paths in weight space (Raghavan & Thomson, arXiv 2012.09605).

A path walks from the weights w₀ of a trained network towards a target set while keeping the
network's function as unchanged as possible: each step is the exact solution of
argmin_θ θᵀg_wθ − β·θᵀv, ‖θ‖² ≤ ε (``weight_space.solve_step``), where g_w is the functional metric
over a fresh batch of inputs and v points to the target. Both paths below run the same walk
(``_walk``); they differ in the direction v, what they record and what they return.

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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch
from torch import nn
from torch.func import grad

from ..data import Dataset, load
from ..errors import NNGeoError
from ..progress import Progress
from .checks import check_choice, check_fraction, check_int, check_optional_positive, check_positive
from .weight_space import (
    OutputFn,
    ParamSpace,
    exact_batch_size,
    functional_jacobian,
    global_magnitude_mask,
    metric_norm,
    output_fn,
    plain_copy,
    prunable_vector,
    solve_step,
)

METHODS = ("exact", "gradient")
MASK_MODES = ("frozen", "recompute")
DIRECTIONS = ("target", "gradient")
MAX_RECORD_EVERY = 100_000  # also the most steps a path may take


@dataclass
class PathResult:
    """What a path returns: a network on it and the table of its recorded steps."""

    model: nn.Module  # sparsify_path: the projected end point; forgetting_path: the best net on the path
    table: pd.DataFrame
    masks: dict[str, torch.Tensor] = field(default_factory=dict)  # sparsify_path: layer -> bool, True = kept


# ---------------------------------------------------------------- inputs and helpers


def _as_inputs(x, input_shape: tuple[int, ...] | None, device: torch.device, name: str) -> torch.Tensor:
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


def _as_labels(y, n: int, device: torch.device, name: str) -> torch.Tensor:
    t = torch.as_tensor(y).to(device=device, dtype=torch.int64).reshape(-1)
    if len(t) != n:
        raise NNGeoError(f"{name} has {len(t)} labels for {n} inputs")
    return t


@torch.no_grad()
def _accuracy(f: OutputFn, w: torch.Tensor, x: torch.Tensor, y: torch.Tensor, batch: int = 2048) -> float:
    correct = 0
    for i in range(0, len(x), batch):
        correct += int((f(w, x[i : i + batch]).argmax(1) == y[i : i + batch]).sum())
    return correct / max(1, len(x))


@torch.no_grad()
def _n_outputs(model: nn.Module, x: torch.Tensor) -> int:
    return int(model(x[:1]).reshape(1, -1).shape[1])


def _subset(x: torch.Tensor, y: torch.Tensor, size: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    if len(x) <= size:
        return x, y
    idx = torch.randperm(len(x), generator=gen)[:size].to(x.device)
    return x[idx], y[idx]


def _batch_index(n: int, size: int, gen: torch.Generator, device: torch.device) -> torch.Tensor:
    """Indices of a random batch of ``size`` (at most n) of n rows, with replacement, drawn from ``gen``."""
    return torch.randint(n, (min(size, n),), generator=gen).to(device)


def _result_model(model: nn.Module, space: ParamSpace, w: torch.Tensor) -> nn.Module:
    """A copy of the caller's model (its dtype, device and train/eval mode) holding weights w."""
    param = next(model.parameters())
    out, _ = plain_copy(model, dtype=param.dtype, device=param.device)
    space.load_into(out, w)
    for p in out.parameters():
        p.requires_grad_(True)
    out.train(model.training)
    return out


def _default_eps(distance: float, steps: int) -> float:
    """Steps of 1.5·distance/steps: the walk can cover the distance with room to spare."""
    return (1.5 * max(distance, 1e-12) / steps) ** 2


# ---------------------------------------------------------------- the walk


@dataclass(frozen=True)
class WalkSettings:
    """The settings of a walk that both paths share, checked."""

    steps: int
    batch_size: int
    record_every: int
    eval_size: int
    eps: float | None
    beta: float
    lam: float
    tol: float | None

    @classmethod
    def checked(
        cls,
        *,
        steps: object,
        batch_size: object,
        record_every: object,
        eval_size: object,
        eps: object,
        beta: object,
        lam: object,
        tol: object,
    ) -> WalkSettings:
        return cls(
            steps=check_int("steps", steps, 1, 100_000),
            batch_size=check_int("batch_size", batch_size, 1, 100_000),
            record_every=check_int("record_every", record_every, 1, MAX_RECORD_EVERY),
            eval_size=check_int("eval_size", eval_size, 1, 10_000_000),
            eps=check_optional_positive("eps", eps),
            beta=check_positive("beta", beta),
            lam=check_positive("lam", lam),
            tol=check_optional_positive("tol", tol),
        )


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

    def __post_init__(self) -> None:
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

        def loss(w_: torch.Tensor) -> torch.Tensor:
            out = self.f(w_, xb)
            return (out - ref).pow(2).sum() / len(xb) + self.lam * (w_ - target).pow(2).sum()

        g = grad(loss)(w)
        gn = float(g.norm())
        if gn == 0.0:
            return torch.zeros_like(w), 0.0, math.nan
        theta = -math.sqrt(self.eps) * g / gn
        return theta, metric_norm(self.model, self.space, w, theta, xb), math.nan


# w -> the direction v of the next step, or None to end the walk
Direction = Callable[[torch.Tensor], torch.Tensor | None]
# (step, w, path length Σ√θᵀgθ, this step's length, μ) -> None
Recorder = Callable[[int, torch.Tensor, float, float, float], None]


def _walk(
    stepper: _Stepper,
    w: torch.Tensor,
    metric_x: torch.Tensor,
    gen: torch.Generator,
    settings: WalkSettings,
    batch_size: int,
    *,
    direction: Direction,
    record: Recorder,
    progress: Progress,
    phase: str,
    record_last: bool = False,
    status: Callable[[torch.Tensor], dict[str, Any]] | None = None,
) -> tuple[torch.Tensor, int, float]:
    """Step from w along ``direction`` with the metric on random batches of ``metric_x``.

    ``record`` is called at step 0, every ``record_every`` steps (and at the last step with
    ``record_last``). Returns (the last weights, the number of steps taken, the path length).
    """
    w_start = w.clone()
    length = 0.0
    taken = 0
    record(0, w, length, 0.0, math.nan)
    for step in range(1, settings.steps + 1):
        progress.check()
        v = direction(w)  # before the metric batch: a gradient direction draws from gen first
        if v is None:
            break
        idx = _batch_index(len(metric_x), batch_size, gen, metric_x.device)
        theta, step_len, mu = stepper.step(w, v, metric_x[idx], w_start)
        w = w + theta
        length += step_len
        taken = step
        if step % settings.record_every == 0 or (record_last and step == settings.steps):
            record(step, w, length, step_len, mu)
        progress.update(step / settings.steps, phase, step=step, **(status(w) if status is not None else {}))
    return w, taken, length


# ---------------------------------------------------------------- sparsification


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
) -> PathResult:
    """Walk from ``model`` to the ``sparsity``-sparse hyperplane along an approximate geodesic.

    ``data_x`` supplies the inputs of the functional metric (a fresh batch of ``batch_size`` each
    step); accuracies are measured on ``eval_x, eval_y`` (default ``data_x, data_y``; a fixed
    random subset of at most ``eval_size``). ``eps`` is the squared Euclidean length of a step
    (default: steps of 1.5·d₀/steps, d₀ the starting distance to the hyperplane); ``beta`` weighs
    the pull towards the hyperplane against the change of function; ``tol`` (default 1e-3·d₀) ends
    the walk. ``masks`` (layer -> bool, True = kept) are weights already pruned, which stay pruned.

    Returns a ``PathResult``: ``model``, a pruned copy of the model; ``table``, one row per
    recorded step: step, path_length (Σ√θᵀgθ), step_length, mu, distance (Euclidean, to the
    hyperplane), accuracy (current net), accuracy_projected (its hard projection onto the
    hyperplane), n_pruned, final, seconds; the last row (``final`` True) is the projected network
    that is returned; ``masks``, layer -> bool, True = kept.
    """
    sparsity = check_fraction("sparsity", sparsity)
    cfg = WalkSettings.checked(
        steps=steps,
        batch_size=batch_size,
        record_every=record_every,
        eval_size=eval_size,
        eps=eps,
        beta=beta,
        lam=lam,
        tol=tol,
    )
    mask = check_choice("mask", mask, MASK_MODES)
    method = check_choice("method", method, METHODS)
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
    ex, ey = _subset(ex, ey, cfg.eval_size, gen)

    space = ParamSpace(work)
    prunable, layer_slices, layer_shapes = prunable_vector(work, space, input_shape)
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
    batch = exact_batch_size(cfg.batch_size, _n_outputs(work, x), space.size) if method == "exact" else cfg.batch_size
    pruned = global_magnitude_mask(w, prunable, sparsity, forced)
    d0 = float(w[pruned].norm())
    step_eps = cfg.eps if cfg.eps is not None else _default_eps(d0, cfg.steps)
    stop_tol = cfg.tol if cfg.tol is not None else max(1e-3 * d0, 1e-12)
    stepper = _Stepper(work, space, method, cfg.beta, step_eps, cfg.lam, fisher)
    f = stepper.f

    rows: list[dict] = []
    start = time.monotonic()

    def record(step: int, w_: torch.Tensor, length: float, step_len: float, mu: float, final: bool = False) -> None:
        projected = torch.where(pruned, torch.zeros_like(w_), w_)
        rows.append(
            dict(
                step=step,
                path_length=length,
                step_length=step_len,
                mu=mu,
                distance=float(w_[pruned].norm()),
                accuracy=_accuracy(f, w_, ex, ey),
                accuracy_projected=_accuracy(f, projected, ex, ey),
                n_pruned=int(pruned.sum()),
                final=final,
                seconds=time.monotonic() - start,
            )
        )

    def towards_hyperplane(w_: torch.Tensor) -> torch.Tensor | None:
        nonlocal pruned
        if mask == "recompute":
            pruned = global_magnitude_mask(w_, prunable, sparsity, forced)
        v = torch.where(pruned, -w_, torch.zeros_like(w_))  # from w to its projection
        return None if float(v.norm()) < stop_tol else v

    def distance(w_: torch.Tensor) -> dict[str, Any]:
        return {"distance": float(w_[pruned].norm())}

    w, taken, length = _walk(
        stepper,
        w,
        x,
        gen,
        cfg,
        batch,
        direction=towards_hyperplane,
        record=record,
        progress=progress,
        phase="geodesic path",
        status=distance,
    )
    if mask == "recompute":
        pruned = global_magnitude_mask(w, prunable, sparsity, forced)
    w = torch.where(pruned, torch.zeros_like(w), w)  # the hard projection ends the path
    record(taken, w, length, 0.0, math.nan, final=True)
    progress.update(1.0, "geodesic path", force=True)
    frame = pd.DataFrame(rows)
    frame.attrs["start_distance"] = d0
    frame.attrs["eps"] = step_eps
    frame.attrs["batch_size"] = batch
    kept = {name: (~pruned[sl]).reshape(layer_shapes[name]).cpu() for name, sl in layer_slices.items()}
    return PathResult(_result_model(model, space, w), frame, kept)


# ---------------------------------------------------------------- forgetting


def _task(task: Dataset | str, name: str) -> Dataset:
    if isinstance(task, str):
        task = load(task)
    if not isinstance(task, Dataset):
        raise NNGeoError(f"{name} must be a Dataset or a dataset name, got a {type(task).__name__}")
    if len(task.x_test) == 0 or len(task.x_train) == 0:
        raise NNGeoError(f"{name} ({task.name}) has no training or test inputs")
    return task


def forgetting_path(
    model_a: nn.Module,
    model_b: nn.Module | None,
    task_a: Dataset | str,
    task_b: Dataset | str,
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
) -> PathResult:
    """Walk from a net trained on task A towards task B while keeping task A's function.

    The metric is taken on task-A training inputs; the direction is v = w_B − w (``direction=
    "target"``, needs ``model_b`` of the same architecture) or −∇L_B(w) on a task-B training batch
    (``"gradient"``). Records per step: path_length, distance_to_b (if model_b), accuracy_a,
    accuracy_b, accuracy_mean. Returns a ``PathResult``: ``model``, the net on the path with the
    best mean accuracy, and ``table``, whose ``best`` column marks that row.
    """
    cfg = WalkSettings.checked(
        steps=steps,
        batch_size=batch_size,
        record_every=record_every,
        eval_size=eval_size,
        eps=eps,
        beta=beta,
        lam=lam,
        tol=tol,
    )
    direction = check_choice("direction", direction, DIRECTIONS)
    method = check_choice("method", method, METHODS)
    if method == "gradient" and direction != "target":
        raise NNGeoError("method 'gradient' needs direction 'target' (it pulls towards w_B)")
    progress = progress or Progress()
    a, b = _task(task_a, "task_a"), _task(task_b, "task_b")

    work, _ = plain_copy(model_a, device=device)
    dev = next(work.parameters()).device
    space = ParamSpace(work)
    w = space.flatten(work).clone()
    w_b = None
    if model_b is not None:
        work_b, _ = plain_copy(model_b, device=dev)
        space_b = ParamSpace(work_b)
        if space_b.names != space.names or space_b.shapes != space.shapes:
            raise NNGeoError("model_a and model_b must have the same architecture")
        w_b = space_b.flatten(work_b)
    elif direction == "target":
        raise NNGeoError("direction 'target' needs model_b (the net trained on task B)")

    shape = tuple(getattr(model_a, "input_shape", None) or a.input_shape)
    xa = _as_inputs(a.x_train, shape, dev, "task A inputs")
    xb_train = _as_inputs(b.x_train, shape, dev, "task B inputs")
    yb_train = _as_labels(b.y_train, len(xb_train), dev, "task B labels")
    gen = torch.Generator().manual_seed(int(seed))
    ea = _subset(
        _as_inputs(a.x_test, shape, dev, "task A test inputs"),
        _as_labels(a.y_test, len(a.x_test), dev, "task A test labels"),
        cfg.eval_size,
        gen,
    )
    eb = _subset(
        _as_inputs(b.x_test, shape, dev, "task B test inputs"),
        _as_labels(b.y_test, len(b.x_test), dev, "task B test labels"),
        cfg.eval_size,
        gen,
    )

    batch = exact_batch_size(cfg.batch_size, _n_outputs(work, xa), space.size) if method == "exact" else cfg.batch_size
    d0 = float((w_b - w).norm()) if w_b is not None else None
    if cfg.eps is not None:
        step_eps = cfg.eps
    elif d0 is not None:
        step_eps = _default_eps(d0, cfg.steps)
    else:
        raise NNGeoError("give eps (the squared step length) when walking by the task-B gradient")
    stop_tol = cfg.tol if cfg.tol is not None else (1e-3 * d0 if d0 else 0.0)
    stepper = _Stepper(work, space, method, cfg.beta, step_eps, cfg.lam, fisher)
    f = stepper.f

    rows: list[dict] = []
    best_w, best_mean = w.clone(), -1.0

    def record(step: int, w_: torch.Tensor, length: float, step_len: float, mu: float) -> None:
        nonlocal best_w, best_mean
        acc_a, acc_b = _accuracy(f, w_, *ea), _accuracy(f, w_, *eb)
        mean = 0.5 * (acc_a + acc_b)
        if mean > best_mean:
            best_w, best_mean = w_.clone(), mean
        rows.append(
            dict(
                step=step,
                path_length=length,
                step_length=step_len,
                distance_to_b=float((w_b - w_).norm()) if w_b is not None else math.nan,
                accuracy_a=acc_a,
                accuracy_b=acc_b,
                accuracy_mean=mean,
            )
        )

    def loss_b(w_: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(f(w_, xs), ys)

    def towards_b(w_: torch.Tensor) -> torch.Tensor | None:
        if w_b is not None and direction == "target":
            v = w_b - w_
            return None if float(v.norm()) < stop_tol else v
        idx = _batch_index(len(xb_train), batch, gen, dev)
        return -grad(loss_b)(w_, xb_train[idx], yb_train[idx])

    _walk(
        stepper,
        w,
        xa,
        gen,
        cfg,
        batch,
        direction=towards_b,
        record=record,
        progress=progress,
        phase="forgetting path",
        record_last=True,
    )
    frame = pd.DataFrame(rows)
    frame["best"] = False
    frame.loc[int(frame["accuracy_mean"].to_numpy().argmax()), "best"] = True
    progress.update(1.0, "forgetting path", force=True)
    return PathResult(_result_model(model_a, space, best_w), frame)
