"""What the registries hold, known without importing them: names, one-line descriptions and
declared parameters (with defaults) of the built-in models, datasets, analyses, pruning strategies
and job kinds.

The listing commands (`nngeo models`, `datasets`, `analyses`, `strategies`) and the CLI's check of
a name it was given read this table, so they answer in a fraction of a second instead of importing
torch, scikit-learn, gudhi and POT (1.5-3 s). It is a copy: tests/unit/test_cli.py compares it with
the live registries entry by entry, so the two cannot drift apart; when they differ, that test
prints the entries to paste here. Modules of your own named in ``NNGEO_JOB_MODULES`` may register
entries this table cannot know; while any are named, the checks leave names to the live registries.
"""

from __future__ import annotations

import sys
from typing import Any

from . import user_index
from .errors import NNGeoError
from .settings import get_settings

# name -> what ``models.model_info(name)`` gives (without its "name"), in registration order
MODELS: dict[str, dict[str, Any]] = {
    "mlp": {
        "description": (
            "Fully connected net on the flattened input: hidden layers of the given widths, one "
            "activation, a linear output layer."
        ),
        "params": {"widths": (32, 32), "activation": "relu", "bias": True},
        "choices": {"activation": ("relu", "tanh", "gelu", "erf", "sigmoid", "softplus"), "bias": (True, False)},
        "default_input_shape": (2,),
        "default_num_classes": 2,
        "image": False,
    },
    "fcn_mnist": {
        "description": (
            "784-100-100-100-100-100-10 ReLU net (SynFlow / topological IMP papers); the first layer "
            "adapts to the input size."
        ),
        "params": {},
        "choices": {},
        "default_input_shape": (1, 28, 28),
        "default_num_classes": 10,
        "image": False,
    },
    "lenet5": {
        "description": "LeNet-5: conv 6@5x5 pad 2, max-pool, conv 16@5x5, max-pool, fc 120, fc 84, output; ReLU.",
        "params": {},
        "choices": {},
        "default_input_shape": (1, 28, 28),
        "default_num_classes": 10,
        "image": True,
    },
    "cnn_mnist": {
        "description": "Two 32-channel 3x3 convs (padding 1) with ReLU, then one dense layer (25,088 -> 10 on 28x28).",
        "params": {},
        "choices": {},
        "default_input_shape": (1, 28, 28),
        "default_num_classes": 10,
        "image": True,
    },
    "vgg11": {
        "description": (
            "CIFAR VGG-11 with batch norm and a linear classifier; width multiplies the channels. Needs "
            "images of at least 32x32."
        ),
        "params": {"width": 1.0},
        "choices": {},
        "default_input_shape": (3, 32, 32),
        "default_num_classes": 10,
        "image": True,
    },
    "resnet20": {
        "description": (
            "CIFAR ResNet-20 (He et al. 2016), 16/32/64 channels, option-A shortcuts; width multiplies the channels."
        ),
        "params": {"width": 1.0},
        "choices": {},
        "default_input_shape": (3, 32, 32),
        "default_num_classes": 10,
        "image": True,
    },
    "vgg9": {
        "description": (
            "Pool-free CIFAR VGG-9 of the neural-curvature pruning paper (Tan et al., arXiv 2601.16366): "
            "convs 64@2x2 s2, 128, 128, 128 s2, 256, 256 (3x3, no padding), each with batch norm, then fc "
            "512, fc 128, output; ReLU. Needs images of at least 30x30."
        ),
        "params": {},
        "choices": {},
        "default_input_shape": (3, 32, 32),
        "default_num_classes": 10,
        "image": True,
    },
    "lenet5_s2": {
        "description": (
            "Pool-free LeNet-5 of the neural-curvature pruning paper (Tan et al., arXiv 2601.16366): conv "
            "6@6x6 s2, conv 16@6x6 s2 (no padding), fc 120, fc 84, output; ReLU. Needs images of at least 16x16."
        ),
        "params": {},
        "choices": {},
        "default_input_shape": (1, 28, 28),
        "default_num_classes": 10,
        "image": True,
    },
    "torchvision": {
        "description": (
            "A torchvision classification architecture by name (arch), e.g. an uploaded state_dict's; its "
            "stem takes the input's channels."
        ),
        "params": {"arch": "resnet18", "aux_logits": True},
        "choices": {},
        "default_input_shape": (3, 224, 224),
        "default_num_classes": 10,
        "image": True,
    },
    "timm": {
        "description": (
            "A timm model by name (arch; needs timm installed, never pretrained), e.g. an uploaded "
            "state_dict's named timm:NAME; its stem takes the input's channels."
        ),
        "params": {"arch": "resnet18"},
        "choices": {},
        "default_input_shape": (3, 224, 224),
        "default_num_classes": 10,
        "image": True,
    },
}

