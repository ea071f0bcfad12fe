"""One colour per pruning strategy, the same on every page and in every figure.

Known strategies get hand-picked colours from a colour-blind-friendly palette; any other name
gets a colour from a second palette chosen by a stable hash of the name (sha256, not Python's
salted ``hash``), so a new strategy keeps its colour across processes and sessions.
"""

from __future__ import annotations

import hashlib

# Okabe-Ito plus Tol's muted palette: distinguishable for the common colour-vision deficiencies
STRATEGY_COLORS: dict[str, str] = {
    "dense": "#000000",
    "random": "#999999",
    "magnitude": "#0072B2",
    "wanda": "#56B4E9",
    "imp": "#009E73",
    "timp": "#882255",
    "snip": "#E69F00",
    "grasp": "#D55E00",
    "synflow": "#CC79A7",
    "curvature": "#117733",
    "curvature_neg": "#44AA99",
    "geodesic": "#332288",
}

# for strategies registered later: none of these is in STRATEGY_COLORS
FALLBACK_PALETTE = ("#DDCC77", "#88CCEE", "#CC6677", "#999933", "#661100", "#6699CC", "#AA4466", "#AA4499")


def strategy_color(name: str) -> str:
    """The colour of a strategy: fixed for known names, a stable hash pick for others."""
    key = str(name).strip().lower()
    if key in STRATEGY_COLORS:
        return STRATEGY_COLORS[key]
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return FALLBACK_PALETTE[digest[0] % len(FALLBACK_PALETTE)]


def with_alpha(hex_color: str, alpha: float) -> str:
    """'#RRGGBB' -> 'rgba(r,g,b,alpha)' (for mean ± std bands)."""
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"
