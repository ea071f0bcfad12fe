"""One exception type for bad input, so the CLI and the app can print one clear line."""

from __future__ import annotations

import re

# ANSI colour codes (torch and rich put them into exception texts); never shown to a user
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
MAX_LINE = 300


class NNGeoError(ValueError):
    """A user-facing error: its message is one line that says what is wrong and what to do."""


def one_line(exc: BaseException | str, *, typed: bool | None = None, join: bool = False, limit: int = MAX_LINE) -> str:
    """The one line to show for an error: its first non-empty line (``join``: all its lines joined
    by spaces, for libraries whose messages span lines), ANSI codes removed, at most ``limit``
    characters. ``NNGeoError`` messages stand alone; other errors are prefixed with their type
    (``typed`` forces either). A plain string is treated as an error message."""
    text = _ANSI.sub("", exc if isinstance(exc, str) else str(exc))
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    first = " ".join(" ".join(lines).split()) if join else (lines[0] if lines else "")
    if len(first) > limit:
        first = first[: limit - 1].rstrip() + "…"
    if isinstance(exc, str):
        return first
    with_type = not isinstance(exc, NNGeoError) if typed is None else typed
    name = type(exc).__name__
    if not first:
        return name
    return f"{name}: {first}" if with_type else first