# name -> what ``data.dataset_info(name)`` gives (without its "name"), in name order as ``list_datasets``
DATASETS: dict[str, dict[str, Any]] = {
    "cifar10": {
        "input_shape": (3, 32, 32),
        "num_classes": 10,
        "description": "CIFAR-10 colour images in 10 classes, 32×32 (data directory or download)",
        "needs_files": True,
        "defaults": {"n_train": None, "n_test": None},
    },
    "cifar100": {
        "input_shape": (3, 32, 32),
        "num_classes": 100,
        "description": "CIFAR-100 colour images in 100 fine classes, 32×32 (data directory or download)",
        "needs_files": True,
        "defaults": {"n_train": None, "n_test": None},
    },
    "circles": {
        "input_shape": (2,),
        "num_classes": 2,
        "description": "a small circle inside a large one (scikit-learn make_circles)",
        "needs_files": False,
        "defaults": {"n_train": 1000, "n_test": 1000, "noise": 0.05, "factor": 0.5},
    },
    "digits": {
        "input_shape": (1, 8, 8),
        "num_classes": 10,
        "description": "scikit-learn's 8×8 handwritten digits, offline (resize=28 for MNIST models)",
        "needs_files": False,
        "defaults": {"resize": None, "test_fraction": 0.25, "n_train": None, "n_test": None},
    },
    "fashion_mnist": {
        "input_shape": (1, 28, 28),
        "num_classes": 10,
        "description": "Fashion-MNIST clothing images, 28×28 grey (data directory or download)",
        "needs_files": True,
        "defaults": {"n_train": None, "n_test": None},
    },
    "mnist": {
        "input_shape": (1, 28, 28),
        "num_classes": 10,
        "description": "MNIST handwritten digits, 28×28 grey (data directory or download)",
        "needs_files": True,
        "defaults": {"n_train": None, "n_test": None},
    },
    "moons": {
        "input_shape": (2,),
        "num_classes": 2,
        "description": "two interleaved half circles (scikit-learn make_moons)",
        "needs_files": False,
        "defaults": {"n_train": 1000, "n_test": 1000, "noise": 0.1},
    },
    "sinusoid": {
        "input_shape": (2,),
        "num_classes": 2,
        "description": "uniform on [-1, 1]²; class 1 above the curve x2 = 0.6·sin(7·x1 − 1)",
        "needs_files": False,
        "defaults": {"n_train": 1000, "n_test": 1000, "noise": 0.0},
    },
    "spirals": {
        "input_shape": (2,),
        "num_classes": 2,
        "description": "two interleaved Archimedean spirals",
        "needs_files": False,
        "defaults": {"n_train": 1000, "n_test": 1000, "noise": 0.05, "turns": 1.5},
    },
    "xor": {
        "input_shape": (2,),
        "num_classes": 2,
        "description": "four Gaussian blobs at (±1, ±1); class 1 where x1·x2 > 0",
        "needs_files": False,
        "defaults": {"n_train": 1000, "n_test": 1000, "noise": 0.3},
    },
}

# the derived dataset forms (``data.derived``): PREFIX:<base>:<argument>
DERIVED_PREFIXES: tuple[str, ...] = ("permuted", "split")
DERIVED_FORMS: tuple[str, ...] = ("permuted:<base>:<seed>", "split:<base>:<classes>")

