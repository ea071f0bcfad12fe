"""Reference checks on fcn_mnist / digits (resized to 28×28), the pruning papers' small setting.

Default (a few seconds): random pruning at 90% loses clearly more than magnitude pruning at 90%,
IMP with rewinding at 50% (one round, full retraining) stays within 2 points of dense, and T-IMP's
masks contain every layer's maximum spanning tree (checked with scipy, independently of the
topology module) at every level up to 98%.
Slow (``-m slow``, about a minute on 2 cores): IMP with rewinding at 90% (11 rounds of full
retraining) stays within 2 points of dense.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from scipy.sparse.csgraph import minimum_spanning_tree
from torch import nn

from nngeo_core.data import load
from nngeo_core.pruning import PruneData, plain_copy, prune, pruned_model
from nngeo_core.specs import DataSpec, ModelSpec, RunSpec, TrainSpec
from nngeo_core.train import evaluate, fit, train

DIGITS = DataSpec("digits", params={"resize": 28})
SPEC = RunSpec(
    data=DIGITS,
    model=ModelSpec("fcn_mnist"),
    train=TrainSpec(epochs=15, batch_size=64, lr=1e-3, seed=0, snapshots=(0, 1)),
)


@pytest.fixture(scope="module")
def dense():
    ds = load(DIGITS)
    result = train(SPEC, dataset=ds)
    return ds, result


def accuracy(model, ds):
    return evaluate(model, ds.x_test, ds.y_test)[1]


def finetuned_accuracy(model, masks, ds, epochs=1):
    tuned = plain_copy(model)
    fit(tuned, ds, SPEC.train.replace(epochs=epochs, snapshots=()), masks=masks)
    return accuracy(tuned, ds)


def test_random_at_90_loses_clearly_more_than_magnitude(dense):
    ds, result = dense
    acc = {}
    for name in ("magnitude", "random"):
        masks = prune(result.model, name, 0.9, seed=0).masks
        model = pruned_model(result.model, masks)
        acc[name] = (accuracy(model, ds), finetuned_accuracy(model, masks, ds))
    # post-training and after one fine-tuning epoch (equal budgets), magnitude is far ahead
    assert acc["magnitude"][0] - acc["random"][0] >= 0.05, acc
    assert acc["magnitude"][1] - acc["random"][1] >= 0.2, acc


def imp_accuracy(dense, sparsity, rate):
    ds, result = dense
    data = PruneData(dataset=ds, train=SPEC.train, rewind={1: result.snapshots[1]})
    out = prune(result.model, "imp", sparsity, data=data, params={"rate": rate, "rewind_epoch": 1})
    return accuracy(pruned_model(result.model, out.masks, out.state_dict), ds), result.test_accuracy


def test_imp_with_rewinding_at_50_stays_within_2_points(dense):
    acc, dense_acc = imp_accuracy(dense, 0.5, rate=0.5)
    assert acc >= dense_acc - 0.02, (acc, dense_acc)


@pytest.mark.slow
def test_imp_with_rewinding_at_90_stays_within_2_points(dense):
    acc, dense_acc = imp_accuracy(dense, 0.9, rate=0.2)
    assert acc >= dense_acc - 0.02, (acc, dense_acc)


def scipy_mst_mask(w: torch.Tensor) -> torch.Tensor:
    """Maximum spanning tree of |w| (nonzero entries) on the bipartite layer graph, via scipy."""
    a = w.detach().abs().double().numpy()
    out_n, in_n = a.shape
    rows, cols = np.nonzero(a)
    vals = (a.max() + 1.0) - a[rows, cols]  # reverse the order, keep weights > 0
    n = out_n + in_n
    graph = sp.coo_matrix((vals, (rows, out_n + cols)), shape=(n, n)).tocsr()
    tree = minimum_spanning_tree(graph).tocoo()
    mask = torch.zeros(a.shape, dtype=torch.bool)
    r = np.minimum(tree.row, tree.col)
    c = np.maximum(tree.row, tree.col) - out_n
    mask[torch.from_numpy(r), torch.from_numpy(c)] = True
    return mask


def test_timp_masks_contain_every_mst_edge_at_every_level(dense):
    ds, result = dense
    data = PruneData(dataset=ds, train=SPEC.train, rewind={})
    model, masks, previous = result.model, None, 0.0
    for level in (0.5, 0.8, 0.9, 0.95, 0.98):
        # one round per level (rate = the whole step), so the tree of the level's input weights is kept
        rate = 1 - (1 - level) / (1 - previous) + 1e-9
        out = prune(
            model,
            "timp",
            level,
            masks=masks,
            data=data,
            scope="global",
            params={"rate": rate, "rewind_epoch": None, "round_epochs": 2},
        )
        for name, mod in model.named_modules():
            if isinstance(mod, nn.Linear):
                w = mod.weight_orig * mod.weight_mask if hasattr(mod, "weight_orig") else mod.weight
                tree = scipy_mst_mask(w)
                assert int(tree.sum()) == sum(w.shape) - 1  # the layer stays connected
                assert bool(out.masks[name][tree].all()), (level, name)
        model, masks, previous = pruned_model(model, out.masks, out.state_dict), out.masks, level
