"""Ricci scalar of metrics against closed forms and an independent finite-difference formula.

References: the unit sphere has R = 2 (Gaussian curvature 1, R = 2K for surfaces) in any chart;
the Poincaré half-plane g = (du² + dv²)/v² has R = −2; for a network, the Brioschi formula gives K
from E, F, G and their derivatives, taken here by central finite differences of g, where g comes
from plain per-point autograd Jacobians (``torch.autograd.functional.jacobian``).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from nngeo_core.errors import NNGeoError
from nngeo_core.geometry import pullback_metric, ricci_scalar, ricci_scalar_of_metric
from nngeo_core.models import build

SQRT3 = math.sqrt(3.0)


def stereographic_sphere(x: torch.Tensor) -> torch.Tensor:
    """The unit sphere in R³ through inverse stereographic projection, scaled by √n (n = 3)."""
    u, v = x[..., 0], x[..., 1]
    r2 = u * u + v * v
    return SQRT3 * torch.stack([2 * u, 2 * v, r2 - 1], -1) / (1 + r2).unsqueeze(-1)


class SphereModel(nn.Module):
    input_shape = (2,)

    def forward(self, x):
        return stereographic_sphere(x)


def test_unit_sphere_has_ricci_scalar_two_in_two_charts():
    pts = torch.randn(40, 2, dtype=torch.float64) * 1.5
    R = ricci_scalar_of_metric(pullback_metric(stereographic_sphere), pts)
    np.testing.assert_allclose(R.numpy(), 2.0, atol=1e-9)

    def spherical(x):  # g = diag(1, sin²θ) in spherical coordinates (θ, φ)
        s = torch.sin(x[0])
        return torch.stack(
            [torch.stack([torch.ones_like(s), torch.zeros_like(s)]), torch.stack([torch.zeros_like(s), s * s])]
        )

    theta_phi = torch.rand(20, 2, dtype=torch.float64) * torch.tensor([2.5, 6.0]) + torch.tensor([0.3, 0.0])
    np.testing.assert_allclose(ricci_scalar_of_metric(spherical, theta_phi).numpy(), 2.0, atol=1e-9)
    # through the model API (the model's output as the feature map)
    model_R = ricci_scalar(SphereModel(), pts[:10], layer="output")
    np.testing.assert_allclose(model_R.numpy(), 2.0, atol=1e-9)
    np.testing.assert_allclose(
        ricci_scalar(SphereModel(), pts[:10], layer="output", convention="paper").numpy(), 6.0, atol=1e-8
    )


def test_hyperbolic_half_plane_has_ricci_scalar_minus_two():
    def poincare(x):
        return torch.eye(2, dtype=x.dtype) / x[1] ** 2

    pts = torch.rand(20, 2, dtype=torch.float64) * 3 + torch.tensor([-1.5, 0.2])
    np.testing.assert_allclose(ricci_scalar_of_metric(poincare, pts).numpy(), -2.0, atol=1e-9)


def _brioschi_R(metric_at, x: np.ndarray, h: float = 1e-3) -> float:
    """R = 2K with K from the Brioschi formula, every derivative by central differences."""

    def efg(u, v):
        g = metric_at(np.array([u, v]))
        return g[0, 0], g[0, 1], g[1, 1]

    u, v = x
    E, F, G = efg(u, v)
    Eu, Fu, Gu = [(a - b) / (2 * h) for a, b in zip(efg(u + h, v), efg(u - h, v), strict=False)]
    Ev, Fv, Gv = [(a - b) / (2 * h) for a, b in zip(efg(u, v + h), efg(u, v - h), strict=False)]
    Evv = (efg(u, v + h)[0] - 2 * E + efg(u, v - h)[0]) / h**2
    Guu = (efg(u + h, v)[2] - 2 * G + efg(u - h, v)[2]) / h**2
    Fuv = (efg(u + h, v + h)[1] - efg(u + h, v - h)[1] - efg(u - h, v + h)[1] + efg(u - h, v - h)[1]) / (4 * h * h)
    A = np.array([[-Evv / 2 + Fuv - Guu / 2, Eu / 2, Fu - Ev / 2], [Fv - Gu / 2, E, F], [Gv / 2, F, G]])
    B = np.array([[0, Ev / 2, Gu / 2], [Ev / 2, E, F], [Gu / 2, F, G]])
    K = (np.linalg.det(A) - np.linalg.det(B)) / (E * G - F * F) ** 2
    return 2 * K


@pytest.mark.parametrize("activation", ["tanh", "erf", "softplus", "gelu"])
def test_network_ricci_scalar_agrees_with_finite_differences_of_the_metric(activation):
    torch.manual_seed(0)
    model = build("mlp", input_shape=(2,), num_classes=2, widths=(7, 6), activation=activation).double()
    assert model.hidden_activation_indices == [2, 4]
    hidden = lambda x: model[:5](x)  # Flatten, Linear, act, Linear, act: the last hidden layer  # noqa: E731  (a one-line local converter reads better than a def)

    def metric_at(x: np.ndarray) -> np.ndarray:
        J = torch.autograd.functional.jacobian(lambda v: hidden(v.unsqueeze(0))[0], torch.tensor(x)).numpy()
        return J.T @ J / J.shape[0]

    pts = torch.randn(6, 2, dtype=torch.float64)
    R = ricci_scalar(model, pts, layer=-1)
    R0 = ricci_scalar(model, pts, layer=0)
    # central differences converge like h² until rounding takes over: at h = 3e-4 both are ~1e-6 of the
    # curvature's scale (R is a difference of larger terms, so the scale is max |R|, not R)
    refs = np.array([_brioschi_R(metric_at, x, h=3e-4) for x in pts.numpy()])
    np.testing.assert_allclose(R.numpy(), refs, rtol=0, atol=2e-5 * (1 + np.abs(refs).max()))
    assert not torch.allclose(R, R0)  # the layer argument matters


def test_jet_fast_path_equals_nested_jacfwd_of_the_metric():
    from nngeo_core.geometry import feature_map

    torch.manual_seed(1)
    model = build("mlp", input_shape=(2,), num_classes=3, widths=(12, 9), activation="sigmoid")
    pts = torch.randn(25, 2, dtype=torch.float64)
    for layer in (0, 1, "output"):
        fmap = feature_map(model, layer)
        assert fmap.jet_modules is not None
        generic = ricci_scalar_of_metric(pullback_metric(fmap.fn), pts)
        np.testing.assert_allclose(ricci_scalar(model, pts, layer=layer).numpy(), generic.numpy(), rtol=1e-9, atol=1e-9)


def test_relu_network_is_flat_where_its_metric_is_regular():
    torch.manual_seed(2)
    model = build("mlp", input_shape=(2,), num_classes=2, widths=(20,), activation="relu")
    R = ricci_scalar(model, torch.randn(50, 2))
    regular = ~torch.isnan(R)
    assert regular.sum() > 25
    assert torch.all(R[regular] == 0)


def test_singular_metric_gives_nan_and_bad_arguments_are_refused():
    lin = nn.Linear(2, 4)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, 2.0]] * 4))  # rank 1: g is singular everywhere
    model = nn.Sequential(lin, nn.Tanh(), nn.Linear(4, 2))
    model.input_shape = (2,)
    assert torch.isnan(ricci_scalar(model, torch.randn(5, 2))).all()
    with pytest.raises(NNGeoError, match="convention"):
        ricci_scalar(model, torch.randn(5, 2), convention="pap")
    image = build("mlp", input_shape=(1, 3, 3), num_classes=2, widths=(4,))
    with pytest.raises(NNGeoError, match="dimension"):
        ricci_scalar(image, torch.rand(2, 1, 3, 3))
