"""Transport problems of edge groups that share a core cost matrix are solved as one batch
(``neural._ProblemPool``): the values are those of solving every group alone, and the merge
actually happens at a conv layer's interior positions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from nngeo_core.curvature import neural, neural_curvature, transport
from nngeo_core.models.mlp import FeedForward, sequential


def interior_cnn(seed=0):
    """Two 3x3 convs on 9x9: many interior positions share their neighbourhood structure."""
    torch.manual_seed(seed)
    m = sequential(
        FeedForward,
        [nn.Conv2d(2, 3, 3), nn.ReLU(), nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 5 * 5, 3)],
    )
    m.input_shape, m.num_classes = (2, 9, 9), 3
    return m.double()


def solve_calls(monkeypatch) -> list[int]:
    sizes: list[int] = []
    real = transport.solve

    def counting(p, method, **kw):
        sizes.append(p.size)
        return real(p, method, **kw)

    monkeypatch.setattr(transport, "solve", counting)
    return sizes


@pytest.mark.parametrize("preset", ["nngeo", "tan2026"])
def test_pooled_problems_equal_each_group_solved_alone(monkeypatch, preset):
    m = interior_cnn()
    x = torch.rand((3, 2, 9, 9), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    # exact solves make the comparison exact: the pool's merging and scattering back lose nothing
    monkeypatch.setattr(neural, "POOL_METHODS", ("sinkhorn", "exact"))
    sizes = solve_calls(monkeypatch)
    pooled = neural_curvature(m, x, preset=preset, method="exact", conv_positions=None)
    pooled_calls = len(sizes)
    sizes.clear()
    # a budget of 0 queues one problem per chunk and flushes it at once: every problem solved on its own
    monkeypatch.setattr(neural, "PROBLEM_BUDGET", 0.0)
    alone = neural_curvature(m, x, preset=preset, method="exact", conv_positions=None)
    alone_calls = len(sizes)
    assert alone_calls > 3 * pooled_calls  # the interior groups merged
    assert len(pooled) == len(alone) == 2 * 3 * 9 * 49 + 3 * 4 * 9 * 25 + 3 * 100
    np.testing.assert_array_equal(
        pooled[["src", "dst", "kernel"]].to_numpy(), alone[["src", "dst", "kernel"]].to_numpy()
    )
    np.testing.assert_array_equal(pooled["alive"].to_numpy(), alone["alive"].to_numpy())
    np.testing.assert_allclose(pooled["curvature"].to_numpy(), alone["curvature"].to_numpy(), rtol=0, atol=1e-12)


def test_pooled_sinkhorn_stays_close_to_exact(monkeypatch):
    m = interior_cnn(seed=3)
    x = torch.rand((2, 2, 9, 9), generator=torch.Generator().manual_seed(4), dtype=torch.float64) + 0.05
    exact = neural_curvature(m, x, method="exact", conv_positions=None)
    sizes = solve_calls(monkeypatch)
    approx = neural_curvature(m, x, method="sinkhorn", conv_positions=None, device="cpu")
    n_groups = 7 * 7 * 9 + 5 * 5 * 9 + 25  # conv (output position x tap), dense (one per input position)
    assert len(sizes) < n_groups // 3  # sinkhorn pools by default
    diff = np.abs(exact["curvature"].to_numpy() - approx["curvature"].to_numpy())
    assert diff.max() < 0.05  # normalised by 1 - alpha: twice the graph tolerance
    assert diff.mean() < 0.01
