"""Balwani & Krzyston (2022, Fig. 3): the overlap between each layer's maximum spanning tree (MST)
and its α largest-|w| weights (α = the MST's size) is far above random chance (paper: a mean of
~40% per layer).

Per seed an MLP is trained with nngeo's training loop, keeping weight snapshots at the declared
epochs (0 = init, a middle one, the end); ``topology.mst_overlap`` gives per layer and snapshot the
overlap, the chance level α/N (N the layer's present edges: the overlap of α random edges with the
top α) and the lower bound every spanning tree reaches (the table's ``bound``). The final net's
three null models (``models.nulls.null_model``: init, shuffled, gaussian; ``null_seeds`` seeds
each) get the same statistic.

Rows: the claim (mean over layers of overlap − chance at the end of training > 0: 'far above
chance'; its paper value is the paper's ~0.40, whose sign is what the rule reads), the absolute
mean overlap against the paper's ~0.40 (judged within 0.10: the paper reads it off a figure), and
for reference overlap − bound, trained − null for each null kind and the mean overlap at init
(epoch 0). Every row is a per-seed mean over layers of the ``overlap`` table; ``summary`` holds
those per-seed numbers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ..progress import Progress
from .base import Claim, FigureRef, Measurement, Row, Size
from .registry import CLAIMS
from .verdicts import Reference, SignAgrees, Within

NAME = "balwani2022_mst_overlap"
RULE = SignAgrees(2, of=3)
PAPER_OVERLAP = 0.40  # Fig. 3: MST ∩ top-α overlap, ~40% per layer on average
# the paper's ~40% is read off a figure: 10 points either side is agreement with it
ABSOLUTE_RULE = Within(0.10)
NULL_KINDS = ("init", "shuffled", "gaussian")
# null seeds apart from the run seeds: an init null of seed s would be run s's own epoch 0
NULL_SEED_BASE = 1000
COLUMNS = ("layer", "n_in", "n_out", "n_edges", "alpha", "overlap", "bound", "chance")


def _layers(model) -> list[dict[str, Any]]:
    # lazy: topology loads torch (~2 s, measured); listing the claims must not pay for it
    from ..topology import mst_overlap

    table = mst_overlap(model)
    table = table[table["kind"] != "skipped"]
    return [{c: (str(r[c]) if c == "layer" else r[c]) for c in COLUMNS} for r in table.to_dict("records")]


def compute(settings: Mapping[str, Any], seeds: tuple[int, ...], progress: Progress) -> Measurement:
    # lazy: training, models and topology load torch (~2 s, measured); listing the claims must not pay for it
    import pandas as pd

    from ..data import load  # lazy: as above
    from ..models.nulls import null_model  # lazy: as above
    from ..specs import DataSpec, ModelSpec, RunSpec, TrainSpec
    from ..train import build_for, fit

    epochs = int(settings["epochs"])
    snapshots = tuple(sorted({int(e) for e in settings["snapshots"]} | {0, epochs}))
    null_seeds = int(settings.get("null_seeds", 1))  # at most 100: null seeds of two runs stay apart
    model_params = dict(settings.get("model_params", {}))
    records: list[dict[str, Any]] = []
    for i, seed in enumerate(seeds):
        progress.check()
        sub = progress.sub(i / len(seeds), (i + 1) / len(seeds))
        sub.update(0.0, f"seed {seed}: training")
        spec = RunSpec(
            data=DataSpec(settings["data"], seed=seed, params=dict(settings.get("data_params", {}))),
            model=ModelSpec(settings["model"], params=model_params),
            train=TrainSpec(
                epochs=epochs,
                batch_size=64,
                optimizer="adam",
                lr=1e-3,
                seed=seed,
                device="cpu",
                snapshots=snapshots,
            ),
        )
        dataset = load(spec.data)
        model = build_for(spec, dataset)
        result = fit(model, dataset, spec.train, progress=sub.sub(0.0, 0.7))
        accuracy = result.test_accuracy
        sub.update(0.7, f"seed {seed}: MST overlap per snapshot")
        final = model.state_dict()
        for epoch in snapshots:
            progress.check()
            model.load_state_dict(result.snapshots[epoch])
            for rec in _layers(model):
                records.append(dict(seed=seed, model="trained", null_seed=-1, epoch=epoch, accuracy=accuracy, **rec))
        model.load_state_dict(final)
        sub.update(0.85, f"seed {seed}: null models")
        for kind in NULL_KINDS:
            for ns in range(null_seeds):
                progress.check()
                null = null_model(model, kind, seed=NULL_SEED_BASE + 100 * seed + ns)
                for rec in _layers(null):
                    records.append(dict(seed=seed, model=kind, null_seed=ns, epoch=epochs, accuracy=math.nan, **rec))
    progress.update(1.0, "done")
    overlap = pd.DataFrame(records)

    def per_seed(model: str, epoch: int, column: str = "overlap") -> pd.Series:
        part = overlap[(overlap["model"] == model) & (overlap["epoch"] == epoch)]
        # mean over layers per (seed, null seed), then over null seeds
        return part.groupby(["seed", "null_seed"])[column].mean().groupby("seed").mean()

    summary = pd.DataFrame(
        {
            "end": per_seed("trained", epochs),
            "chance": per_seed("trained", epochs, "chance"),
            "bound": per_seed("trained", epochs, "bound"),
            "init_epoch": per_seed("trained", 0),
            **{f"null_{k}": per_seed(k, epochs) for k in NULL_KINDS},
        }
    )
    summary.index.name = "seed"
    summary = summary.reset_index()

    def col(name: str) -> tuple[float, ...]:
        return tuple(float(v) for v in summary[name])

    def diff(a: str, b: str) -> tuple[float, ...]:
        return tuple(float(u - v) for u, v in zip(summary[a], summary[b], strict=True))

    rows = [
        Row("mean overlap − chance α/N over layers, trained, end", PAPER_OVERLAP, diff("end", "chance"), RULE),
        Row("mean overlap over layers, trained, end", PAPER_OVERLAP, col("end"), ABSOLUTE_RULE),
        Row("mean overlap − lower bound over layers, trained, end", math.nan, diff("end", "bound"), Reference()),
        *(
            Row(f"mean overlap, trained − {k} null, end", math.nan, diff("end", f"null_{k}"), Reference())
            for k in NULL_KINDS
        ),
        Row("mean overlap over layers, at init (epoch 0)", math.nan, col("init_epoch"), Reference()),
        Row("mean chance α/N over layers", math.nan, col("chance"), Reference()),
    ]
    return Measurement(
        rows=rows,
        tables={"overlap": overlap, "summary": summary},
        figures=[
            FigureRef(
                "mst_overlap_epochs",
                "overlap",
                "MST ∩ top-α overlap per layer over training (mean over seeds), the final net's nulls and chance",
            )
        ],
    )


CLAIMS.add(
    NAME,
    Claim(
        name=NAME,
        paper="Balwani & Krzyston 2022",
        statement="each layer's maximum spanning tree overlaps its top-α weights far above chance (~40% per layer)",
        sizes={
            "test": Size(
                {
                    "data": "digits",
                    "data_params": {"n_train": 200, "n_test": 100},
                    "model": "mlp",
                    "model_params": {"widths": (16,), "activation": "relu"},
                    "epochs": 2,
                    "snapshots": (0, 1, 2),
                    "null_seeds": 1,
                },
                ("digits",),
                "a 64-16-10 MLP on 200 digits, 2 epochs, one seed per null: for the test suite",
            ),
            "default": Size(
                {
                    "data": "digits",
                    "data_params": {"resize": 28},
                    "model": "fcn_mnist",
                    "epochs": 10,
                    "snapshots": (0, 1, 5, 10),
                    "null_seeds": 3,
                },
                ("digits",),
                "fcn_mnist (784-100×5-10) on digits resized to 28×28, 10 epochs of Adam, 3 seeds per null",
            ),
            "paper": Size(
                {"data": "mnist", "model": "fcn_mnist", "epochs": 10, "snapshots": (0, 1, 5, 10), "null_seeds": 3},
                ("mnist",),
                "fcn_mnist (784-100×5-10) on MNIST (NNGEO_DATA_DIR), 10 epochs of Adam, 3 seeds per null",
            ),
        },
        compute=compute,
        default_seeds=3,
    ),
)
