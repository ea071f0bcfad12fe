"""Helpers behind the Streamlit pages: plain functions of the store, specs and job API.

Everything here is testable without a browser. ``widgets`` is the one module that uses
Streamlit itself (shared page pieces: run picker, figure with downloads, error box). Store
queries live in ``nngeo_core.store.queries`` and checkpoint uploads in ``nngeo_core.uploads``,
so the command line uses the same code.
"""
