"""The exact geodesic step against a dense KKT solve, random feasible steps, and autograd Jacobians.

Reference for the step: with g = JᵀJ built explicitly (P × P) and diagonalised by NumPy, the KKT
conditions of min θᵀgθ − β·θᵀv s.t. ‖θ‖² ≤ ε are 2(g + μI)θ = βv, μ ≥ 0, μ(‖θ‖² − ε) = 0; μ is
the root of ‖θ(μ)‖² = ε found by SciPy's brentq and θ is then a dense linear solve.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.optimize import brentq
from torch import nn

from nngeo_core.errors import NNGeoError
from nngeo_core.geometry import ParamSpace, functional_jacobian, solve_step
from nngeo_core.geometry.weight_space import global_magnitude_mask, plain_copy


def dense_kkt(J: np.ndarray, v: np.ndarray, beta: float, eps: float) -> tuple[np.ndarray, float]:
    g = J.T @ J
    P = len(v)
    lam, Q = np.linalg.eigh(g)
    c = Q.T @ v

    def excess(mu):
        with np.errstate(divide="ignore", over="ignore"):  # μ → 0 on a zero eigenvalue: +inf is right
            return (beta / 2) ** 2 * np.sum((c / (lam + mu)) ** 2) - eps

    if lam.min() > 1e-10 * lam.max() and excess(0.0) <= 0:
        return np.linalg.solve(g, beta / 2 * v), 0.0
    hi = 1.0
    while excess(hi) > 0:
        hi *= 10
    mu = brentq(excess, 1e-300, hi, xtol=1e-300, rtol=4 * np.finfo(float).eps, maxiter=1000)
    return np.linalg.solve(g + mu * np.eye(P), beta / 2 * v), mu


def objective(J, theta, v, beta):
    return float(np.sum((J @ theta) ** 2) - beta * theta @ v)


@pytest.mark.parametrize(
    "m,P,beta,eps",
    [
        (5, 12, 0.3, 0.01),  # singular g (P > m): the constraint is always active
        (5, 12, 50.0, 0.5),
        (20, 6, 0.3, 1e-4),  # invertible g, constrained
        (40, 30, 1.0, 1e-3),
    ],
)
def test_step_equals_dense_kkt_solution(m, P, beta, eps):
    rng = np.random.default_rng(m * 100 + P)
    J = rng.normal(size=(m, P)) * rng.uniform(0.1, 3, size=(m, 1))
    v = rng.normal(size=P)
    res = solve_step(torch.tensor(J), torch.tensor(v), beta=beta, eps=eps)
    theta_ref, mu_ref = dense_kkt(J, v, beta, eps)
    np.testing.assert_allclose(res.theta.numpy(), theta_ref, rtol=1e-8, atol=1e-8 * np.abs(theta_ref).max())
    assert res.mu == pytest.approx(mu_ref, rel=1e-8)
    assert float(res.theta @ res.theta) == pytest.approx(eps, rel=1e-8)
    g = J.T @ J
    kkt = 2 * (g + res.mu * np.eye(P)) @ res.theta.numpy() - beta * v
    assert np.abs(kkt).max() <= 1e-8 * beta * np.abs(v).max()
    assert res.objective == pytest.approx(objective(J, theta_ref, v, beta), rel=1e-8)
    assert res.length == pytest.approx(math.sqrt(theta_ref @ g @ theta_ref), rel=1e-8)


def test_unconstrained_minimiser_is_used_when_feasible():
    rng = np.random.default_rng(7)
    J = rng.normal(size=(30, 8))
    v = rng.normal(size=8)
    beta = 0.1
    free = np.linalg.solve(J.T @ J, beta / 2 * v)
    res = solve_step(torch.tensor(J), torch.tensor(v), beta=beta, eps=10 * float(free @ free))
    assert res.mu == 0.0
    np.testing.assert_allclose(res.theta.numpy(), free, rtol=1e-10)


def test_no_random_feasible_step_does_better():
    rng = np.random.default_rng(3)
    J = rng.normal(size=(6, 15))
    v = rng.normal(size=15)
    beta, eps = 0.7, 0.05
    res = solve_step(torch.tensor(J), torch.tensor(v), beta=beta, eps=eps)
    best = objective(J, res.theta.numpy(), v, beta)
    # random directions on and inside the ball, and small perturbations of the solution
    dirs = rng.normal(size=(20000, 15))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    radii = math.sqrt(eps) * rng.uniform(0, 1, size=(20000, 1)) ** (1 / 15)
    near = res.theta.numpy() + 1e-3 * rng.normal(size=(2000, 15))
    near *= np.minimum(1.0, math.sqrt(eps) / np.linalg.norm(near, axis=1, keepdims=True))
    for cand in (dirs * math.sqrt(eps), dirs * radii, near):
        vals = np.sum((cand @ J.T) ** 2, axis=1) - beta * cand @ v
        assert vals.min() >= best - 1e-12


def test_zero_direction_and_bad_settings():
    J = torch.randn(3, 5, dtype=torch.float64)
    res = solve_step(J, torch.zeros(5, dtype=torch.float64), beta=1.0, eps=0.1)
    assert torch.count_nonzero(res.theta) == 0
    with pytest.raises(NNGeoError, match="beta"):
        solve_step(J, torch.ones(5), beta=0.0, eps=0.1)
    with pytest.raises(NNGeoError, match="eps"):
        solve_step(J, torch.ones(5), beta=1.0, eps=math.nan)


def _tiny_net():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3))
    m.input_shape = (3,)
    return m


def test_functional_jacobian_matches_autograd_and_the_fisher_form():
    model = _tiny_net()
    work, _ = plain_copy(model)
    space = ParamSpace(work)
    w = space.flatten(work)
    x = torch.randn(5, 3, dtype=torch.float64)

    def outputs(wv):
        params = space.unflatten(wv)
        return torch.func.functional_call(work, params, (x,))

    J_ref = torch.autograd.functional.jacobian(lambda wv: outputs(wv).reshape(-1), w)  # (B·C, P)
    J = functional_jacobian(work, space, w, x)
    np.testing.assert_allclose(J.numpy(), J_ref.numpy() / math.sqrt(5), atol=1e-12)
    # Fisher: JᵀJ = mean over inputs of J_bᵀ (diag p − ppᵀ) J_b
    Jf = functional_jacobian(work, space, w, x, fisher=True)
    p = torch.softmax(outputs(w), 1)
    blocks = J_ref.reshape(5, 3, -1)
    G_ref = sum(blocks[b].T @ (torch.diag(p[b]) - torch.outer(p[b], p[b])) @ blocks[b] for b in range(5)) / 5
    np.testing.assert_allclose((Jf.T @ Jf).numpy(), G_ref.numpy(), atol=1e-12)


def test_global_magnitude_mask_prunes_the_smallest_and_keeps_forced_ones():
    w = torch.tensor([0.5, -0.1, 3.0, 0.2, -2.0, 0.05])
    prunable = torch.tensor([True, True, True, True, True, False])
    pruned = global_magnitude_mask(w, prunable, 0.4)
    assert pruned.tolist() == [False, True, False, True, False, False]
    forced = torch.tensor([False, False, True, False, False, False])
    pruned = global_magnitude_mask(w, prunable, 0.4, forced)
    assert pruned.tolist() == [False, True, True, False, False, False]
