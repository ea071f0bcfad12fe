"""The functional metric on weight space and the exact solver for one geodesic step.

At weights w the functional metric over a batch of B inputs is g_w = J_wᵀJ_w with
J_w = ∂f(x, w)/∂w / √B (outputs of all inputs stacked, shape (B·C, P)): θᵀg_wθ is the mean squared
change of the network's outputs when the weights move by θ. With ``fisher=True`` each input's
block is premultiplied by a square root of the softmax Fisher matrix diag(p) − ppᵀ, namely
M = diag(√p) − √p pᵀ (MᵀM = diag(p) − ppᵀ since Σp = 1), so g_w is the Fisher information metric.
g_w (P × P) is never formed: everything goes through J_w (B·C × P, small B) and the B·C × B·C
matrix J_wJ_wᵀ.

One step (Raghavan & Thomson, arXiv 2012.09605) solves
    argmin_θ θᵀg_wθ − β·θᵀv   subject to θᵀθ ≤ ε
exactly: θ = (β/2)(g_w + μI)⁻¹v with μ ≥ 0. With J = U S Vᵀ (thin SVD, from the eigendecomposition
of JJᵀ), (JᵀJ + μI)⁻¹v = V diag(1/(s² + μ)) Vᵀv + (v − VVᵀv)/μ, so ‖θ(μ)‖² is a scalar function
of μ, decreasing, and μ is found by bisection so that ‖θ‖² = ε. When v has no component in the
null space of g_w and the unconstrained minimiser (μ = 0) is feasible, it is used.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, jacrev, jvp, vmap

from ..errors import NNGeoError
from ..models.base import prunable_layers
from ..models.parametrisations import fold_masks, read_masks
from .model_copy import float64_copy

# bytes of per-sample Jacobian blocks materialised at once
JACOBIAN_CHUNK_BYTES = 2**28
# bytes the whole J_w (B·C × P, float64) of one exact step may take
JACOBIAN_BUDGET_BYTES = 2**29


def exact_batch_size(requested: int, n_outputs: int, n_params: int) -> int:
    """The batch size an exact step can afford: J_w must fit ``JACOBIAN_BUDGET_BYTES``."""
    affordable = JACOBIAN_BUDGET_BYTES // (8 * n_outputs * n_params)
    if affordable < 1:
        raise NNGeoError(
            f"the network has {n_params} parameters, too many for the exact geodesic step; use method='gradient'"
        )
    return int(min(requested, affordable))


class ParamSpace:
    """The model's parameters as one flat vector (order of ``named_parameters``), and back."""

    def __init__(self, model: nn.Module):
        self.names: list[str] = []
        self.shapes: list[torch.Size] = []
        self.offsets: list[int] = []
        total = 0
        for name, p in model.named_parameters():
            self.names.append(name)
            self.shapes.append(p.shape)
            self.offsets.append(total)
            total += p.numel()
        if total == 0:
            raise NNGeoError("the model has no parameters")
        self.size = total
        self.buffers = {name: b for name, b in model.named_buffers()}

    def flatten(self, model: nn.Module) -> torch.Tensor:
        params = dict(model.named_parameters())
        return torch.cat([params[n].detach().reshape(-1) for n in self.names])

    def unflatten(self, w: torch.Tensor) -> dict[str, torch.Tensor]:
        return {
            n: w[o : o + math.prod(s)].view(s) for n, s, o in zip(self.names, self.shapes, self.offsets, strict=False)
        }

    def slice_of(self, name: str) -> slice:
        i = self.names.index(name)
        return slice(self.offsets[i], self.offsets[i] + math.prod(self.shapes[i]))

    def load_into(self, model: nn.Module, w: torch.Tensor) -> nn.Module:
        with torch.no_grad():
            params = dict(model.named_parameters())
            for n, t in self.unflatten(w).items():
                params[n].copy_(t.to(dtype=params[n].dtype, device=params[n].device))
        return model


