"""The line between two chosen inputs, as stored with the plane through three of them.

``geometry.image_plane`` evaluates the segment from its first to its second input at points of
the segment itself (rows with anchor −2 and their t); this takes those rows out of the table.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import NNGeoError

LINE_VALUES = ("log_volume", "log_area", "rank", "pred", "entropy", "p_max")


def line_of_plane(plane: pd.DataFrame) -> pd.DataFrame | None:
    """Columns t (0 at the first input, 1 at the second), distance (along the segment, input
    units) and the quantities computed on it; None when the table has no line (a plane stored by
    an older version)."""
    if "anchor" not in plane.columns:
        raise NNGeoError("the plane table has no anchor rows (the chosen inputs)")
    rows = plane[plane["anchor"] == -2]
    if not len(rows) or "t" not in rows.columns:
        return None
    anchors = plane[plane["anchor"] >= 0].set_index("anchor")
    if 0 not in anchors.index or 1 not in anchors.index:
        raise NNGeoError("the plane has no rows for its first two inputs")
    # the plane is isometric to input space: the segment's length is the anchors' distance
    length = float(
        np.linalg.norm(anchors.loc[1, ["u", "v"]].to_numpy(float) - anchors.loc[0, ["u", "v"]].to_numpy(float))
    )
    rows = rows.sort_values("t")
    out = {"t": rows["t"].to_numpy(float), "distance": rows["t"].to_numpy(float) * length}
    out.update({c: rows[c].to_numpy() for c in LINE_VALUES if c in rows.columns})
    return pd.DataFrame(out)
