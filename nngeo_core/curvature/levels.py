"""Node levels of the edges in a curvature table and the curvature of each node. Only numpy and
pandas, so ``nngeo_core.figures`` can use it without importing the curvature computation (torch)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import NNGeoError


def edge_levels(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(source level, target level) of every edge: the ``src_level``/``dst_level`` columns when the
    table has them, else layer k (numbered by first appearance) joins level k to level k + 1
    (every edge 0 -> 1 without a ``layer`` column)."""
    if {"src_level", "dst_level"} <= set(df.columns):
        return df["src_level"].to_numpy(), df["dst_level"].to_numpy()
    order = {name: i for i, name in enumerate(dict.fromkeys(df["layer"].astype(str)))} if "layer" in df else None
    src_level = df["layer"].astype(str).map(order).to_numpy() if order else np.zeros(len(df), int)
    return src_level, src_level + 1


def node_curvature(df: pd.DataFrame) -> pd.DataFrame:
    """Mean curvature of the edges at each neuron: columns ``level``, ``unit``, ``curvature``, ``degree``.

    ``level`` numbers the node layers (a layer's outputs and the next layer's inputs share one
    where they link); tables without level columns number them by layer order.
    """
    need = {"src", "dst", "curvature"}
    if not need <= set(df.columns):
        raise NNGeoError(f"node_curvature needs columns {sorted(need)}")
    src_level, dst_level = edge_levels(df)
    both = pd.DataFrame(
        {
            "level": np.concatenate([src_level, dst_level]),
            "unit": np.concatenate([df["src"].to_numpy(), df["dst"].to_numpy()]),
            "curvature": np.concatenate([df["curvature"].to_numpy()] * 2),
        }
    )
    g = both.groupby(["level", "unit"], as_index=False)["curvature"]
    out = g.mean()
    out["degree"] = g.size()["size"].to_numpy()
    return out
