"""The line between two chosen inputs, read off a stored plane through three of them.

Both inputs lie in the plane (they are two of its three anchors), so the segment between them
is a segment of the plane: its values are interpolated bilinearly from the plane's grid. This
costs nothing beyond the stored plane; ``geometry.image_line`` computes the exact values.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import NNGeoError

LINE_VALUES = ("log_volume", "log_area", "entropy", "p_max")


def line_from_plane(plane: pd.DataFrame, first: int = 0, second: int = 1, n_points: int = 101) -> pd.DataFrame:
    """Columns t (0 at anchor ``first``, 1 at ``second``), distance (along the segment, input
    units) and the plane's quantities interpolated at each point."""
    from scipy.interpolate import RegularGridInterpolator

    if "anchor" not in plane.columns:
        raise NNGeoError("the plane table has no anchor rows (the chosen inputs)")
    anchors = plane[plane["anchor"] >= 0].set_index("anchor")
    if first not in anchors.index or second not in anchors.index:
        raise NNGeoError(f"the plane has no anchors {first} and {second}")
    grid = plane[plane["anchor"] < 0]
    us, vs = np.sort(grid["u"].unique()), np.sort(grid["v"].unique())
    if len(us) * len(vs) != len(grid):
        raise NNGeoError("the plane's grid is not a full u × v grid")
    p0 = anchors.loc[first, ["u", "v"]].to_numpy(dtype=float)
    p1 = anchors.loc[second, ["u", "v"]].to_numpy(dtype=float)
    t = np.linspace(0.0, 1.0, int(n_points))
    pts = p0[None, :] + t[:, None] * (p1 - p0)[None, :]
    out = {"t": t, "distance": t * float(np.linalg.norm(p1 - p0))}
    ordered = grid.sort_values(["v", "u"])
    for col in (c for c in LINE_VALUES if c in grid.columns):
        z = ordered[col].to_numpy(dtype=float).reshape(len(vs), len(us))
        interp = RegularGridInterpolator((vs, us), z, method="linear", bounds_error=False, fill_value=np.nan)
        out[col] = interp(pts[:, ::-1])
    return pd.DataFrame(out)
