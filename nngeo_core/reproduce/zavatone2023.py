"""Zavatone-Veth, Yang, Rubinfien & Pehlevan (2023): training magnifies the volume element of a
network's hidden representation near its decision boundary.

On 2-D toys (xor, sinusoid) an MLP is trained with nngeo's training loop; at initialisation and
after training the volume element log10 √det g of its last hidden layer and the probability
margin p1 − p0 are taken on a grid (``geometry.grid_heatmap``), and two boundary-magnification
statistics computed over the grid points where the volume element is finite:

* ``spearman``: Spearman's rank correlation of log10 √det g with −|margin| (> 0: larger volume
  nearer the boundary);
* ``near_minus_rest``: the mean log10 √det g of the 10% of grid points with the smallest |margin|
  minus the mean over the rest.

The paper's claim is the sign after training (> 0, magnification); the values at initialisation
are shown for reference.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..progress import Progress
from .base import Claim, FigureRef, Measurement, Row, Size
from .registry import CLAIMS
from .verdicts import Reference, SignAgrees

NEAR_FRACTION = 0.1
RULE = SignAgrees(2, of=3)
STATISTICS = ("spearman", "near_minus_rest")


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation (average ranks for ties); NaN when either side is constant."""
    # lazy: scipy.stats costs ~0.5 s (measured); listing the claims must not pay for it
    from scipy.stats import rankdata

    ra, rb = rankdata(a), rankdata(b)
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def magnification(log_volume: np.ndarray, margin: np.ndarray, near: float = NEAR_FRACTION) -> dict[str, float]:
    """The two statistics over the points with a finite log volume (NaN with fewer than 10)."""
    lv, m = np.asarray(log_volume, dtype=float), np.asarray(margin, dtype=float)
    ok = np.isfinite(lv) & np.isfinite(m)
    lv, dist = lv[ok], np.abs(m[ok])
    if lv.size < 10:
        return dict.fromkeys(STATISTICS, float("nan"))
    k = max(1, int(round(near * lv.size)))
    order = np.argsort(dist, kind="stable")
    return {
        "spearman": spearman(lv, -dist),
        "near_minus_rest": float(lv[order[:k]].mean() - lv[order[k:]].mean()),
    }


def compute(settings: Mapping[str, Any], seeds: tuple[int, ...], progress: Progress) -> Measurement:
    # lazy: training and geometry load torch (~2 s, measured); listing the claims must not pay for it
    import pandas as pd

    from ..data import load  # lazy: as above
    from ..geometry import grid_heatmap  # lazy: as above
    from ..specs import DataSpec, ModelSpec, RunSpec, TrainSpec
    from ..train import build_for, fit

    toys, activations = tuple(settings["toys"]), tuple(settings["activations"])
    stats, grids = [], []
    jobs = [(t, a, s) for t in toys for a in activations for s in seeds]
    for i, (toy, act, seed) in enumerate(jobs):
        progress.check()
        progress.update(i / len(jobs), f"{toy} {act} seed {seed}")
        spec = RunSpec(
            data=DataSpec(toy, seed=seed, params={"n_train": settings["n_train"]}),
            model=ModelSpec("mlp", params={"widths": tuple(settings["widths"]), "activation": act}),
            train=TrainSpec(epochs=settings["epochs"], lr=settings["lr"], seed=seed, device="cpu"),
        )
        dataset = load(spec.data)
        models = {"init": build_for(spec, dataset)}
        trained = build_for(spec, dataset)
        fit(trained, dataset, spec.train)
        models["trained"] = trained
        for state, model in models.items():
            grid = grid_heatmap(model, dataset.meta["bounds"], settings["resolution"], ricci=False, device="cpu")
            for name, value in magnification(grid["log_volume"].to_numpy(), grid["margin"].to_numpy()).items():
                stats.append(
                    {"toy": toy, "activation": act, "state": state, "seed": seed, "statistic": name, "value": value}
                )
            if seed == seeds[0]:
                grids.append(
                    grid[["x", "y", "log_volume", "margin"]].assign(toy=toy, activation=act, state=state, seed=seed)
                )
    progress.update(1.0, "done")
    table = pd.DataFrame(stats)
    rows = []
    for toy in toys:
        for act in activations:
            for state in ("trained", "init"):
                for name in STATISTICS:
                    sel = table[
                        (table["toy"] == toy)
                        & (table["activation"] == act)
                        & (table["state"] == state)
                        & (table["statistic"] == name)
                    ].sort_values("seed")
                    rows.append(
                        Row(
                            f"{toy}, {act}, {state}: {name}",
                            1.0 if state == "trained" else float("nan"),  # the paper's claim: > 0 after training
                            tuple(float(v) for v in sel["value"]),
                            RULE if state == "trained" else Reference(),
                        )
                    )
    grid_table = pd.concat(grids, ignore_index=True)
    grid_table["log_volume"] = grid_table["log_volume"].replace([np.inf, -np.inf], np.nan)
    figures = [
        FigureRef(
            "boundary_pair",
            "grids",
            f"{toy}, {act}: log10 √det g and the decision boundary, seed {seeds[0]}",
            {"toy": toy, "activation": act},
        )
        for toy in toys
        for act in activations
    ]
    figures += [
        FigureRef("magnification_points", "statistics", f"boundary magnification: {name} per seed", {"statistic": name})
        for name in STATISTICS
    ]
    return Measurement(rows=rows, tables={"statistics": table, "grids": grid_table}, figures=figures)


BASE = {"toys": ("xor", "sinusoid"), "activations": ("sigmoid", "erf", "relu"), "lr": 1e-2}
CLAIMS.add(
    "zavatone_veth2023_boundary",
    Claim(
        name="zavatone_veth2023_boundary",
        paper="Zavatone-Veth et al. 2023",
        statement="training magnifies the hidden-layer volume element near the decision boundary (2-D toys)",
        sizes={
            "test": Size(
                {
                    **BASE,
                    "toys": ("xor",),
                    "activations": ("relu",),
                    "widths": (8,),
                    "epochs": 2,
                    "n_train": 100,
                    "resolution": 12,
                },
                description="one toy, one activation, tiny net: for the test suite",
            ),
            "default": Size(
                {**BASE, "widths": (64,), "epochs": 30, "n_train": 1000, "resolution": 60},
                description="one hidden layer of 64, 30 epochs, 60×60 grid",
            ),
            "paper": Size(
                {**BASE, "widths": (250,), "epochs": 100, "n_train": 1000, "resolution": 200},
                description="one hidden layer of 250, 100 epochs, 200×200 grid",
            ),
        },
        compute=compute,
        default_seeds=3,
    ),
)
