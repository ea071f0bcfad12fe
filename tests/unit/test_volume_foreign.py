"""The volume element on image planes for networks from elsewhere: an uploaded torchvision resnet18
(the registered ``torchvision`` FeedForward [body, head], 3x32x32), a small custom CNN
(Conv-ReLU-MaxPool-Conv-ReLU-Flatten-Linear) and its ONNX export converted by onnx2torch.

References, written here: the representation in plain torch (resnet18 with ``fc = Identity``, the
CNN without its last Linear, a GAP-CNN's pooled features), its Jacobian with respect to the plane's
coordinates (s, t) from ``torch.autograd.functional.jacobian`` in float64, and
√det(JᵀJ/n) of that n × 2 matrix by NumPy; the full Jacobian's SVD for the pseudo-volume."""

from __future__ import annotations

import copy
import io
import math
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from nngeo_core.analyses import get_analysis
from nngeo_core.geometry import feature_map, image_plane, plane_volume_element
from nngeo_core.geometry import features as geometry_features
from nngeo_core.models import FeedForward
from nngeo_core.models.foreign import feedforward_parts, load_onnx, onnx_file
from nngeo_core.models.mlp import sequential
from nngeo_core.progress import Progress
from nngeo_core.testing.nets import custom_cnn


def _randomise_batch_norms(model: nn.Module) -> None:
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(torch.randn(c, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(c, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(c, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(c, generator=gen) * 0.1)


def _onnx(model: nn.Module, shape: tuple[int, ...]) -> nn.Module:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(1, *shape),), buf, dynamo=False)
    return load_onnx(buf.getvalue()).model


def _plane(xs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Centroid and orthonormal basis (Gram–Schmidt) of the plane through three inputs."""
    X = xs.reshape(3, -1).double()
    c = X.mean(0)
    e1 = (X[0] - c) / (X[0] - c).norm()
    b = X[1] - c - ((X[1] - c) @ e1) * e1
    return c, torch.stack([e1, b / b.norm()])


def _brute_volume(rep, c, E, uv: np.ndarray, shape) -> np.ndarray:
    """√det(JᵀJ/n) with J = ∂rep(c + s·e1 + t·e2)/∂(s, t) at each (u, v): its two columns by
    ``torch.autograd.functional.jvp`` (the double-backward trick) along s and t."""
    out = []
    eye = torch.eye(2, dtype=torch.float64)
    for st in torch.as_tensor(uv, dtype=torch.float64):

        def on_plane(p: torch.Tensor) -> torch.Tensor:
            return rep((c + p @ E).reshape(1, *shape)).reshape(-1)

        J = torch.stack([torch.autograd.functional.jvp(on_plane, st, eye[i])[1] for i in range(2)], 1).numpy()
        out.append(math.sqrt(np.linalg.det(J.T @ J / J.shape[0])))
    return np.array(out)


def _brute_full_jacobian(rep, x: torch.Tensor) -> np.ndarray:
    return (
        torch.autograd.functional.jacobian(lambda v: rep(v.reshape(1, *x.shape)).reshape(-1), x)
        .reshape(-1, x.numel())
        .numpy()
    )


def test_uploaded_resnet18_plane_volume_equals_brute_force_of_the_pooled_features():
    torch.manual_seed(0)
    tv = torchvision.models.resnet18(num_classes=10).eval()
    _randomise_batch_norms(tv)
    whole = copy.deepcopy(tv).double()
    reference = copy.deepcopy(tv).double()
    reference.fc = nn.Identity()  # the pooled features: the input of the final Linear
    model = sequential(FeedForward, feedforward_parts(tv))  # what a torchvision upload is stored as
    shape = (3, 32, 32)
    xs = torch.rand(3, *shape, generator=torch.Generator().manual_seed(2))
    data = SimpleNamespace(input_shape=shape, x_test=xs, y_test=torch.tensor([0, 1, 2]))
    frame = get_analysis("volume")(model, data, {"resolution": 2}, Progress())  # the registry's call
    assert frame.attrs["pseudo_volume"] is False and frame.log_volume.isna().all() and "rank" not in frame
    fmap = feature_map(model, input_shape=shape)
    assert fmap.n_layers == 1 and fmap.width == 512
    with torch.no_grad():
        np.testing.assert_allclose(fmap.fn(xs[0].double()).numpy(), reference(xs[:1].double())[0].numpy(), rtol=1e-10)
    c, E = _plane(xs)
    assert len(frame) == 4 + 3 + 5
    picked = frame.iloc[[0, 3, 4, 5, 6, 9]]  # two grid corners, the three inputs, a point of the line
    expected = _brute_volume(reference, c, E, picked[["u", "v"]].to_numpy(), shape)
    np.testing.assert_allclose(10 ** picked.log_area.to_numpy(), expected, rtol=1e-8)
    # predictions are the upload's own
    with torch.no_grad():
        pred = whole(xs.double()).argmax(1).numpy()
    np.testing.assert_array_equal(frame[frame.anchor >= 0].sort_values("anchor").pred, pred)


def test_custom_cnn_plane_volume_equals_brute_force_and_the_full_jacobian_path():
    model = custom_cnn()
    shape = (3, 16, 16)
    xs = torch.rand(3, *shape, generator=torch.Generator().manual_seed(3))
    full = image_plane(model, *xs, 5, line_points=3)  # cheap full Jacobian: pseudo-volume computed
    fast = image_plane(model, *xs, 5, line_points=3, pseudo_volume=False)
    assert full.attrs["pseudo_volume"] is True and fast.attrs["pseudo_volume"] is False
    np.testing.assert_allclose(fast.log_area, full.log_area, rtol=1e-10, atol=1e-12)  # JVP path = J @ E path
    reference = copy.deepcopy(model[:5]).double()  # up to the last ReLU: the representation
    c, E = _plane(xs)
    grid = full[full.anchor == -1]
    np.testing.assert_allclose(
        10 ** fast.log_area.to_numpy()[: len(grid)],
        _brute_volume(reference, c, E, grid[["u", "v"]].to_numpy(), shape),
        rtol=1e-8,
    )
    # the pseudo-volume at an input: Σ log10 of the nonzero singular values of the full J/√n
    J = _brute_full_jacobian(reference, xs[0].double())
    s = np.linalg.svd(J / math.sqrt(J.shape[0]), compute_uv=False)
    s = s[s > s[0] * max(J.shape) * np.finfo(float).eps]
    assert full[full.anchor == 0].log_volume.item() == pytest.approx(np.log10(s).sum(), abs=1e-9)
    # the library call on its own, with a non-orthonormal basis: J_plane = [J a, J b]
    basis = torch.stack([E[0] + E[1], 2 * E[1]])
    got = plane_volume_element(model, xs[:2], basis)
    want = []
    for x in xs[:2].double():
        Jp = J_plane = _brute_full_jacobian(reference, x) @ basis.numpy().T
        want.append(0.5 * math.log10(np.linalg.det(J_plane.T @ Jp / Jp.shape[0])))
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-9)


def test_onnx_custom_cnn_has_the_torch_original_representation_and_volume():
    model = custom_cnn()
    shape = (3, 16, 16)
    converted = _onnx(model, shape)
    assert converted.meta[onnx_file.REPRESENTATION_ATTR] == "6/Gemm"
    assert onnx_file.REPRESENTATION_ATTR == geometry_features.REPRESENTATION_ATTR
    fmap = feature_map(converted, input_shape=shape)
    assert fmap.n_layers == 2 and fmap.width == 6 * 8 * 8  # the Gemm's input is the flattened last ReLU
    xs = torch.rand(3, *shape, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        penultimate = copy.deepcopy(model[:6]).double()(xs.double())  # the input of the final Linear
        np.testing.assert_allclose(torch.stack([fmap.fn(x) for x in xs.double()]).numpy(), penultimate, rtol=1e-10)
    ours = image_plane(model, *xs, 4, line_points=0, pseudo_volume=False)
    onnx = image_plane(converted, *xs, 4, line_points=0, pseudo_volume=False)
    np.testing.assert_allclose(onnx.log_area, ours.log_area, rtol=1e-6)  # float32 weights in both
    np.testing.assert_array_equal(onnx.pred, ours.pred)


def test_onnx_network_pooling_before_its_gemm_reads_the_pooled_features():
    torch.manual_seed(5)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4)
    ).eval()
    shape = (3, 8, 8)
    converted = _onnx(model, shape)
    fmap = feature_map(converted, input_shape=shape)
    assert fmap.n_layers == 2 and fmap.width == 8  # the ReLU map (8×8×8), then the pooled 8 features
    assert feature_map(converted, 0, input_shape=shape).width == 8 * 8 * 8
    xs = torch.rand(3, *shape, generator=torch.Generator().manual_seed(6)).double()
    with torch.no_grad():
        pooled = copy.deepcopy(model[:4]).double()(xs)
        np.testing.assert_allclose(torch.stack([fmap.fn(x) for x in xs]).numpy(), pooled.numpy(), rtol=1e-10)
    c, E = _plane(xs)
    frame = image_plane(converted, *xs, 3, line_points=0)
    np.testing.assert_allclose(
        10 ** frame.log_area.to_numpy(),
        _brute_volume(copy.deepcopy(model[:4]).double(), c, E, frame[["u", "v"]].to_numpy(), shape),
        rtol=1e-8,
    )
