"""Volume element of the pullback metric g = JᵀJ/n against closed forms.

References: for a linear feature map g = WᵀW/n, so √det g = √det(WᵀW)/n for d = 2; for one hidden
layer J = diag(σ'(Wx + b)) W and det(JᵀJ) = Σ over d-subsets S of rows det(J_S)² (Cauchy–Binet),
computed here in NumPy from the weights alone.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from nngeo_core.errors import NNGeoError
from nngeo_core.geometry import (
    feature_map,
    grid_heatmap,
    heatmaps_over_training,
    image_line,
    image_plane,
    log_volume_of_features,
    plane_frame,
    volume_element,
)
from nngeo_core.models import build


class Wrapped(nn.Module):
    """Not a Sequential: forces the generic torch.func path instead of the jet fast path."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner
        self.input_shape = inner.input_shape

    def forward(self, x):
        return self.inner(x)


def _seq(*modules, input_shape=(2,)):
    m = nn.Sequential(*modules)
    m.input_shape = input_shape
    return m


def _cauchy_binet_log_volume(W: np.ndarray, b: np.ndarray, x: np.ndarray, dsig) -> np.ndarray:
    n, d = W.shape
    out = []
    for xi in x:
        J = dsig(W @ xi + b)[:, None] * W
        det = sum(np.linalg.det(J[list(S)]) ** 2 for S in itertools.combinations(range(n), d))
        out.append(0.5 * math.log10(det) - 0.5 * d * math.log10(n))
    return np.array(out)


