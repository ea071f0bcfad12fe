"""Conformance suite for pruning strategies: every entry of ``STRATEGIES`` must pass every test.

The tests iterate the registry, so a newly registered strategy is covered without edits. A tiny
dense model and a tiny conv model on a tiny random image dataset keep the suite fast. Every
strategy is tested: a missing part of the package is a failure, never a skip.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nngeo_core.data.base import Dataset
from nngeo_core.errors import NNGeoError
from nngeo_core.models.mlp import FeedForward, sequential
from nngeo_core.pruning import STRATEGIES, PruneData, PruneResult, PruneSettings, export_state_dict, prune
from nngeo_core.pruning.strategies import reset_caches
from nngeo_core.specs import TrainSpec

NAMES = list(STRATEGIES)
SHAPE = (1, 6, 6)
CLASSES = 3
# small budgets so every strategy runs in well under a second on the tiny models
FAST_PARAMS = {
    "imp": {"round_epochs": 1, "rewind_epoch": 0},
    "timp": {"round_epochs": 1, "rewind_epoch": 0},
    "snip": {"samples": 32},
    "grasp": {"samples": 32},
    "wanda": {"samples": 32},
    "synflow": {"rounds": 20},
    "geodesic": {"samples": 32, "steps": 10},
}


def tiny_models():
    torch.manual_seed(0)
    dense = sequential(
        FeedForward, [nn.Flatten(), nn.Linear(36, 12), nn.ReLU(), nn.Linear(12, 10), nn.ReLU(), nn.Linear(10, CLASSES)]
    )
    torch.manual_seed(1)
    conv = sequential(
        FeedForward,
        [
            nn.Conv2d(1, 3, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(3, 4, 3, stride=2),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(16, CLASSES),
        ],
    )
    for m in (dense, conv):
        m.input_shape, m.num_classes = SHAPE, CLASSES
    return {"dense": dense, "conv": conv}


def tiny_dataset() -> Dataset:
    g = torch.Generator().manual_seed(3)
    y = torch.randint(0, CLASSES, (90,), generator=g)
    # class-dependent mean so the data carry a signal the data-driven strategies can see
    x = torch.randn((90, *SHAPE), generator=g) + y.view(-1, 1, 1, 1).float()
    return Dataset("tiny", x[:60], y[:60], x[60:], y[60:], SHAPE, CLASSES)


MODELS = tiny_models()
DATASET = tiny_dataset()
TRAIN = TrainSpec(epochs=1, batch_size=16, lr=1e-2, seed=0)


def data_for(model) -> PruneData:
    # rewind target: the model's own weights (plain keys, pruned weights as zeros)
    return PruneData(dataset=DATASET, train=TRAIN, rewind={0: export_state_dict(model)})


def run(name, model, sparsity, **kw):
    kw.setdefault("params", FAST_PARAMS.get(name, {}))
    kw.setdefault("data", data_for(model))
    return prune(model, name, sparsity, **kw)


def state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def layer_names(model):
    return [n for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


def nearest(s, n):
    return int(s * n + 0.5)


def test_registry_has_the_required_strategies():
    required = {
        "random",
        "magnitude",
        "imp",
        "timp",
        "curvature",
        "curvature_neg",
        "snip",
        "synflow",
        "wanda",
        "geodesic",
    }
    assert required <= set(STRATEGIES)
    for name, entry in STRATEGIES.items():
        assert entry.name == name and callable(entry.fn) and entry.description


@pytest.mark.parametrize("model_name", ["dense", "conv"])
@pytest.mark.parametrize("name", NAMES)
def test_masks_have_right_layers_shapes_and_dtype(name, model_name):
    model = MODELS[model_name]
    result = run(name, model, 0.5)
    assert isinstance(result, PruneResult)
    modules = dict(model.named_modules())
    assert list(result.masks) == layer_names(model)
    for n, m in result.masks.items():
        assert m.dtype == torch.bool and m.shape == modules[n].weight.shape
    if result.state_dict is not None:
        ref = model.state_dict()
        assert set(result.state_dict) == set(ref)
        assert all(result.state_dict[k].shape == ref[k].shape for k in ref)


@pytest.mark.parametrize("scope", ["layer", "global"])
@pytest.mark.parametrize("model_name", ["dense", "conv"])
@pytest.mark.parametrize("name", NAMES)
def test_hits_requested_sparsity(name, model_name, scope):
    model = MODELS[model_name]
    s = 0.45
    if scope not in STRATEGIES[name].scopes:  # a strategy may support one scope only: it must say so
        with pytest.raises(NNGeoError, match="supports only"):
            prune(model, name, s, scope=scope, data=data_for(model))
        return
    result = run(name, model, s, scope=scope)
    pruned = {n: int((~m).sum()) for n, m in result.masks.items()}
    sizes = {n: m.numel() for n, m in result.masks.items()}
    if scope == "layer":
        for n in pruned:
            assert abs(pruned[n] - nearest(s, sizes[n])) <= 1, n
    else:
        assert abs(sum(pruned.values()) - nearest(s, sum(sizes.values()))) <= 1


@pytest.mark.parametrize("model_name", ["dense", "conv"])
@pytest.mark.parametrize("name", NAMES)
def test_never_revives_a_pruned_weight(name, model_name):
    model = MODELS[model_name]
    first = run(name, model, 0.3)
    # continue from the first result, as a sweep does for iterative strategies
    from nngeo_core.pruning import pruned_model

    step = pruned_model(model, first.masks, first.state_dict)
    second = run(name, step, 0.55, masks=first.masks)
    for n in first.masks:
        assert not bool((second.masks[n] & ~first.masks[n]).any()), n
    # a request below the current sparsity cannot be met without reviving weights
    with pytest.raises(NNGeoError):
        run(name, step, 0.1, masks=first.masks)


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_for_a_seed(name):
    model = MODELS["dense"]
    a = run(name, model, 0.5, seed=7)
    reset_caches()  # recompute, rather than recall, the second time
    b = run(name, model, 0.5, seed=7)
    for n in a.masks:
        assert torch.equal(a.masks[n], b.masks[n]), n
    if a.state_dict is not None:
        for k in a.state_dict:
            assert torch.equal(a.state_dict[k], b.state_dict[k]), k


@pytest.mark.parametrize("model_name", ["dense", "conv"])
@pytest.mark.parametrize("name", NAMES)
def test_leaves_the_input_model_untouched(name, model_name):
    model = MODELS[model_name]
    before = state(model)
    model.train()
    entry = STRATEGIES[name]
    masks = {n: torch.ones_like(dict(model.named_modules())[n].weight, dtype=torch.bool) for n in layer_names(model)}
    params = {**entry.defaults, **FAST_PARAMS.get(name, {})}
    settings = PruneSettings(sparsity=0.5, scope="global", layers=tuple(masks), seed=0, params=params)
    entry.fn(model, masks, data_for(model), settings)  # the strategy function itself, with no copy made for it
    after = model.state_dict()
    assert set(after) == set(before)  # no pruning parametrisation added
    for k in before:
        assert torch.equal(before[k], after[k]), k
    assert model.training
    assert not any(hasattr(m, "weight_orig") for m in model.modules())


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("bad", [1.0, 1.5, -0.1, float("nan")])
def test_rejects_impossible_sparsity(name, bad):
    with pytest.raises(NNGeoError) as info:
        prune(MODELS["dense"], name, bad, data=data_for(MODELS["dense"]))
    assert "\n" not in str(info.value) and "sparsity" in str(info.value)


@pytest.mark.parametrize("name", NAMES)
def test_rejects_unknown_layer_and_parameter(name):
    model = MODELS["dense"]
    with pytest.raises(NNGeoError, match="no prunable layer named"):
        prune(model, name, 0.5, layers=["nope"], data=data_for(model))
    with pytest.raises(NNGeoError, match="has no parameter"):
        prune(model, name, 0.5, params={"no_such_setting": 1}, data=data_for(model))


@pytest.mark.parametrize("name", NAMES)
def test_only_selected_layers_are_pruned(name):
    model = MODELS["dense"]
    entry = STRATEGIES[name]
    if not entry.any_layers:  # a strategy that always prunes every layer must refuse a selection
        with pytest.raises(NNGeoError, match="every dense/conv layer"):
            prune(model, name, 0.4, exclude_last=True, scope=entry.scopes[0], data=data_for(model))
        return
    result = run(name, model, 0.4, exclude_last=True, scope=entry.scopes[0])
    assert list(result.masks) == layer_names(model)[:-1]
    untouched = dict(model.named_modules())[layer_names(model)[-1]].weight
    assert bool((untouched != 0).all())