# name -> ``Analysis.info()`` and its declared parameters' defaults, in registration order
ANALYSES: dict[str, dict[str, Any]] = {
    "persistence": {
        "needs_data": False,
        "needs_store": False,
        "description": (
            "Neural persistence per layer (Rieck et al. 2019): p-norm of each layer's 0-dim persistence diagram."
        ),
        "params": {
            "p": 2,
            "normalize": "layer",
            "essential": False,
            "conv": "toeplitz",
            "zeros": "absent",
            "input_shape": None,
            "null_models": None,
            "null_seeds": 3,
        },
    },
    "persistence_diagrams": {
        "needs_data": False,
        "needs_store": False,
        "description": (
            "Every layer's 0-dim persistence diagram as a long table (layer, birth, death), for diagram "
            "and barcode plots."
        ),
        "params": {
            "normalize": "layer",
            "essential": False,
            "conv": "toeplitz",
            "zeros": "absent",
            "input_shape": None,
        },
    },
    "critical_compression": {
        "needs_data": False,
        "needs_store": False,
        "description": (
            "Topologically critical compression ratio |W| / |MST| per layer and for the model (Balwani & "
            "Krzyston 2022)."
        ),
        "params": {"conv": "filter", "input_shape": None},
    },
    "mst_overlap": {
        "needs_data": False,
        "needs_store": False,
        "description": (
            "Fraction of each layer's maximum spanning tree among its largest weights, with a lower bound"
            " and the random-chance value."
        ),
        "params": {"conv": "toeplitz", "input_shape": None, "null_models": None, "null_seeds": 3},
    },
    "curvature": {
        "needs_data": True,
        "needs_store": False,
        "description": (
            "Neural curvature of every edge on correctly classified test inputs (k per class); negative "
            "edges are bottlenecks, positive ones redundant."
        ),
        "params": {
            "preset": "nngeo",
            "alpha": None,
            "method": None,
            "aggregate": "min",
            "k_per_class": 1,
            "normalize_idleness": None,
            "dead_value": None,
            "conv_positions": None,
            "masses": None,
            "dead_rule": None,
            "remap_one": None,
            "layers": None,
        },
    },
    "curvature_weights": {
        "needs_data": False,
        "needs_store": False,
        "description": (
            "Ollivier-Ricci curvature of every edge of the layer graph from the weights alone (lengths 1/|w|)."
        ),
        "params": {
            "alpha": 0.5,
            "method": "sinkhorn",
            "normalize_idleness": False,
            "conv_positions": 4,
            "layers": None,
            "null_models": None,
            "null_seeds": 3,
        },
    },
    "volume": {
        "needs_data": True,
        "needs_store": False,
        "description": "Volume element (and Ricci scalar for 2-D inputs) of the pullback metric of a hidden layer",
        "params": {
            "layer": -1,
            "resolution": None,
            "bounds": None,
            "ricci": True,
            "convention": "standard",
            "indices": None,
            "extent": 1.5,
        },
    },
    "geodesic": {
        "needs_data": True,
        "needs_store": False,
        "description": "Geodesic path in weight space to a sparse network (functional metric)",
        "params": {
            "sparsity": 0.7,
            "mask": "frozen",
            "eps": None,
            "beta": 0.01,
            "batch_size": 64,
            "method": "exact",
            "lam": 10.0,
            "fisher": False,
            "seed": 0,
            "tol": None,
            "eval_size": 2000,
            "record_every": 1,
            "steps": 100,
        },
    },
    "forgetting": {
        "needs_data": True,
        "needs_store": True,
        "description": (
            "Forgetting path (Raghavan & Thomson 2020): from this run (task A) towards run_b (task B), "
            "accuracy on both tasks and distance to run_b"
        ),
        "params": {
            "run_b": None,
            "direction": "target",
            "eps": None,
            "beta": 0.01,
            "batch_size": 64,
            "method": "exact",
            "lam": 10.0,
            "fisher": False,
            "seed": 0,
            "tol": None,
            "eval_size": 2000,
            "record_every": 1,
            "steps": 50,
        },
    },
}