def plain_copy(
    model: nn.Module, *, dtype: torch.dtype = torch.float64, device: str | torch.device = "auto"
) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """A private copy in eval mode with torch pruning re-parametrisations folded into the weights.

    Returns (copy, masks already on the model: layer name -> bool, True = kept).
    """
    work = float64_copy(model, device, dtype=dtype)
    # masks are 0/1, so folding after the dtype change gives the same weights as folding before
    masks = read_masks(work)
    fold_masks(work)
    return work, masks


OutputFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def prunable_vector(
    model: nn.Module, space: ParamSpace, input_shape: Iterable[int] | None
) -> tuple[torch.Tensor, dict[str, slice], dict[str, tuple[int, ...]]]:
    """Bool vector over w marking Linear/Conv weights, each layer's slice, and each layer's weight shape."""
    prunable = torch.zeros(space.size, dtype=torch.bool)
    slices, shapes = {}, {}
    for info in prunable_layers(model, input_shape):
        sl = space.slice_of(f"{info.name}.weight")
        prunable[sl] = True
        slices[info.name] = sl
        shapes[info.name] = info.weight_shape
    return prunable, slices, shapes


def output_fn(model: nn.Module, space: ParamSpace) -> OutputFn:
    """f(w, x_batch) -> logits (B, C) with the flat weight vector w."""

    def f(w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        out = functional_call(model, (space.unflatten(w), space.buffers), (x,))
        return out.reshape(len(x), -1)

    return f


def functional_jacobian(
    model: nn.Module, space: ParamSpace, w: torch.Tensor, x: torch.Tensor, *, fisher: bool = False
) -> torch.Tensor:
    """J_w of shape (B·C, P), scaled by 1/√B so that g_w = JᵀJ is the batch mean metric."""

    def single(params: dict[str, torch.Tensor], xi: torch.Tensor) -> torch.Tensor:
        return functional_call(model, (params, space.buffers), (xi.unsqueeze(0),)).reshape(-1)

    # differentiating w.r.t. a dict of per-parameter views is several times faster than w.r.t.
    # the flat vector (no slicing in the backward graph); the blocks are concatenated after
    per_sample = vmap(jacrev(single), in_dims=(None, 0))
    params = space.unflatten(w)
    f = output_fn(model, space)
    with torch.no_grad():
        C = f(w, x[:1]).shape[1]
    chunk = int(max(1, JACOBIAN_CHUNK_BYTES // max(1, 8 * C * space.size * 3)))
    blocks = []
    for start in range(0, len(x), chunk):
        xb = x[start : start + chunk]
        per_param = per_sample(params, xb)  # name -> (b, C, *shape)
        Jb = torch.cat([per_param[n].reshape(len(xb), C, -1) for n in space.names], dim=2)
        if fisher:
            with torch.no_grad():
                p = torch.softmax(f(w, xb), dim=1)
            sq = p.sqrt()
            M = torch.diag_embed(sq) - sq.unsqueeze(2) * p.unsqueeze(1)  # diag(√p) − √p pᵀ
            Jb = M @ Jb
        blocks.append(Jb.reshape(-1, space.size))
    return torch.cat(blocks) / math.sqrt(len(x))


def metric_norm(model: nn.Module, space: ParamSpace, w: torch.Tensor, theta: torch.Tensor, x: torch.Tensor) -> float:
    """√(θᵀg_wθ) by one forward-mode product (for steps whose J was not formed)."""
    f = output_fn(model, space)
    tangent = jvp(lambda w_: f(w_, x), (w,), (theta,))[1]
    return float(tangent.pow(2).sum().div(len(x)).sqrt())


@dataclass
class StepResult:
    theta: torch.Tensor  # the step (P,)
    mu: float  # the multiplier of the norm constraint (0: unconstrained minimiser)
    length: float  # √(θᵀgθ), the functional length of the step
    objective: float  # θᵀgθ − β·θᵀv


def solve_step(J: torch.Tensor, v: torch.Tensor, *, beta: float, eps: float, max_iter: int = 300) -> StepResult:
    """Exact minimiser of θᵀ(JᵀJ)θ − β·θᵀv subject to ‖θ‖² ≤ ε (see the module docstring)."""
    if not (math.isfinite(beta) and beta > 0):
        raise NNGeoError(f"beta must be a positive number, got {beta!r}")
    if not (math.isfinite(eps) and eps > 0):
        raise NNGeoError(f"eps (the squared step length) must be a positive number, got {eps!r}")
    J = J.to(torch.float64)
    v = v.to(torch.float64)
    P = v.numel()
    vnorm = float(v.norm())
    if vnorm == 0.0:
        zero = torch.zeros_like(v)
        return StepResult(zero, 0.0, 0.0, 0.0)
    K = J @ J.T
    lam, U = torch.linalg.eigh(K)
    lam_max = float(lam[-1]) if lam.numel() else 0.0
    # eigenvalues of JJᵀ below this are rounding noise: those directions count as null space
    keep = lam > max(lam_max, 0.0) * max(J.shape) * torch.finfo(torch.float64).eps * 16
    s2 = lam[keep]
    Uk = U[:, keep]
    s = s2.sqrt()
    c = (Uk.T @ (J @ v)) / s if s.numel() else torch.zeros(0, dtype=v.dtype, device=v.device)  # Vᵀv

    def V_times(a: torch.Tensor) -> torch.Tensor:  # V a with V = Jᵀ U S⁻¹
        return J.T @ (Uk @ (a / s)) if s.numel() else torch.zeros_like(v)

    full_rank = int(keep.sum()) == P
    v_perp = torch.zeros_like(v) if full_rank else v - V_times(c)
    r2 = float(v_perp @ v_perp)
    c_np, s2_np = c.cpu().numpy(), s2.cpu().numpy()
    half_beta = 0.5 * beta

    def norm2(mu: float) -> float:
        inside = float(np.sum((c_np / (s2_np + mu)) ** 2))
        return half_beta**2 * (inside + (r2 / mu**2 if r2 > 0 else 0.0))

    mu = 0.0
    if r2 == 0.0 and norm2(0.0) <= eps:
        theta = half_beta * V_times(c / s2)
    else:
        # ‖θ(μ)‖² ≤ (β/2)²‖v‖²/μ², so hi is feasible; lo is infeasible (from the null-space term)
        hi = half_beta * vnorm / math.sqrt(eps)
        lo = half_beta * math.sqrt(r2 / eps) if r2 > 0 else 0.0
        for _ in range(max_iter):
            mid = math.sqrt(lo * hi) if lo > 0 else 0.5 * hi
            if norm2(mid) > eps:
                lo = mid
            else:
                hi = mid
            if hi - lo <= 1e-15 * hi:
                break
        mu = hi  # the feasible end of the bracket
        coef = torch.as_tensor(c_np / (s2_np + mu), dtype=v.dtype, device=v.device)
        theta = half_beta * (V_times(coef) + v_perp / mu)
    Jt = J @ theta
    quad = float(Jt @ Jt)
    return StepResult(theta, float(mu), math.sqrt(max(quad, 0.0)), quad - beta * float(theta @ v))


def global_magnitude_mask(
    w: torch.Tensor, prunable: torch.Tensor, sparsity: float, forced: torch.Tensor | None = None
) -> torch.Tensor:
    """Bool vector over w: True where a weight is pruned (the ``sparsity`` fraction of the prunable
    entries with the smallest |w|, always including ``forced`` entries)."""
    idx = torch.nonzero(prunable).squeeze(1)
    k = int(round(sparsity * idx.numel()))
    pruned = torch.zeros_like(prunable)
    if k == 0:
        return pruned if forced is None else (pruned | forced)
    mags = w[idx].abs()
    if forced is not None:
        mags = torch.where(forced[idx], torch.full_like(mags, -1.0), mags)  # forced ones go first
    order = torch.argsort(mags, stable=True)
    pruned[idx[order[:k]]] = True
    if forced is not None:
        pruned |= forced
    return pruned
