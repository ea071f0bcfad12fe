"""Raghavan & Thomson (2020, arXiv 2012.09605, Fig. 2C): a path from a trained dense MLP to the
70%-sparse hyperplane along an approximate geodesic of the functional metric keeps the network's
accuracy better than one-shot magnitude pruning to the same sparsity.

Per seed an MLP is trained with nngeo's training loop; then, from the same trained weights,

* ``geodesic``: ``geometry.sparsify_path`` walks to the global-magnitude 70%-sparse hyperplane
  (mask frozen at the start, exact steps) and projects onto it;
* ``magnitude``: the pruning lab's ``magnitude`` strategy (global scope, no fine-tuning), the same
  sparsity of the same layers;
* ``magnitude + fine-tuning`` (reference): the magnitude masks kept while training on for as many
  samples as the path's metric batches drew (steps × batch size, at least one epoch).

All three are scored by ``train.evaluate`` on the test split. Rows: the geodesic accuracy (the
paper's 96.8% is judged only at the paper size, on MNIST; elsewhere it is a reference row), the
claim (geodesic − magnitude accuracy > 0), and for reference magnitude, fine-tuned magnitude,
geodesic − fine-tuned and the dense accuracy. The path table of every seed is kept for the figure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ..progress import Progress
from .base import Claim, FigureRef, Measurement, Row, Size
from .registry import CLAIMS
from .verdicts import Reference, SignAgrees, Within

NAME = "raghavan2020_geodesic_sparsify"
RULE = SignAgrees(2, of=3)
PAPER_ACCURACY = 0.968  # Fig. 2C: the MNIST MLP after the geodesic to 70% sparsity
ACCURACY_TOL = 0.02  # two accuracy points
SPARSITY = 0.7


def finetune_epochs(steps: int, batch_size: int, n_train: int) -> int:
    """Epochs of fine-tuning that show as many samples as the path drew (at least one)."""
    return max(1, math.ceil(steps * batch_size / max(1, n_train)))


def compute(settings: Mapping[str, Any], seeds: tuple[int, ...], progress: Progress) -> Measurement:
    # lazy: training, pruning and geometry load torch (~2 s, measured); listing the claims must not pay for it
    import pandas as pd

    from ..data import load  # lazy: as above
    from ..geometry import sparsify_path  # lazy: as above
    from ..pruning import plain_copy, prune, pruned_model  # lazy: as above
    from ..specs import DataSpec, ModelSpec, RunSpec, TrainSpec
    from ..train import build_for, evaluate, fit

    sparsity = float(settings.get("sparsity", SPARSITY))
    steps, batch = int(settings["steps"]), int(settings["batch_size"])
    records, paths = [], []
    for i, seed in enumerate(seeds):
        progress.check()
        sub = progress.sub(i / len(seeds), (i + 1) / len(seeds))
        sub.update(0.0, f"seed {seed}: training")
        spec = RunSpec(
            data=DataSpec(settings["data"], seed=seed, params=dict(settings.get("data_params", {}))),
            model=ModelSpec("mlp", params={"widths": tuple(settings["widths"]), "activation": "relu"}),
            train=TrainSpec(
                epochs=int(settings["epochs"]), batch_size=64, optimizer="adam", lr=1e-3, seed=seed, device="cpu"
            ),
        )
        dataset = load(spec.data)
        xt, yt = dataset.x_test, dataset.y_test
        model = build_for(spec, dataset)
        fit(model, dataset, spec.train)
        dense = evaluate(model, xt, yt, "cpu")[1]

        sub.update(0.2, f"seed {seed}: geodesic path")
        path = sparsify_path(
            model,
            dataset.x_train,
            dataset.y_train,
            sparsity=sparsity,
            steps=steps,
            batch_size=batch,
            beta=float(settings["beta"]),
            eval_x=xt,
            eval_y=yt,
            seed=seed,
            device="cpu",
            progress=sub.sub(0.2, 0.85),
        )
        geodesic = evaluate(path.model, xt, yt, "cpu")[1]

        sub.update(0.85, f"seed {seed}: magnitude pruning")
        masks = prune(model, "magnitude", sparsity, scope="global", seed=seed).masks
        magnitude = evaluate(pruned_model(model, masks), xt, yt, "cpu")[1]
        tuned = plain_copy(pruned_model(model, masks))
        ft = finetune_epochs(steps, int(path.table.attrs["batch_size"]), len(dataset.x_train))
        fit(tuned, dataset, TrainSpec(**{**spec.train.__dict__, "epochs": ft}), masks=masks)
        finetuned = evaluate(tuned, xt, yt, "cpu")[1]
        records.append(
            dict(
                seed=seed,
                dense=dense,
                geodesic=geodesic,
                magnitude=magnitude,
                finetuned=finetuned,
                finetune_epochs=ft,
                path_steps=int(path.table["step"].iloc[-1]),
            )
        )
        paths.append(path.table.assign(seed=seed))
    progress.update(1.0, "done")
    acc = pd.DataFrame(records).sort_values("seed").reset_index(drop=True)

    def col(name: str) -> tuple[float, ...]:
        return tuple(float(v) for v in acc[name])

    def diff(a: str, b: str) -> tuple[float, ...]:
        return tuple(float(u - v) for u, v in zip(acc[a], acc[b], strict=True))

    s = f"{sparsity:.0%}"
    paper_size = bool(settings.get("paper_comparable", False))
    rows = [
        Row(
            f"accuracy after the geodesic to {s} sparsity",
            PAPER_ACCURACY if paper_size else math.nan,
            col("geodesic"),
            Within(ACCURACY_TOL) if paper_size else Reference(),
        ),
        Row(f"geodesic − one-shot magnitude accuracy at {s}", 1.0, diff("geodesic", "magnitude"), RULE),
        Row(f"one-shot magnitude accuracy at {s}", math.nan, col("magnitude"), Reference()),
        Row(f"magnitude + fine-tuning accuracy at {s} (same samples)", math.nan, col("finetuned"), Reference()),
        Row(f"geodesic − fine-tuned magnitude accuracy at {s}", math.nan, diff("geodesic", "finetuned"), Reference()),
        Row("dense accuracy", math.nan, col("dense"), Reference()),
    ]
    return Measurement(
        rows=rows,
        tables={"accuracy": acc, "path": pd.concat(paths, ignore_index=True)},
        figures=[
            FigureRef(
                "sparsify_path_trace",
                "path",
                f"geodesic to {s} sparsity: accuracy and distance to the sparse hyperplane, seed {seeds[0]}",
                {"seed": seeds[0]},
            )
        ],
    )


BASE = {"sparsity": SPARSITY, "beta": 0.01}
CLAIMS.add(
    NAME,
    Claim(
        name=NAME,
        paper="Raghavan & Thomson 2020",
        statement="the geodesic from a dense MLP to 70% sparsity keeps accuracy better than one-shot magnitude pruning",
        sizes={
            "test": Size(
                {
                    **BASE,
                    "data": "digits",
                    "data_params": {"n_train": 200, "n_test": 100},
                    "widths": (16,),
                    "epochs": 10,
                    "steps": 5,
                    "batch_size": 16,
                },
                ("digits",),
                "a 64-16-10 MLP on 200 digits, 10 epochs, a 5-step path: for the test suite",
            ),
            "default": Size(
                {**BASE, "data": "digits", "widths": (100, 100), "epochs": 20, "steps": 200, "batch_size": 32},
                ("digits",),
                "a 64-100-100-10 ReLU MLP on 8×8 digits, 20 epochs of Adam, a 200-step path (batch 32)",
            ),
            "paper": Size(
                {
                    **BASE,
                    "data": "mnist",
                    "widths": (300, 100),
                    "epochs": 20,
                    "steps": 500,
                    "batch_size": 32,
                    "paper_comparable": True,
                },
                ("mnist",),
                "a 784-300-100-10 ReLU MLP on MNIST (NNGEO_DATA_DIR), 20 epochs, a 500-step path",
            ),
        },
        compute=compute,
        default_seeds=3,
    ),
)
