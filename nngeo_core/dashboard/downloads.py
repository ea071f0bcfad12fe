"""Bytes for the download buttons: standalone figure HTML, tables as CSV or Parquet."""

from __future__ import annotations

import io
import re

import pandas as pd
import plotly.graph_objects as go

from ..errors import NNGeoError


# plotly's own toolbar saves PNG; these options name the file and double its resolution
def plotly_config(filename: str) -> dict:
    return {
        "displaylogo": False,
        "toImageButtonOptions": {"format": "png", "filename": safe_filename(filename), "scale": 2},
    }


def safe_filename(name: str) -> str:
    """A file name made of letters, digits, '-', '_' and '.' only."""
    cleaned = re.sub(r"[^\w.\-]+", "_", str(name)).strip("._")
    return cleaned[:100] or "nngeo"


def figure_html(fig: go.Figure) -> bytes:
    """A standalone HTML page of the figure, plotly.js embedded, so it opens offline."""
    return fig.to_html(include_plotlyjs=True, full_html=True).encode("utf-8")


def table_bytes(df: pd.DataFrame, fmt: str) -> bytes:
    if fmt == "csv":
        return df.to_csv(index=False).encode("utf-8")
    if fmt == "parquet":
        buf = io.BytesIO()
        _parquet_safe(df).to_parquet(buf, index=False)
        return buf.getvalue()
    raise NNGeoError(f"unknown table format {fmt!r}; use csv or parquet")


def _parquet_safe(df: pd.DataFrame) -> pd.DataFrame:
    """Object columns mixing types (e.g. '—' and numbers) are written as text."""
    out = df.copy()
    for c in out.columns:
        if out[c].dtype == object:
            kinds = {type(v) for v in out[c].dropna()}
            if len(kinds) > 1:
                out[c] = out[c].map(lambda v: None if v is None else str(v))
    return out
