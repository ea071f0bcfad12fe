"""Reproductions of the four papers' claims: a registry of claims (``CLAIMS``), each with its
sizes, its computation from nngeo's own functions and a declared verdict rule; ``report`` turns a
run into a ``Report`` (claim table, figures, settings, version) that is stored and exported as a
standalone HTML file. This package imports nothing heavy: the claims load torch when they run."""

from .registry import CLAIMS

__all__ = ["CLAIMS"]
