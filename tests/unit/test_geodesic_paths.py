"""Geodesic paths in weight space on real (small) networks trained on scikit-learn's digits.

The claims checked are those of Raghavan & Thomson (arXiv 2012.09605): walking to the sparse
hyperplane along the functional geodesic ends at a network that is more accurate than one-shot
magnitude pruning to the same mask size without retraining, and the path between a task-A net
and a task-B net passes networks that do better on both tasks than the straight line does.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from nngeo_core.data import load
from nngeo_core.errors import NNGeoError
from nngeo_core.geometry import forgetting_path, sparsify_path
from nngeo_core.models import build
from nngeo_core.pruning.strategies.geodesic import geodesic_masks, geodesic_prune, magnitude_prune
from nngeo_core.specs import TrainSpec
from nngeo_core.train import fit

SEED = 0


def _train(ds, widths, seed, epochs=30, init=None):
    torch.manual_seed(seed)
    model = build("mlp", input_shape=ds.input_shape, num_classes=ds.num_classes, widths=widths, activation="relu")
    if init is not None:
        model.load_state_dict(init.state_dict())
    # the project's one training loop: Adam 1e-2, batch 64, batches from a permutation seeded by `seed`
    return fit(
        model, ds, TrainSpec(epochs=epochs, batch_size=64, optimizer="adam", lr=1e-2, seed=seed, device="cpu")
    ).model


@torch.no_grad()
def _accuracy(model, x, y):
    return float((model(x).argmax(1) == y).float().mean())


@pytest.fixture(scope="module")
def digits():
    return load("digits")


@pytest.fixture(scope="module")
def small_net(digits):
    return _train(digits, (32,), SEED)


def _path(model, ds, sparsity=0.7, **kw):
    kw.setdefault("steps", 60)
    kw.setdefault("batch_size", 32)
    return sparsify_path(
        model, ds.x_train, ds.y_train, eval_x=ds.x_test, eval_y=ds.y_test, sparsity=sparsity, seed=SEED, **kw
    )


def test_geodesic_path_beats_one_shot_magnitude_pruning(digits, small_net, capsys):
    dense = _accuracy(small_net, digits.x_test, digits.y_test)
    magnitude, _ = magnitude_prune(small_net, 0.7)
    mag_acc = _accuracy(magnitude, digits.x_test, digits.y_test)
    result = _path(small_net, digits)
    pruned, path = result.model, result.table
    geo_acc = _accuracy(pruned, digits.x_test, digits.y_test)
    with capsys.disabled():
        print(
            f"\n[digits 64-32-10 relu, 70% sparsity] dense {dense:.4f}  magnitude {mag_acc:.4f}  geodesic {geo_acc:.4f}"
        )
    assert path.iloc[-1].accuracy_projected == pytest.approx(geo_acc)
    assert geo_acc > mag_acc


def test_sparsify_path_table_masks_and_no_mutation(digits, small_net):
    before = copy.deepcopy(small_net.state_dict())
    result = _path(small_net, digits, steps=8)
    pruned, path, masks = result.model, result.table, result.masks
    assert all(torch.equal(before[k], v) for k, v in small_net.state_dict().items())
    assert list(path.columns[:8]) == [
        "step",
        "path_length",
        "step_length",
        "mu",
        "distance",
        "accuracy",
        "accuracy_projected",
        "n_pruned",
    ]
    assert path.final.tolist() == [False] * (len(path) - 1) + [True]
    assert (np.diff(path.path_length) >= 0).all() and (path.mu.iloc[1:-1] > 0).all()
    assert path.distance.iloc[-2] < path.distance.iloc[0] and path.distance.iloc[-1] == 0
    n_weights = sum(m.numel() for m in masks.values())
    assert sum(int((~m).sum()) for m in masks.values()) == round(0.7 * n_weights) == path.n_pruned.iloc[-1]
    state = pruned.state_dict()
    for name, keep in masks.items():
        assert torch.all(state[f"{name}.weight"][~keep] == 0)
    assert next(pruned.parameters()).dtype == torch.float32 and type(pruned) is type(small_net)
    # the start of the path is the dense net, and its projection is magnitude pruning
    mag_acc = _accuracy(magnitude_prune(small_net, 0.7)[0], digits.x_test, digits.y_test)
    assert path.accuracy.iloc[0] == pytest.approx(_accuracy(small_net, digits.x_test, digits.y_test))
    assert path.accuracy_projected.iloc[0] == pytest.approx(mag_acc)


def test_pruning_strategy_outputs_and_respects_existing_masks(digits, small_net):
    first = "1"  # the mlp's first Linear (children: Flatten, Linear, ReLU, Linear)
    existing = {first: torch.ones(32, 64, dtype=torch.bool)}
    existing[first][:, :10] = False  # inputs 0..9 already pruned
    state, masks = geodesic_prune(
        small_net, digits.x_train, digits.y_train, 0.5, masks=existing, steps=5, batch_size=16
    )
    assert set(masks) == {"1", "3"}
    assert not masks[first][:, :10].any()
    total = sum(m.numel() for m in masks.values())
    assert sum(int(m.sum()) for m in masks.values()) == total - round(0.5 * total)
    assert torch.all(state["1.weight"][~masks["1"]] == 0)
    only = geodesic_masks(small_net, existing, digits, 0.5, steps=5, batch_size=16)
    assert all(torch.equal(only[k], masks[k]) for k in masks)


def test_gradient_variant_and_recomputed_masks_run(digits, small_net):
    grad_path = _path(small_net, digits, steps=5, method="gradient").table
    assert grad_path.mu.isna().all() and (grad_path.step_length.iloc[1:-1] > 0).all()
    rec = _path(small_net, digits, steps=5, mask="recompute", fisher=True).table
    assert rec.n_pruned.iloc[-1] == rec.n_pruned.iloc[0]


def test_forgetting_path_beats_the_straight_line(digits):
    task_b = load("permuted:digits:1")
    model_a = _train(digits, (32,), SEED, epochs=20)
    model_b = _train(task_b, (32,), SEED, epochs=20, init=model_a)  # trained on B after A
    result = forgetting_path(model_a, model_b, digits, task_b, steps=40, batch_size=32, seed=SEED)
    best, path = result.model, result.table
    assert path.accuracy_a.iloc[0] == pytest.approx(_accuracy(model_a, digits.x_test, digits.y_test))
    row = path[path.best].iloc[0]
    assert row.accuracy_mean == path.accuracy_mean.max()
    assert _accuracy(best, digits.x_test, digits.y_test) == pytest.approx(row.accuracy_a)
    assert _accuracy(best, task_b.x_test, task_b.y_test) == pytest.approx(row.accuracy_b)
    wa = nn.utils.parameters_to_vector(model_a.parameters())
    wb = nn.utils.parameters_to_vector(model_b.parameters())
    line = []
    for t in np.linspace(0, 1, 11):
        m = copy.deepcopy(model_a)
        nn.utils.vector_to_parameters((1 - t) * wa + t * wb, m.parameters())
        line.append(0.5 * (_accuracy(m, digits.x_test, digits.y_test) + _accuracy(m, task_b.x_test, task_b.y_test)))
    assert row.accuracy_mean > max(line)


def test_geodesic_analysis_is_registered(digits, small_net):
    from nngeo_core.analyses import analysis_info, get_analysis
    from nngeo_core.progress import Progress

    frame = get_analysis("geodesic")(small_net, digits, {"steps": 3, "batch_size": 8}, Progress())
    assert analysis_info()["geodesic"]["needs_data"] and isinstance(frame, pd.DataFrame)
    assert frame.step.iloc[-1] == 3 and frame.final.iloc[-1]
    with pytest.raises(NNGeoError, match="unknown parameter"):
        get_analysis("geodesic")(small_net, digits, {"sparsty": 0.5}, Progress())


def test_cancel_stops_the_path(digits, small_net):
    from nngeo_core.progress import Cancelled, Progress

    calls = {"n": 0}

    def cancelled():
        calls["n"] += 1
        return calls["n"] > 2

    with pytest.raises(Cancelled):
        _path(small_net, digits, steps=50, progress=Progress(is_cancelled=cancelled))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"sparsity": 1.2}, "sparsity"),
        ({"sparsity": 0.0}, "sparsity"),
        ({"mask": "sometimes"}, "mask"),
        ({"method": "newton"}, "method"),
        ({"steps": 0}, "steps"),
        ({"beta": -1.0}, "beta"),
        ({"masks": {"1": torch.zeros(32, 64, dtype=torch.bool)}, "sparsity": 0.3}, "already prune"),
        ({"masks": {"9": torch.zeros(2, 2, dtype=torch.bool)}}, "unknown layer"),
    ],
)
def test_bad_settings_give_one_line_errors(digits, small_net, kwargs, match):
    with pytest.raises(NNGeoError, match=match) as err:
        _path(small_net, digits, **{"steps": 2, **kwargs})
    assert "\n" not in str(err.value)


def test_bad_models_and_tasks_are_refused(digits, small_net):
    broken = copy.deepcopy(small_net)
    with torch.no_grad():
        broken[1].weight[0, 0] = math.inf
    with pytest.raises(NNGeoError, match="NaN or infinite"):
        _path(broken, digits, steps=2)
    other = build("mlp", input_shape=digits.input_shape, num_classes=10, widths=(16,))
    with pytest.raises(NNGeoError, match="same architecture"):
        forgetting_path(small_net, other, digits, digits, steps=2)
    with pytest.raises(NNGeoError, match="needs model_b"):
        forgetting_path(small_net, None, digits, digits, steps=2)
    with pytest.raises(NNGeoError, match="inputs of shape"):
        sparsify_path(small_net, torch.zeros(4, 5), torch.zeros(4), steps=2)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_geodesic_beats_magnitude_on_64_64_10(digits, seed, capsys):
    """The issue's setting: a 64-64-10 MLP, 70% sparsity, 100 steps of batch 64."""
    model = _train(digits, (64,), seed)
    mag_acc = _accuracy(magnitude_prune(model, 0.7)[0], digits.x_test, digits.y_test)
    pruned = sparsify_path(
        model,
        digits.x_train,
        digits.y_train,
        eval_x=digits.x_test,
        eval_y=digits.y_test,
        sparsity=0.7,
        steps=100,
        batch_size=64,
        seed=seed,
    ).model
    geo_acc = _accuracy(pruned, digits.x_test, digits.y_test)
    with capsys.disabled():
        print(f"\n[digits 64-64-10 relu, 70%, seed {seed}] magnitude {mag_acc:.4f}  geodesic {geo_acc:.4f}")
    assert geo_acc > mag_acc
