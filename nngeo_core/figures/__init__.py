"""Pure plotly figure builders: a DataFrame (a stored result table) in, a ``go.Figure`` out.

No Streamlit, no store access, no computation beyond reshaping and aggregating the table, so every
figure is testable on its own and can be used from a notebook. One colour per pruning strategy,
everywhere: ``STRATEGY_COLORS`` / ``strategy_color``.
"""

from .colors import STRATEGY_COLORS, strategy_color

__all__ = ["STRATEGY_COLORS", "strategy_color"]
