"""Curvature of graphs and networks (placeholder during development)."""
from .orc import ollivier_ricci  # noqa: F401
