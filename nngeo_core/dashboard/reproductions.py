"""What the Reproduce page shows of a report, as plain functions (no Streamlit): the claim table
with the measured value as one "mean ± std" text, and the report's file name."""

from __future__ import annotations

import math

import pandas as pd

from ..reproduce.verdicts import paper_text
from .downloads import safe_filename

SHOWN_COLUMNS = ["claim", "paper", "measured", "n_seeds", "verdict", "rule"]


def measured_text(mean: float, std: float, n: int) -> str:
    """'12.3 ± 0.45' over several seeds, '12.3' for one value, '—' when nothing finite was measured."""
    if n < 1 or not math.isfinite(mean):
        return "—"
    if n == 1 or not math.isfinite(std):
        return f"{mean:.6g}"
    return f"{mean:.6g} ± {std:.2g}"


def claim_table(rows: pd.DataFrame) -> pd.DataFrame:
    """A report's claim table (``report.ROW_COLUMNS``) as the page shows it: claim · paper ·
    measured (mean ± std over the seeds) · seeds · verdict · rule."""
    measured = [
        measured_text(float(m), float(s), int(n))
        for m, s, n in zip(rows["measured_mean"], rows["measured_std"], rows["n_seeds"], strict=True)
    ]
    paper = [paper_text(float(p), str(r)) for p, r in zip(rows["paper"], rows["rule"], strict=True)]
    out = rows.assign(measured=measured, paper=paper)
    return out[SHOWN_COLUMNS].reset_index(drop=True)


def report_filename(claim: str, size: str, key: str) -> str:
    """The standalone report's file name: claim, size and key, safe on every file system."""
    return f"{safe_filename(f'{claim}-{size}-{key[:8]}')}.html"
