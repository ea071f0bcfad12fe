"""Balwani & Krzyston (2022), the topologically critical compression ratio η_τ = |W| / |MST| of
the papers' architectures (their tables): fcn_mnist 66.77852 for the whole model; cnn_mnist
4.19251 per conv layer and 9.99641 for its dense layer. η_τ depends on the layer shapes alone, so
the claim needs no data and no seed. nngeo's per-filter convention (``conv="filter"``) is the
paper's; its multi-channel Toeplitz convention (``conv="toeplitz"``) is shown beside it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..progress import Progress
from .base import Claim, FigureRef, Measurement, Row, Size
from .registry import CLAIMS
from .verdicts import Within

PAPER_FCN_TOTAL = 66.77852
PAPER_CNN_CONV = 4.19251
PAPER_CNN_DENSE = 9.99641
# the paper prints 5 decimals: agreement to 1e-5 relative is agreement to its printed digits
RULE = Within(1e-5, relative=True)


def compute(settings: Mapping[str, Any], seeds: tuple[int, ...], progress: Progress) -> Measurement:
    # lazy: models and topology load torch (~2 s, measured); listing the claims must not pay for it
    import pandas as pd

    from ..models import build
    from ..topology import critical_compression  # lazy: as above

    progress.check()
    progress.update(0.0, "fcn_mnist")
    fcn = critical_compression(build("fcn_mnist"), conv="filter")
    cnn_model = build("cnn_mnist")
    progress.check()
    progress.update(0.3, "cnn_mnist")
    by_conv = {conv: critical_compression(cnn_model, conv=conv) for conv in ("filter", "toeplitz")}
    progress.update(0.9, "report")

    def eta(table, layer: str) -> float:
        return float(table.loc[table["layer"].astype(str) == layer, "eta_tau"].iloc[0])

    cnn = by_conv["filter"]
    conv_layers = [str(n) for n in cnn.loc[cnn["kind"] == "conv", "layer"]]
    dense_layers = [str(n) for n in cnn.loc[cnn["kind"] == "dense", "layer"]]
    rows = [Row("fcn_mnist η_τ, whole model", PAPER_FCN_TOTAL, (eta(fcn, "total"),), RULE)]
    for conv, label in (
        ("filter", "per-filter (paper's)"),
        ("toeplitz", "multi-channel Toeplitz (nngeo's alternative)"),
    ):
        rows += [
            Row(f"cnn_mnist η_τ, conv layer {n}, {label}", PAPER_CNN_CONV, (eta(by_conv[conv], n),), RULE)
            for n in conv_layers
        ]
    rows += [Row(f"cnn_mnist η_τ, dense layer {n}", PAPER_CNN_DENSE, (eta(cnn, n),), RULE) for n in dense_layers]

    layers = []
    for model, conv, table in (("fcn_mnist", "filter", fcn), *(("cnn_mnist", c, t) for c, t in by_conv.items())):
        for rec in table[table["kind"] != "skipped"].to_dict("records"):
            layer = str(rec["layer"])
            paper = float("nan")
            if model == "fcn_mnist" and layer == "total":
                paper = PAPER_FCN_TOTAL
            elif model == "cnn_mnist" and layer in conv_layers:
                paper = PAPER_CNN_CONV
            elif model == "cnn_mnist" and layer in dense_layers:
                paper = PAPER_CNN_DENSE
            layers.append(
                {
                    "model": model,
                    "convention": conv,
                    "layer": layer,
                    "n_edges": int(rec["n_edges"]),
                    "mst_size": int(rec["mst_size"]),
                    "eta_tau": float(rec["eta_tau"]),
                    "paper": paper,
                }
            )
    progress.update(1.0, "done")
    return Measurement(
        rows=rows,
        tables={"layers": pd.DataFrame(layers)},
        figures=[
            FigureRef("eta_tau_layers", "layers", "η_τ per layer: nngeo's two conv conventions and the paper"),
            FigureRef("paper_vs_measured", "rows", "η_τ: paper vs nngeo"),
        ],
    )


SIZE = Size({}, description="the papers' architectures (η_τ needs the layer shapes only)")

CLAIMS.add(
    "balwani2022_eta_tau",
    Claim(
        name="balwani2022_eta_tau",
        paper="Balwani & Krzyston 2022",
        statement="topologically critical compression ratio η_τ of fcn_mnist and cnn_mnist",
        sizes={"test": SIZE, "default": SIZE, "paper": SIZE},
        compute=compute,
        default_seeds=1,
        seeded=False,
    ),
)