def test_linear_feature_map_has_constant_closed_form_volume():
    torch.manual_seed(0)
    n = 7
    lin = nn.Linear(2, n)
    W = lin.weight.detach().double().numpy()
    expected = math.log10(math.sqrt(np.linalg.det(W.T @ W)) / n)  # √det(WᵀW/n) = √det(WᵀW)/n, d = 2
    pts = torch.randn(50, 2) * 3
    # the model's output as Φ, and a hidden layer whose activation is the identity (LeakyReLU slope 1)
    as_output = volume_element(_seq(lin), pts, layer="output")
    hidden = _seq(lin, nn.LeakyReLU(1.0), nn.Linear(n, 3))
    as_hidden = volume_element(hidden, pts, layer=0)
    generic = volume_element(Wrapped(hidden), pts, layer=0)
    for got in (as_output, as_hidden, generic):
        np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "act,dsig",
    [
        (nn.Tanh, lambda z: 1 - np.tanh(z) ** 2),
        (nn.Sigmoid, lambda z: np.exp(-z) / (1 + np.exp(-z)) ** 2),
        (nn.Softplus, lambda z: 1 / (1 + np.exp(-z))),
    ],
)
@pytest.mark.parametrize("d", [2, 3])
def test_one_hidden_layer_matches_cauchy_binet(act, dsig, d):
    torch.manual_seed(1)
    n = 9
    model = _seq(nn.Linear(d, n), act(), nn.Linear(n, 2), input_shape=(d,))
    W = model[0].weight.detach().double().numpy()
    b = model[0].bias.detach().double().numpy()
    x = torch.randn(12, d, dtype=torch.float64)
    expected = _cauchy_binet_log_volume(W, b, x.numpy(), dsig)
    np.testing.assert_allclose(volume_element(model, x).numpy(), expected, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(volume_element(Wrapped(model), x).numpy(), expected, rtol=1e-10, atol=1e-10)


def test_zoo_mlp_hidden_layers_match_the_zoo_definition_and_both_paths_agree():
    torch.manual_seed(2)
    model = build("mlp", input_shape=(2,), num_classes=3, widths=(6, 5, 4), activation="gelu")
    x = torch.randn(30, 2, dtype=torch.float64)
    hidden = model.double().hidden_outputs(x)
    assert feature_map(model, -1).n_layers == len(hidden) == 3
    for k in range(3):
        fmap = feature_map(model, k)
        assert fmap.width == hidden[k].shape[1]
        with torch.no_grad():
            np.testing.assert_allclose(torch.stack([fmap.fn(xi) for xi in x]).numpy(), hidden[k].numpy(), atol=1e-12)
        assert fmap.jet_modules is not None
        fast = volume_element(model, x, layer=k)
        reference = log_volume_of_features(fmap.fn, x)  # vmap(jacfwd) + the generic formula
        np.testing.assert_allclose(fast.numpy(), reference.numpy(), atol=1e-10)
    np.testing.assert_array_equal(volume_element(model, x, layer=-1).numpy(), volume_element(model, x, layer=2).numpy())


def test_relu_region_with_fewer_than_d_active_units_has_zero_volume():
    lin = nn.Linear(2, 3)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
        lin.bias.zero_()
    model = _seq(lin, nn.ReLU(), nn.Linear(3, 2))
    # x = (-1, -1): no unit active; (1, -3): only unit 0 active (rank 1); (1, 1): all active
    vol = volume_element(model, torch.tensor([[-1.0, -1.0], [1.0, -3.0], [1.0, 1.0]]))
    assert vol[0] == -math.inf and vol[1] == -math.inf
    W = lin.weight.detach().double().numpy()
    assert vol[2].item() == pytest.approx(math.log10(math.sqrt(np.linalg.det(W.T @ W)) / 3), abs=1e-12)


def test_grid_heatmap_columns_grid_and_decision_margin():
    torch.manual_seed(3)
    model = build("mlp", input_shape=(2,), num_classes=2, widths=(8,), activation="tanh")
    frame = grid_heatmap(model, (-2, 2, -1, 1), 7)
    assert list(frame.columns) == ["x", "y", "log_volume", "ricci", "pred", "margin", "p_max", "entropy"]
    assert len(frame) == 49
    assert frame.x.min() == -2 and frame.x.max() == 2 and frame.y.min() == -1 and frame.y.max() == 1
    with torch.no_grad():
        p = torch.softmax(model.double()(torch.tensor(frame[["x", "y"]].to_numpy())), 1).numpy()
    np.testing.assert_allclose(frame.margin, p[:, 1] - p[:, 0], atol=1e-12)
    np.testing.assert_array_equal(frame.pred, p.argmax(1))
    assert ((frame.margin > 0) == (frame.pred == 1)).all()  # the zero contour separates the classes
    np.testing.assert_allclose(frame.entropy, -(p * np.log(p)).sum(1), atol=1e-12)
    np.testing.assert_allclose(frame.log_volume, volume_element(model, frame[["x", "y"]].to_numpy()).numpy())


def test_heatmaps_over_training_stacks_epochs():
    torch.manual_seed(4)
    snaps = {e: build("mlp", input_shape=(2,), num_classes=2, widths=(5,), activation="tanh") for e in (0, 3)}
    frame = heatmaps_over_training(snaps, ((-1, 1), (-1, 1)), 4, ricci=False)
    assert sorted(frame.epoch.unique()) == [0, 3] and len(frame) == 32
    one = grid_heatmap(snaps[3], (-1, 1, -1, 1), 4, ricci=False)
    np.testing.assert_allclose(frame[frame.epoch == 3].log_volume.to_numpy(), one.log_volume.to_numpy())


def test_image_plane_puts_the_inputs_on_a_triangle_and_uses_the_pseudo_volume():
    torch.manual_seed(5)
    model = build("mlp", input_shape=(1, 4, 4), num_classes=3, widths=(5,), activation="tanh")
    xs = torch.rand(3, 1, 4, 4)
    frame = image_plane(model, *xs, 5)
    anchors = frame[frame.anchor >= 0].sort_values("anchor")
    assert len(frame) == 25 + 3 + 11 and list(anchors.anchor) == [0, 1, 2]  # grid, inputs, the line 1 → 2
    uv = anchors[["u", "v"]].to_numpy()
    np.testing.assert_allclose(uv.mean(0), 0, atol=1e-12)  # origin at the centroid
    flat = xs.reshape(3, -1).double().numpy()
    for i, j in itertools.combinations(range(3), 2):  # the plane is isometric to input space
        assert np.linalg.norm(uv[i] - uv[j]) == pytest.approx(np.linalg.norm(flat[i] - flat[j]), rel=1e-10)
    # pseudo-volume = Σ log10 of the nonzero singular values of J/√n, J from plain autograd
    fmap = feature_map(model)
    for _, row in anchors.iterrows():
        x = torch.tensor(flat[int(row.anchor)])
        J = torch.autograd.functional.jacobian(lambda v: fmap.fn(v.reshape(1, 4, 4)), x)
        s = np.linalg.svd(J.numpy() / math.sqrt(5), compute_uv=False)
        assert row["rank"] == 5
        assert row.log_volume == pytest.approx(np.log10(s).sum(), abs=1e-10)


def test_image_line_runs_from_x1_to_x2():
    torch.manual_seed(6)
    model = build("mlp", input_shape=(1, 4, 4), num_classes=3, widths=(6,), activation="relu")
    x1, x2 = torch.rand(2, 1, 4, 4)
    frame = image_line(model, x1, x2, 9)
    assert len(frame) == 9 and frame.t.iloc[0] == 0 and frame.t.iloc[-1] == 1
    assert frame.distance.iloc[-1] == pytest.approx(float((x1 - x2).norm()), rel=1e-6)
    with torch.no_grad():
        pred2 = model(x2.unsqueeze(0)).argmax(1).item()
    assert frame.pred.iloc[-1] == pred2


def _pseudo_log_volume(J: np.ndarray, n: int) -> float:
    """Σ log10 of the nonzero singular values of J/√n, NumPy's rank rule (the definition, from scratch)."""
    s = np.linalg.svd(J / math.sqrt(n), compute_uv=False)
    return float(np.log10(s[s > s[0] * max(J.shape) * np.finfo(float).eps]).sum())


def test_line_of_a_linear_map_has_the_constant_closed_form_pseudo_volume():
    # Φ(x) = Wx: J = W everywhere, so the pseudo-volume is ½ log10 det(WWᵀ/n) all along the line
    torch.manual_seed(10)
    n = 5
    model = _seq(nn.Flatten(), nn.Linear(16, n), input_shape=(1, 4, 4))
    W = model[1].weight.detach().double().numpy()
    expected = 0.5 * math.log10(np.linalg.det(W @ W.T / n))
    xs = torch.rand(3, 1, 4, 4)
    plane = image_plane(model, *xs, 3, layer="output", line_points=7)
    on_line = plane[plane.anchor == -2]
    assert len(on_line) == 7 and list(on_line.t) == pytest.approx(np.linspace(0, 1, 7))
    np.testing.assert_allclose(on_line.log_volume, expected, rtol=0, atol=1e-12)
    assert (on_line["rank"] == n).all()
    line = image_line(model, xs[0], xs[1], 7, layer="output")
    np.testing.assert_allclose(line.log_volume, expected, rtol=0, atol=1e-12)


def test_line_is_computed_at_points_of_the_segment():
    # one ReLU layer: J(x) = the rows of W whose units are active at x, recomputed here at each x(t)
    torch.manual_seed(11)
    n = 6
    model = _seq(nn.Flatten(), nn.Linear(16, n), nn.ReLU(), nn.Linear(n, 3), input_shape=(1, 4, 4))
    W = model[1].weight.detach().double().numpy()
    b = model[1].bias.detach().double().numpy()
    xs = torch.randn(3, 1, 4, 4)
    plane = image_plane(model, *xs, 3, line_points=21)
    on_line = plane[plane.anchor == -2].sort_values("t")
    x1, x2 = (x.reshape(-1).double().numpy() for x in xs[:2])
    active_counts = set()
    for _, row in on_line.iterrows():
        x = (1 - row.t) * x1 + row.t * x2
        active = W @ x + b > 0
        active_counts.add(int(active.sum()))
        J = W[active]
        assert row["rank"] == active.sum()
        if not active.any():
            assert row.log_volume == -math.inf
            continue
        assert row.log_volume == pytest.approx(0.5 * math.log10(np.linalg.det(J @ J.T / n)), abs=1e-10)
        assert row.log_volume == pytest.approx(_pseudo_log_volume(J, n), abs=1e-10)
    assert len(active_counts) > 1  # the line crosses ReLU regions: interpolating the grid would blur them
    # its plane coordinates run from input 1 to input 2; the rows equal image_line's
    ends = plane[plane.anchor.isin([0, 1])].sort_values("anchor")[["u", "v"]].to_numpy()
    np.testing.assert_allclose(
        on_line[["u", "v"]].to_numpy(), ends[0] + on_line.t.to_numpy()[:, None] * (ends[1] - ends[0]), atol=1e-12
    )
    line = image_line(model, xs[0], xs[1], 21)
    np.testing.assert_allclose(line.log_volume, on_line.log_volume, rtol=1e-12)
    np.testing.assert_array_equal(line.pred, on_line.pred)


def test_image_plane_pseudo_volume_equals_the_svd_of_the_full_jacobian():
    # fcn_mnist (784-100×5): J is 100 × 784 and rank-deficient (dead ReLU units); the values
    # equal Σ log10 s of torch's SVD of J as it is (the former computation) and NumPy's
    from nngeo_core.geometry.pullback import feature_jacobians

    torch.manual_seed(12)
    model = build("fcn_mnist", input_shape=(1, 28, 28), num_classes=10)
    xs = torch.rand(3, 1, 28, 28)
    plane = image_plane(model, *xs, 4, line_points=5)
    fmap = feature_map(model)
    c, E, _ = plane_frame(*xs)
    pts = torch.tensor(plane[["u", "v"]].to_numpy()) @ E + c
    pts[plane.anchor.to_numpy() >= 0] = xs.reshape(3, -1).double()
    J = torch.cat([j for _, j in feature_jacobians(fmap, pts.reshape(-1, 1, 28, 28))])
    s = torch.linalg.svdvals(J) / 10
    keep = s > s[:, :1] * 784 * torch.finfo(torch.float64).eps
    old = torch.where(keep, torch.log10(torch.where(keep, s, 1.0)), 0.0).sum(-1).numpy()
    np.testing.assert_array_equal(plane["rank"], keep.sum(-1).numpy())
    assert (plane["rank"] < 100).any()
    np.testing.assert_allclose(plane.log_volume, old, rtol=1e-8, atol=0)
    for i in (0, len(plane) - 1):
        assert plane.log_volume.iloc[i] == pytest.approx(_pseudo_log_volume(J[i].numpy(), 100), rel=1e-8)


def test_does_not_change_the_callers_model():
    torch.manual_seed(7)
    model = build("mlp", input_shape=(2,), num_classes=2, widths=(4,), activation="tanh")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    grid_heatmap(model, (-1, 1, -1, 1), 3)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert next(model.parameters()).dtype == torch.float32 and not model._forward_hooks


@pytest.mark.parametrize(
    "call",
    [
        lambda m: volume_element(m, torch.zeros(3, 5)),  # wrong input size
        lambda m: volume_element(m, torch.full((2, 2), math.nan)),  # NaN points
        lambda m: volume_element(m, torch.zeros(2, 2), layer=5),  # no such layer
        lambda m: volume_element(m, torch.zeros(2, 2), layer="first"),
        lambda m: grid_heatmap(m, (1, -1, 0, 1), 10),  # xmin > xmax
        lambda m: grid_heatmap(m, (0, 1, 0), 10),
        lambda m: grid_heatmap(m, (0, 1, 0, 1), 1),  # resolution too small
    ],
)
def test_bad_input_gives_one_line_error(call):
    model = build("mlp", input_shape=(2,), num_classes=2, widths=(4,), activation="tanh")
    with pytest.raises(NNGeoError) as err:
        call(model)
    assert "\n" not in str(err.value)


def test_nan_weights_and_degenerate_planes_are_refused():
    model = build("mlp", input_shape=(1, 2, 2), num_classes=2, widths=(3,), activation="tanh")
    # float32 values in float64: 2·x1 − x0 and the centroids below are exact, whatever the draw
    x = torch.rand(3, 1, 2, 2, generator=torch.Generator().manual_seed(0)).double()
    with pytest.raises(NNGeoError, match="on one line"):
        image_plane(model, x[0], x[1], 2 * x[1] - x[0], 3)
    with pytest.raises(NNGeoError, match="distinct"):
        image_plane(model, x[0], x[0], x[0], 3)
    with torch.no_grad():
        model[1].weight[0, 0] = math.nan
    with pytest.raises(NNGeoError, match="NaN"):
        image_line(model, x[0], x[1], 3)
    with pytest.raises(NNGeoError, match="2 inputs"):
        grid_heatmap(build("mlp", input_shape=(3,), num_classes=2, widths=(3,)), (0, 1, 0, 1), 3)


def test_volume_analysis_is_registered_and_uses_dataset_bounds():
    from nngeo_core.analyses import analysis_info, get_analysis
    from nngeo_core.data import load
    from nngeo_core.progress import Progress

    fn = get_analysis("volume")
    assert analysis_info()["volume"]["needs_data"] is True
    ds = load("moons")
    model = build("mlp", input_shape=(2,), num_classes=2, widths=(5,), activation="tanh")
    frame = fn(model, ds, {"resolution": 5}, Progress())
    xmin, xmax, ymin, ymax = ds.meta["bounds"]
    assert isinstance(frame, pd.DataFrame) and len(frame) == 25
    assert (frame.x.min(), frame.x.max(), frame.y.min(), frame.y.max()) == pytest.approx((xmin, xmax, ymin, ymax))
    with pytest.raises(NNGeoError, match="unknown parameter"):
        fn(model, ds, {"resolutoin": 5}, Progress())
    digits = load("digits")
    img = build("mlp", input_shape=digits.input_shape, num_classes=10, widths=(8,), activation="tanh")
    plane = fn(img, digits, {"resolution": 3}, Progress())
    anchors = plane[plane.anchor >= 0]
    assert len(plane) == 9 + 3 + 7 and anchors.label.nunique() == 3 and plane.log_volume.notna().all()


def test_grid_computation_can_be_cancelled():
    from nngeo_core.progress import Cancelled, Progress

    model = build("mlp", input_shape=(2,), num_classes=2, widths=(4,), activation="tanh")
    with pytest.raises(Cancelled):
        grid_heatmap(model, (-1, 1, -1, 1), 5, progress=Progress(is_cancelled=lambda: True))


def test_plane_area_by_forward_mode_equals_the_full_jacobian_on_zoo_models():
    # log_area from J_plane = [J e1, J e2] (two jvps per point) equals J @ Eᵀ of the full J
    # (the former computation), on an MLP and a conv zoo model with its pseudo-volume forced off
    from nngeo_core.geometry import plane_volume_element

    torch.manual_seed(13)
    for name, shape in (("fcn_mnist", (1, 28, 28)), ("lenet5", (1, 28, 28))):
        model = build(name, input_shape=shape, num_classes=10)
        xs = torch.rand(3, *shape)
        full = image_plane(model, *xs, 3, line_points=3)
        fast = image_plane(model, *xs, 3, line_points=3, pseudo_volume=False)
        assert full.attrs["pseudo_volume"] and not fast.attrs["pseudo_volume"]
        assert fast.log_volume.isna().all() and "rank" not in fast and "rank" in full
        np.testing.assert_allclose(fast.log_area, full.log_area, rtol=1e-10, atol=0)
        _, E, _ = plane_frame(*xs)
        direct = plane_volume_element(model, xs, E)
        np.testing.assert_allclose(direct.numpy(), full[full.anchor >= 0].sort_values("anchor").log_area, rtol=1e-10)
