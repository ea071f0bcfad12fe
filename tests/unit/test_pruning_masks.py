"""Masks as torch pruning parametrisations, layer selection, sparsity checks and the shared
selection routine (checked against plain sorting references)."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from nngeo_core import checkpoint
from nngeo_core.errors import NNGeoError
from nngeo_core.models import build
from nngeo_core.pruning import (
    apply_masks,
    export_state_dict,
    fold_masks,
    pruned_model,
    read_masks,
    select_layers,
    select_masks,
)
from nngeo_core.pruning.masks import check_sparsity, sparsity


def mlp(seed=0):
    torch.manual_seed(seed)
    return build("mlp", input_shape=(4,), num_classes=3, widths=(8, 6))


def random_masks(model, p=0.5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {
        n: torch.rand(get.weight.shape, generator=g) > p
        for n, get in model.named_modules()
        if isinstance(get, nn.Linear)
    }


def test_select_layers_default_exclude_last_and_unknown():
    m = mlp()
    assert [i.name for i in select_layers(m)] == ["1", "3", "5"]
    assert [i.name for i in select_layers(m, exclude_last=True)] == ["1", "3"]
    assert [i.name for i in select_layers(m, ["3", "5"], exclude_last=True)] == ["3"]
    with pytest.raises(NNGeoError, match="no prunable layer named 'x'"):
        select_layers(m, ["x"])
    with pytest.raises(NNGeoError, match="no layers left"):
        select_layers(m, ["5"], exclude_last=True)


def test_apply_masks_is_torch_pruning_and_forward_matches_manual_masking():
    m = mlp()
    masks = random_masks(m)
    ref = mlp()
    with torch.no_grad():
        for n, mask in masks.items():
            dict(ref.named_modules())[n].weight.mul_(mask)
    apply_masks(m, masks)
    modules = dict(m.named_modules())
    for n, mask in masks.items():
        assert torch_prune.is_pruned(modules[n])
        assert torch.equal(modules[n].weight_mask.bool(), mask)
        assert "weight_orig" in dict(modules[n].named_parameters())
    x = torch.randn(5, 4)
    assert torch.allclose(m(x), ref(x))
    assert all(torch.equal(read_masks(m)[n], masks[n]) for n in masks)


def test_reapplying_replaces_the_mask_instead_of_stacking():
    m = mlp()
    first, second = random_masks(m, seed=1), random_masks(m, seed=2)
    apply_masks(m, first)
    apply_masks(m, second)
    mod = dict(m.named_modules())["1"]
    hooks = list(mod._forward_pre_hooks.values())
    assert len(hooks) == 1 and not isinstance(hooks[0], torch_prune.PruningContainer)
    assert torch.equal(read_masks(m)["1"], second["1"])


def test_exported_pruned_model_loads_in_plain_pytorch():
    m = mlp()
    masks = random_masks(m)
    pruned = pruned_model(m, masks)
    x = torch.randn(7, 4)
    want = pruned(x)
    # 1) the parametrised state_dict, through torch.save, into a fresh model with prune.identity
    buf = io.BytesIO()
    torch.save(pruned.state_dict(), buf)
    fresh = mlp(seed=5)
    for n in masks:
        torch_prune.identity(dict(fresh.named_modules())[n], "weight")
    fresh.load_state_dict(torch.load(io.BytesIO(buf.getvalue()), weights_only=True))
    assert torch.allclose(fresh(x), want)
    # 2) the exported plain state_dict into an unpruned model
    plain = mlp(seed=6)
    plain.load_state_dict(export_state_dict(pruned))
    assert torch.allclose(plain(x), want)
    assert all(bool((plain.get_submodule(n).weight[~masks[n]] == 0).all()) for n in masks)
    assert not any(k.endswith(("_orig", "_mask")) for k in export_state_dict(pruned))


def test_checkpoint_round_trip_keeps_masks_and_effective_weights():
    m = mlp()
    masks = random_masks(m)
    pruned = pruned_model(m, masks)
    ckpt = checkpoint.load(checkpoint.to_bytes(pruned, masks=masks))
    x = torch.randn(3, 4)
    assert torch.allclose(ckpt.model(x), pruned(x))
    assert all(torch.equal(ckpt.masks[n], masks[n]) for n in masks)


def test_fold_masks_and_pruned_model_do_not_touch_the_source():
    m = mlp()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    pm = pruned_model(m, random_masks(m))
    assert set(m.state_dict()) == set(before)
    fold_masks(pm)
    assert not any(hasattr(mod, "weight_orig") for mod in pm.modules())
    assert all(torch.equal(before[k], m.state_dict()[k]) for k in before)


def test_bad_masks_are_refused():
    m = mlp()
    with pytest.raises(NNGeoError, match="shape"):
        apply_masks(m, {"1": torch.ones(3, 3, dtype=torch.bool)})
    with pytest.raises(NNGeoError, match="other than 0 and 1"):
        apply_masks(m, {"1": torch.full((8, 4), 0.5)})
    with pytest.raises(NNGeoError, match="no layer named"):
        apply_masks(m, {"nope": torch.ones(8, 4, dtype=torch.bool)})


def test_check_sparsity_tolerates_one_weight():
    masks = {"a": torch.tensor([True] * 6 + [False] * 4), "b": torch.tensor([True] * 5 + [False] * 5)}
    check_sparsity(masks, 0.45, "global")  # 9 of 20 pruned, 9 requested
    check_sparsity(masks, 0.4, "layer")  # a: 4 of 10 exact, b: 5 vs 4 within one
    with pytest.raises(NNGeoError, match="requested"):
        check_sparsity(masks, 0.2, "layer")
    with pytest.raises(NNGeoError, match="requested"):
        check_sparsity(masks, 0.8, "global")
    assert sparsity(masks) == pytest.approx(9 / 20)


# -- select_masks against sorting references -------------------------------------------------------
def scores_and_full(seed=0):
    g = torch.Generator().manual_seed(seed)
    scores = {"a": torch.randn(5, 7, generator=g), "b": torch.randn(4, 3, 2, 2, generator=g)}
    full = {n: torch.ones_like(s, dtype=torch.bool) for n, s in scores.items()}
    return scores, full


@pytest.mark.parametrize("s", [0.0, 0.3, 0.5, 0.77, 0.99])
def test_layer_scope_prunes_the_k_lowest_of_each_layer(s):
    scores, full = scores_and_full()
    masks = select_masks(scores, full, s, "layer")
    for n, sc in scores.items():
        flat = sc.flatten().numpy()
        k = math.floor(s * flat.size + 0.5)
        want = np.ones(flat.size, dtype=bool)
        want[np.argsort(flat, kind="stable")[:k]] = False
        assert np.array_equal(masks[n].flatten().numpy(), want)


@pytest.mark.parametrize("s", [0.2, 0.6, 0.9])
def test_global_scope_prunes_below_one_threshold(s):
    scores, full = scores_and_full(1)
    masks = select_masks(scores, full, s, "global")
    allv = np.concatenate([v.flatten().numpy() for v in scores.values()])
    pruned = np.concatenate([scores[n][~masks[n]].numpy() for n in scores])
    kept = np.concatenate([scores[n][masks[n]].numpy() for n in scores])
    assert len(pruned) == math.floor(s * allv.size + 0.5)
    assert pruned.max() <= kept.min()


def test_ties_break_by_position():
    scores = {"a": torch.zeros(10)}
    masks = select_masks(scores, {"a": torch.ones(10, dtype=torch.bool)}, 0.3, "layer")
    assert masks["a"].tolist() == [False] * 3 + [True] * 7


def test_already_pruned_stay_pruned_and_keep_is_honoured():
    scores, full = scores_and_full(2)
    first = select_masks(scores, full, 0.4, "global")
    flipped = {n: -s for n, s in scores.items()}  # would now prefer to prune the kept ones
    second = select_masks(flipped, first, 0.6, "global")
    for n in scores:
        assert not bool((second[n] & ~first[n]).any())
    with pytest.raises(NNGeoError, match="never revived"):
        select_masks(scores, first, 0.2, "global")
    keep = {n: s > s.median() for n, s in scores.items()}
    third = select_masks(scores, {n: torch.ones_like(k) for n, k in keep.items()}, 0.4, "layer", keep=keep)
    assert all(bool(third[n][keep[n]].all()) for n in keep)
    with pytest.raises(NNGeoError, match="must keep"):
        select_masks(scores, full, 0.9, "layer", keep=keep)


@pytest.mark.parametrize("scope", ["layer", "global"])
@pytest.mark.parametrize("s", [0.25, 0.5, 0.83])
def test_row_groups_balance_rows_and_hit_the_total(scope, s):
    scores, full = scores_and_full(3)
    masks = select_masks(scores, full, s, scope, group="row")
    units = [list(scores)] if scope == "global" else [[n] for n in scores]
    for unit in units:
        total = sum(scores[n].numel() for n in unit)
        assert sum(int((~masks[n]).sum()) for n in unit) == math.floor(s * total + 0.5)
    for n, sc in scores.items():
        rows = sc.reshape(sc.shape[0], -1)
        m = masks[n].reshape(sc.shape[0], -1)
        per_row = (~m).sum(1)
        width = rows.shape[1]
        assert int(per_row.min()) >= math.floor(s * width) and int(per_row.max()) <= math.floor(s * width) + 1
        for r in range(rows.shape[0]):  # within a row, every pruned score <= every kept score
            if (~m[r]).any() and m[r].any():
                assert rows[r][~m[r]].max() <= rows[r][m[r]].min()


def test_nan_scores_are_refused():
    scores = {"a": torch.tensor([1.0, float("nan"), 2.0])}
    with pytest.raises(NNGeoError, match="NaN"):
        select_masks(scores, {"a": torch.ones(3, dtype=torch.bool)}, 0.5, "layer")


def test_lowest_k_is_the_first_k_of_a_stable_sort_ties_and_infinities_included():
    from nngeo_core.pruning.strategies.base import lowest

    g = torch.Generator().manual_seed(0)
    for _ in range(200):
        n = int(torch.randint(1, 40, (1,), generator=g))
        x = torch.randint(-3, 4, (n,), generator=g).double()  # many ties
        x[torch.rand(n, generator=g) < 0.1] = -torch.inf  # already pruned
        x[torch.rand(n, generator=g) < 0.1] = torch.inf  # must be kept
        for k in range(n + 1):
            ref = torch.zeros(n, dtype=torch.bool)
            ref[torch.sort(x, stable=True).indices[:k]] = True
            assert torch.equal(lowest(x, k), ref)
