"""Fast path for MLPs on low-dimensional inputs: the pullback metric and its derivatives from jets.

For a plain ``nn.Sequential`` of Linear layers and elementwise activations, every partial
derivative ∂_I Φ (I a multi-index of order ≤ 3 over the d ≤ 4 input coordinates) is carried
through the network as a tensor of shape (N, width): a Linear layer maps each derivative by Wᵀ
(the bias touches only the value), and an elementwise σ follows Faà di Bruno's formula
∂_I σ(z) = Σ_{partitions π of I} σ^{(|π|)}(z) Π_{B ∈ π} ∂_B z. This computes exactly what nested
``jacfwd`` computes, without the overhead of nested dual tensors over tangents that are mostly
zero; the tests check both paths agree to rounding.

g = JᵀJ/n and its derivatives only need inner products ⟨∂_AΦ, ∂_BΦ⟩/n. When Φ is the first hidden
layer (Φ = σ(Wx + b)), ∂_AΦ = σ^{(|A|)}(z) ∘ Π_{i∈A} W[:, i], so each inner product is one matrix
product (σ^{(|A|)} σ^{(|B|)}) @ (Π_{A} W Π_{B} W): no (N, n, d) tensors at all. This is the case
of one-hidden-layer 2-D classifiers, and it makes a 200×200 Ricci grid take seconds.

σ', σ'', σ''' have closed forms for tanh, sigmoid, softplus and the ReLU family; any other
elementwise activation gets them from nested ``torch.func.jvp`` of the module itself.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator
from functools import cache
from typing import Any, Literal, overload

import torch
from torch import nn
from torch.func import jacrev, jvp

from ..models.mlp import Erf
from .activations import ACTIVATION_TYPES, is_activation

JET_MAX_DIM = 4  # jets carry O(d³) derivative tensors; beyond this the generic path is used
_PASSTHROUGH = (nn.Flatten, nn.Identity, nn.Dropout, nn.AlphaDropout)


def flatten_sequential(model: nn.Module) -> list[nn.Module] | None:
    """The modules a plain Sequential (nested ones unrolled) applies in order, else None."""
    if not isinstance(model, nn.Sequential) or type(model).forward is not nn.Sequential.forward:
        return None
    out: list[nn.Module] = []
    for child in model:
        if isinstance(child, nn.Sequential):
            inner = flatten_sequential(child)
            if inner is None:
                return None
            out.extend(inner)
        else:
            out.append(child)
    return out


def _is_elementwise(module: nn.Module, width: int, dtype: torch.dtype, device: torch.device) -> bool:
    if isinstance(module, ACTIVATION_TYPES) and not isinstance(module, nn.RReLU):
        return True
    if not is_activation(module):
        return False
    # a custom activation: accept it only if its Jacobian at a random point is diagonal
    z = torch.randn(1, min(width, 6), dtype=dtype, device=device)
    try:
        J = jacrev(module.forward)(z).reshape(z.numel(), z.numel())
    except Exception:
        return False
    return bool(torch.count_nonzero(J - torch.diag(torch.diagonal(J))) == 0)


def jet_modules(model: nn.Module, target: tuple[nn.Module, int] | None, input_dim: int) -> list[nn.Module] | None:
    """Modules from the input up to (and including) call ``target`` = (module, call number), or all
    modules when ``target`` is None, if jets can go through every one of them; else None."""
    mods = flatten_sequential(model)
    param = next(iter(model.parameters()), None)
    if mods is None or param is None:
        return None
    chosen: list[nn.Module] = []
    seen: dict[nn.Module, int] = {}
    width = input_dim
    for m in mods:
        if isinstance(m, nn.Linear):
            if m.in_features != width:
                return None
            width = m.out_features
        elif not isinstance(m, _PASSTHROUGH) and not _is_elementwise(m, width, param.dtype, param.device):
            return None
        chosen.append(m)
        k = seen.get(m, 0)
        seen[m] = k + 1
        if target is not None and m is target[0] and k == target[1]:
            return chosen
    return chosen if target is None else None


def multi_indices(d: int, order: int) -> list[tuple[int, ...]]:
    """Sorted multi-indices of orders 1..order over d coordinates, e.g. (0,), (1,), (0,0), (0,1)..."""
    out: list[tuple[int, ...]] = []
    for k in range(1, order + 1):
        out.extend(itertools.combinations_with_replacement(range(d), k))
    return out


@cache
def _partitions(k: int) -> tuple[tuple[tuple[int, ...], ...], ...]:
    """All set partitions of positions {0..k-1}."""

    def rec(items: list[int]) -> Iterator[list[tuple[int, ...]]]:
        if not items:
            yield []
            return
        first, rest = items[0], items[1:]
        for part in rec(rest):
            for i in range(len(part)):
                yield part[:i] + [(first,) + part[i]] + part[i + 1 :]
            yield [(first,)] + part

    return tuple(tuple(tuple(b) for b in p) for p in rec(list(range(k))))


# ---------------------------------------------------------------- σ and its derivatives


def activation_derivatives(act: nn.Module, z: torch.Tensor, order: int) -> list[torch.Tensor]:
    """[σ(z), σ'(z), ..., σ^(order)(z)] for an elementwise activation, order ≤ 3.

    Closed forms for tanh, sigmoid, softplus and the ReLU family, written to touch memory few
    times (this is the hot loop of the grid computations); nested jvp for anything else.
    """
    if type(act) is nn.Tanh:
        # d1 = 1 - t^2, d2 = -2 t d1, d3 = d1 (6 t^2 - 2); in place where a buffer is free
        t = torch.tanh(z)
        t2 = t * t
        s1 = torch.rsub(t2, 1.0)
        out = [t, s1]
        if order >= 2:
            out.append((t * s1).mul_(-2.0))
            if order >= 3:
                out.append(t2.mul_(6.0).sub_(2.0).mul_(s1))
        return out[: order + 1]
    if type(act) is nn.Sigmoid:
        # d1 = s (1 - s), d2 = d1 (1 - 2 s), d3 = d1 (1 - 6 s + 6 s^2)
        s = torch.sigmoid(z)
        s1 = s * torch.rsub(s, 1.0)
        out = [s, s1]
        if order >= 2:
            out.append(torch.rsub(s, 0.5).mul_(2.0).mul_(s1))
            if order >= 3:
                out.append((s * s).mul_(6.0).sub_(s * 6.0).add_(1.0).mul_(s1))
        return out[: order + 1]
    if type(act) is Erf:
        # d1 = 2/sqrt(pi) exp(-z^2), d2 = -2 z d1, d3 = (4 z^2 - 2) d1
        s1 = torch.exp(-(z * z)).mul_(2.0 / math.sqrt(math.pi))
        out = [torch.erf(z), s1]
        if order >= 2:
            out.append((z * s1).mul_(-2.0))
            if order >= 3:
                out.append((z * z).mul_(4.0).sub_(2.0).mul_(s1))
        return out[: order + 1]
    if type(act) is nn.ReLU or type(act) is nn.LeakyReLU:
        slope = float(act.negative_slope) if isinstance(act, nn.LeakyReLU) else 0.0
        pos = z > 0
        value = torch.where(pos, z, slope * z)
        s1 = torch.where(pos, 1.0, slope).to(z.dtype)
        out = [value, s1]
        if order >= 2:
            zero = torch.zeros_like(z)
            out += [zero, zero]
        return out[: order + 1]
    if type(act) is nn.Softplus:
        beta, threshold = float(act.beta), float(act.threshold)
        linear = beta * z > threshold  # torch returns z there, so the derivatives are 1, 0, 0
        p = torch.sigmoid(beta * z)
        out = [act.forward(z), torch.where(linear, 1.0, p)]
        if order >= 2:
            q = p * (1.0 - p)
            out.append(torch.where(linear, 0.0, beta * q))
            if order >= 3:
                out.append(torch.where(linear, 0.0, beta * beta * q * (1.0 - 2.0 * p)))
        return out[: order + 1]
    return _nested_jvp_derivatives(act, z, order)


def _push(f: Callable, t: torch.Tensor, ones: torch.Tensor) -> tuple[Any, Any]:
    """(f(t), directional derivative of f at t along ``ones``), by one forward-mode pass."""
    out = jvp(f, (t,), (ones,))
    return out[0], out[1]


def _nested_jvp_derivatives(act: nn.Module, z: torch.Tensor, order: int) -> list[torch.Tensor]:
    ones = torch.ones_like(z)
    f = act.forward  # not __call__: the feature map's stop hook lives on these modules

    def d1(t: torch.Tensor) -> tuple[Any, Any]:
        return _push(f, t, ones)

    if order <= 1:
        v, s1 = d1(z)
        return [v, s1][: order + 1]

    def d2(t: torch.Tensor) -> tuple[Any, Any]:
        return _push(d1, t, ones)

    if order == 2:
        (v, s1), (_, s2) = d2(z)
        return [v, s1, s2]
    ((v, s1), (_, s2)), (_, (_, s3)) = _push(d2, z, ones)
    return [v, s1, s2, s3]


# ---------------------------------------------------------------- jets through the network


# ∂_I of a layer's output for each multi-index I; None where it is identically zero
Derivatives = dict[tuple[int, ...], torch.Tensor | None]
# ip(A, B) = ⟨∂_AΦ, ∂_BΦ⟩/n per point, for sorted multi-indices A and B
InnerProducts = Callable[[tuple[int, ...], tuple[int, ...]], torch.Tensor]


def propagate_jets(modules: list[nn.Module], x: torch.Tensor, order: int) -> tuple[torch.Tensor, Derivatives]:
    """Value and partial derivatives up to ``order`` (by multi-index) of the modules' output at x (N, d).

    Derivative tensors may be broadcastable (1, width) where they do not depend on the point,
    and None where they are identically zero.
    """
    d = x.shape[1]
    keys = multi_indices(d, order)
    eye = torch.eye(d, dtype=x.dtype, device=x.device)
    value = x
    jets: Derivatives = {idx: eye[idx[0]].unsqueeze(0) if len(idx) == 1 else None for idx in keys}
    for m in modules:
        if isinstance(m, _PASSTHROUGH):
            continue  # inputs are already flat (N, d); Dropout is the identity in eval mode
        if isinstance(m, nn.Linear):
            value = nn.functional.linear(value, m.weight, m.bias)
            jets = {idx: None if v is None else v @ m.weight.T for idx, v in jets.items()}
            continue
        sig = activation_derivatives(m, value, order)
        out: Derivatives = {}
        for idx in keys:
            total = None
            for part in _partitions(len(idx)):
                factors = [jets[tuple(sorted(idx[p] for p in block))] for block in part]
                present = [f for f in factors if f is not None]
                if len(present) < len(factors):
                    continue
                term = sig[len(part)]
                for f in present:
                    term = term * f
                total = term if total is None else total + term
            out[idx] = total
        value, jets = sig[0], out
    return value, jets


def _jet_inner_products(value: torch.Tensor, jets: Derivatives, n: int) -> InnerProducts:
    N = value.shape[0]

    def ip(a: tuple[int, ...], b: tuple[int, ...]) -> torch.Tensor:
        va, vb = jets[a], jets[b]
        if va is None or vb is None:
            return torch.zeros(N, dtype=value.dtype, device=value.device)
        return (va * vb).sum(-1).expand(N) / n

    return ip


def _single_layer(modules: list[nn.Module]) -> tuple[nn.Linear, nn.Module] | None:
    """(Linear, activation) when the modules are passthroughs, one Linear and one activation."""
    core = [m for m in modules if not isinstance(m, _PASSTHROUGH)]
    if len(core) == 2 and isinstance(core[0], nn.Linear) and not isinstance(core[1], nn.Linear):
        return core[0], core[1]
    return None


def _single_layer_inner_products(
    linear: nn.Linear, act: nn.Module, x: torch.Tensor, n: int, order: int
) -> InnerProducts:
    # ∂_AΦ = σ^(|A|)(z) ∘ Π_{i∈A} W[:, i]: ⟨∂_AΦ, ∂_BΦ⟩ = (σ^(|A|) σ^(|B|)) @ Π_{A∪B} W[:, i]
    sig = activation_derivatives(act, nn.functional.linear(x, linear.weight, linear.bias), order)
    W = linear.weight
    # one matrix product per derivative-order pair, over all the monomials it needs
    wanted = {(1, 1), (2, 1), (3, 1), (2, 2)} if order >= 3 else ({(1, 1), (2, 1)} if order == 2 else {(1, 1)})
    d = W.shape[1]
    cache: dict[tuple[int, int], dict[tuple[int, ...], torch.Tensor]] = {}
    for p, q in sorted(wanted):
        monos = list(itertools.combinations_with_replacement(range(d), p + q))
        M = torch.stack([torch.prod(W[:, list(m)], dim=1) for m in monos], dim=1)  # (n, #monomials)
        values = (sig[p] * sig[q]) @ M / n  # (N, #monomials)
        cache[(p, q)] = {m: values[:, k] for k, m in enumerate(monos)}

    def ip(a: tuple[int, ...], b: tuple[int, ...]) -> torch.Tensor:
        p, q = len(a), len(b)
        if (p, q) not in cache:
            p, q = q, p
        return cache[(p, q)][tuple(sorted(a + b))]

    return ip


MetricJets = tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]


@overload
def metric_and_derivatives(
    modules: list[nn.Module], x: torch.Tensor, n: int, order: Literal[3]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]: ...
@overload
def metric_and_derivatives(modules: list[nn.Module], x: torch.Tensor, n: int, order: int) -> MetricJets: ...
def metric_and_derivatives(modules: list[nn.Module], x: torch.Tensor, n: int, order: int) -> MetricJets:
    """g (N,d,d), dg[i,j,k] = ∂ₖgᵢⱼ, ddg[i,j,k,l] = ∂ₗ∂ₖgᵢⱼ of g = JᵀJ/n (those beyond ``order`` are None)."""
    single = _single_layer(modules)
    if single is not None:
        ip = _single_layer_inner_products(single[0], single[1], x, n, order)
    else:
        ip = _jet_inner_products(*propagate_jets(modules, x, order), n)
    return assemble_metric(ip, x.shape[0], x.shape[1], order, x.dtype, x.device)


def assemble_metric(
    ip: InnerProducts, N: int, d: int, order: int, dtype: torch.dtype, device: torch.device
) -> MetricJets:
    """g and its derivatives from inner products ip(A, B) = ⟨∂_AΦ, ∂_BΦ⟩/n (A, B sorted multi-indices).

    gᵢⱼ = ⟨Φᵢ, Φⱼ⟩; ∂ₖgᵢⱼ = ⟨Φᵢₖ, Φⱼ⟩ + ⟨Φᵢ, Φⱼₖ⟩;
    ∂ₗ∂ₖgᵢⱼ = ⟨Φᵢₖₗ, Φⱼ⟩ + ⟨Φᵢₖ, Φⱼₗ⟩ + ⟨Φᵢₗ, Φⱼₖ⟩ + ⟨Φᵢ, Φⱼₖₗ⟩.
    """
    cache: dict[tuple[tuple[int, ...], tuple[int, ...]], torch.Tensor] = {}

    def c(a: tuple[int, ...], b: tuple[int, ...]) -> torch.Tensor:
        key = (tuple(sorted(a)), tuple(sorted(b)))
        key = min(key, key[::-1])
        if key not in cache:
            cache[key] = ip(*key)
        return cache[key]

    g = torch.empty(N, d, d, dtype=dtype, device=device)
    for i, j in itertools.product(range(d), repeat=2):
        g[:, i, j] = c((i,), (j,))
    if order < 2:
        return g, None, None
    dg = torch.empty(N, d, d, d, dtype=dtype, device=device)
    for i, j, k in itertools.product(range(d), repeat=3):
        dg[:, i, j, k] = c((i, k), (j,)) + c((i,), (j, k))
    if order < 3:
        return g, dg, None
    ddg = torch.empty(N, d, d, d, d, dtype=dtype, device=device)
    for i, j, k, m in itertools.product(range(d), repeat=4):
        ddg[:, i, j, k, m] = c((i, k, m), (j,)) + c((i, k), (j, m)) + c((i, m), (j, k)) + c((i,), (j, k, m))
    return g, dg, ddg
