"""The registry of reproducible claims. It lists the modules that register claims; those modules
import this one (the one-way registry pattern), so looking a name up imports them once."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..registry import Registry

if TYPE_CHECKING:
    from .base import Claim

CLAIM_MODULES = (
    "nngeo_core.reproduce.balwani2022",
    "nngeo_core.reproduce.zavatone2023",
    "nngeo_core.reproduce.tan2026",
    "nngeo_core.reproduce.raghavan2020",
    "nngeo_core.reproduce.balwani2022_overlap",
)

CLAIMS: Registry[Claim] = Registry("claim", modules=CLAIM_MODULES)
