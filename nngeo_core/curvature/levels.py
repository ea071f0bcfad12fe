"""Node levels of the edges in a curvature table. Only numpy and pandas, so ``nngeo_core.figures``
can use it without importing the curvature computation (torch)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def edge_levels(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(source level, target level) of every edge: the ``src_level``/``dst_level`` columns when the
    table has them, else layer k (numbered by first appearance) joins level k to level k + 1
    (every edge 0 -> 1 without a ``layer`` column)."""
    if {"src_level", "dst_level"} <= set(df.columns):
        return df["src_level"].to_numpy(), df["dst_level"].to_numpy()
    order = {name: i for i, name in enumerate(dict.fromkeys(df["layer"].astype(str)))} if "layer" in df else None
    src_level = df["layer"].astype(str).map(order).to_numpy() if order else np.zeros(len(df), int)
    return src_level, src_level + 1