# name -> description, whether it needs data, declared parameters' defaults, in registration order
STRATEGIES: dict[str, dict[str, Any]] = {
    "random": {
        "description": "Prune weights uniformly at random (seeded): the baseline.",
        "needs_data": False,
        "params": {},
    },
    "magnitude": {
        "description": (
            "One-shot magnitude pruning: remove the smallest |w| (per layer or globally, as the scope says)."
        ),
        "needs_data": False,
        "params": {},
    },
    "imp": {
        "description": (
            "Iterative magnitude pruning: prune 20% of the remaining weights per round, rewind to an "
            "early epoch (or init), retrain."
        ),
        "needs_data": True,
        "params": {"rate": 0.2, "rewind_epoch": 1, "round_epochs": None},
    },
    "timp": {
        "description": (
            "Topological IMP: IMP that always keeps every layer's maximum-spanning-tree edges (refuses "
            "sparsities beyond that floor)."
        ),
        "needs_data": True,
        "params": {"rate": 0.2, "rewind_epoch": 1, "round_epochs": None},
    },
    "curvature": {
        "description": (
            "Prune the weights of highest neural curvature first (calibration inputs from the training set)."
        ),
        "needs_data": True,
        "params": {
            "calibration_k": 1,
            "calibration_split": "train",
            "preset": "nngeo",
            "alpha": None,
            "method": None,
            "aggregate": "min",
            "normalize_idleness": None,
            "dead_value": None,
            "conv_positions": None,
            "masses": None,
            "dead_rule": None,
            "remap_one": None,
            "tie_break": None,
        },
    },
    "curvature_neg": {
        "description": "Ablation of curvature: prune the weights of lowest neural curvature first.",
        "needs_data": True,
        "params": {
            "calibration_k": 1,
            "calibration_split": "train",
            "preset": "nngeo",
            "alpha": None,
            "method": None,
            "aggregate": "min",
            "normalize_idleness": None,
            "dead_value": None,
            "conv_positions": None,
            "masses": None,
            "dead_rule": None,
            "remap_one": None,
            "tie_break": None,
        },
    },
    "snip": {
        "description": "SNIP: prune the smallest connection sensitivity |dL/dw * w| on one batch of training data.",
        "needs_data": True,
        "params": {"samples": 256},
    },
    "grasp": {
        "description": "GraSP: prune the weights whose removal preserves gradient flow best (highest -w * Hg).",
        "needs_data": True,
        "params": {"samples": 256, "temperature": 200.0},
    },
    "synflow": {
        "description": (
            "SynFlow: iterative, data-free; prune the least synaptic flow |w * dR/dw| over 100 rounds on "
            "an exponential schedule."
        ),
        "needs_data": False,
        "params": {"rounds": 100},
    },
    "wanda": {
        "description": (
            "Wanda: prune the smallest |w| * ||x|| within each output row (input norms from calibration samples)."
        ),
        "needs_data": True,
        "params": {"samples": 128, "group": "row"},
    },
    "geodesic": {
        "description": (
            "Geodesic pruning: walk the weights towards the sparse network while keeping the function "
            "close, then project."
        ),
        "needs_data": True,
        "params": {"samples": 256, "steps": 50, "batch_size": 64, "beta": 0.01, "method": "exact", "mask": "frozen"},
    },
}

# the built-in job kinds, by name (their registration order depends on which module loads first)
JOB_KINDS: tuple[str, ...] = ("analyse", "analyse-shard", "health", "prune-sweep", "reproduce", "train")


# -- the registries' one-line errors for an unknown name, word for word --------------------------
WHAT = {"model": MODELS, "analysis": ANALYSES, "pruning strategy": STRATEGIES}


def unknown(what: str, name: object) -> NNGeoError:
    """The error the live registry gives for a name it does not hold (``Registry.unknown``; for
    datasets ``data.unknown_dataset``, with the derived forms)."""
    known = ", ".join([*DATASETS, *DERIVED_FORMS] if what == "dataset" else WHAT[what]) or "none"
    return NNGeoError(f"unknown {what} {name!r}; known: {known}")


def complete() -> bool:
    """Whether this table is all there is: plugin modules (``NNGEO_JOB_MODULES``) may register
    models, datasets, analyses or strategies of their own when they load."""
    return not get_settings().job_modules


# where each live registry lives: when its module is already imported (a dashboard, a test, a
# script that registered an entry of its own), asking it is free and knows what was added there
LIVE = {
    "model": ("nngeo_core.models", "MODELS"),
    "analysis": ("nngeo_core.analyses", "ANALYSES"),
    "pruning strategy": ("nngeo_core.pruning.strategies.registry", "STRATEGIES"),
    "dataset": ("nngeo_core.data.base", "DATASETS"),
}


def _check(what: str, name: str, table: Any) -> None:
    if name in table:
        return
    module = sys.modules.get(LIVE[what][0])
    if module is not None:
        if getattr(module, LIVE[what][1]).find(name) is None:
            # the registry's own words (datasets: the loader's, which names the derived forms)
            raise module.unknown_dataset(name) if what == "dataset" else getattr(module, LIVE[what][1]).unknown(name)
        return
    if complete():
        raise unknown(what, name)


def check_model(name: str) -> None:
    _check("model", name, MODELS)


def check_strategy(name: str) -> None:
    _check("pruning strategy", name, STRATEGIES)


def check_analysis(name: str) -> None:
    _check("analysis", name, ANALYSES)


def check_dataset(name: str) -> None:
    """A registered name, or a derived form over one (its other parts are checked when it loads)."""
    prefix, sep, rest = name.partition(":")
    if sep and prefix in DERIVED_PREFIXES:
        base = rest.rpartition(":")[0]
        if base:
            check_dataset(base)
        return  # a malformed derived name gets the loader's own message, which says how to write it
    if name not in DATASETS and user_index.check(name):  # the user's own: their manifests, no torch
        return
    _check("dataset", name, DATASETS)


def rows(table: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per entry, its name first (what the ``--json`` listings print)."""
    return [{"name": name, **entry} for name, entry in table.items()]
