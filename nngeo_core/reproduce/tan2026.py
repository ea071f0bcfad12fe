"""Tan, Sia, Bogdan & Ivanov (2026), post-training pruning by neural curvature: removing the most
positively curved (redundant) weights first keeps a net's accuracy, removing the most negatively
curved (bottleneck) weights first destroys it. A dense net per seed is trained and pruned without
fine-tuning at each sparsity by the ``curvature`` (highest first) and ``curvature_neg`` (lowest
first) strategies, nngeo's preset, and by global magnitude, through nngeo's pruning sweeps (in a
temporary store of their own: the report is what is kept).

Rows: per sparsity, the accuracy of positive-first minus that of negative-first (the paper's
claim: > 0) and, for reference, positive-first minus magnitude and each strategy's accuracy.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from typing import Any

from ..progress import Progress
from .base import Claim, FigureRef, Measurement, Row, Size
from .registry import CLAIMS
from .verdicts import Reference, SignAgrees

RULE = SignAgrees(2, of=3)
STRATEGIES = {"positive-first": "curvature", "negative-first": "curvature_neg", "magnitude": "magnitude"}


def compute(settings: Mapping[str, Any], seeds: tuple[int, ...], progress: Progress) -> Measurement:
    # lazy: the pruning sweeps load torch (~2 s, measured); listing the claims must not pay for it
    import pandas as pd

    from ..defaults import complete, default_data_params, default_train  # lazy: as above
    from ..pruning import SweepSpec, run_sweep  # lazy: as above
    from ..specs import DataSpec, ModelSpec, RunSpec, TrainSpec
    from ..store import Store

    model, data = settings["model"], settings["data"]
    train = default_train(model, data)
    if settings.get("epochs") is not None:
        train = TrainSpec(**{**train.__dict__, "epochs": int(settings["epochs"])})
    params = {**default_data_params(model, data, {}), **dict(settings.get("data_params", {}))}
    run = RunSpec(
        data=complete(DataSpec(data, params=params)),
        model=complete(ModelSpec(model, params=dict(settings.get("model_params", {})))),
        train=train,
    )
    sparsities = tuple(float(s) for s in settings["sparsities"])
    frames = []
    with tempfile.TemporaryDirectory(prefix="nngeo-reproduce-") as root:
        store = Store(root)
        for i, (label, strategy) in enumerate(STRATEGIES.items()):
            progress.check()
            sub = progress.sub(i / len(STRATEGIES), (i + 1) / len(STRATEGIES))
            strategy_params = {"calibration_k": settings["calibration_k"]} if strategy != "magnitude" else {}
            spec = SweepSpec(run=run, strategy=strategy, params=strategy_params, sparsities=sparsities, seeds=seeds)
            table = store.get(run_sweep(spec, store=store, progress=sub))
            frames.append(table.assign(label=label))
    progress.update(1.0, "done")
    df = pd.concat(frames, ignore_index=True)
    acc = df[["label", "seed", "sparsity_requested", "accuracy_pruned", "dense_accuracy"]].rename(
        columns={"sparsity_requested": "sparsity", "accuracy_pruned": "accuracy"}
    )
    acc = acc.sort_values(["label", "sparsity", "seed"]).reset_index(drop=True)

    def values(label: str, s: float) -> list[float]:
        sel = acc[(acc["label"] == label) & (acc["sparsity"] == s)].sort_values("seed")
        return [float(v) for v in sel["accuracy"]]

    rows = []
    for s in sparsities:
        pos, neg, mag = values("positive-first", s), values("negative-first", s), values("magnitude", s)
        rows.append(
            Row(
                f"sparsity {s:g}: positive-first − negative-first accuracy",
                1.0,
                tuple(a - b for a, b in zip(pos, neg, strict=True)),
                RULE,
            )
        )
        rows.append(
            Row(
                f"sparsity {s:g}: positive-first − magnitude accuracy",
                float("nan"),
                tuple(a - b for a, b in zip(pos, mag, strict=True)),
                Reference(),
            )
        )
        rows += [
            Row(f"sparsity {s:g}: {label} accuracy", float("nan"), tuple(values(label, s)), Reference())
            for label in STRATEGIES
        ]
    dense = acc.drop_duplicates("seed").sort_values("seed")["dense_accuracy"]
    rows.append(Row("dense accuracy", float("nan"), tuple(float(v) for v in dense), Reference()))
    return Measurement(
        rows=rows,
        tables={"accuracy": acc},
        figures=[
            FigureRef("accuracy_vs_sparsity", "accuracy", f"{model} on {data}: accuracy after pruning, no fine-tuning")
        ],
    )


CLAIMS.add(
    "tan2026_curvature_pruning",
    Claim(
        name="tan2026_curvature_pruning",
        paper="Tan, Sia, Bogdan & Ivanov 2026",
        statement="post-training, pruning positive-curvature weights first keeps accuracy; negative-first does not",
        sizes={
            "test": Size(
                {
                    "model": "mlp",
                    "data": "digits",
                    "model_params": {"widths": (16,)},
                    "epochs": 1,
                    "sparsities": (0.5,),
                    "calibration_k": 1,
                },
                ("digits",),
                "a 64-16-10 MLP on digits, one epoch, one sparsity: for the test suite",
            ),
            "default": Size(
                {"model": "lenet5_s2", "data": "digits", "sparsities": (0.67, 0.86), "calibration_k": 1},
                ("digits",),
                "lenet5_s2 on digits resized to 28×28, nngeo's curvature preset, sparsities 0.67 and 0.86",
            ),
            "paper": Size(
                {
                    "model": "lenet5_s2",
                    "data": "mnist",
                    "sparsities": (0.48, 0.67, 0.76, 0.86, 0.95),
                    "calibration_k": 1,
                },
                ("mnist",),
                "lenet5_s2 on MNIST (NNGEO_DATA_DIR), five sparsities",
            ),
        },
        compute=compute,
        default_seeds=3,
    ),
)
