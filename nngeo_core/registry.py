"""One generic registry: every named thing in nngeo (datasets, models, pruning strategies,
analyses, job kinds, figures) is an entry of a ``Registry``.

A registry maps a name to an entry, keeps registration order (the order users see), gives the one
unknown-name error (one line, with the known names), and imports the modules that register its
entries the first time anybody looks (``modules``), so the registry module itself imports nothing
above it and imports run one way: a registry's package lists its implementation modules; the
implementations import the registry.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

from .errors import NNGeoError

T = TypeVar("T")


class Registry(Generic[T]):
    """Named entries of one kind. ``what`` names the kind in messages ("pruning strategy")."""

    def __init__(
        self,
        what: str,
        *,
        modules: Iterable[str] = (),
        loader: Callable[[Registry[T]], None] | None = None,
        unknown_hint: str = "",
        missing: Callable[[str], T | None] | None = None,
    ) -> None:
        self.what = what
        self.modules: tuple[str, ...] = tuple(modules)
        self.loader = loader  # called once, before the modules: adds the built-in entries
        self.unknown_hint = unknown_hint  # appended to the known names (e.g. name patterns)
        # asked for a name nobody registered: its entry, or None (datasets stored since this process looked)
        self.missing = missing
        self._entries: dict[str, T] = {}
        self._loaded = not self.modules and loader is None
        self._loading = False

    def __repr__(self) -> str:
        return f"Registry({self.what!r}, {len(self._entries)} entries)"

    # -- registration ------------------------------------------------------------------------
    def add(self, name: str, entry: T) -> T:
        """Register ``entry`` under ``name`` (a later registration under the same name replaces it)."""
        if not isinstance(name, str) or not name:
            raise NNGeoError(f"a {self.what} needs a non-empty name, got {name!r}")
        self._entries[name] = entry
        return entry

    def remove(self, name: str) -> None:
        self._entries.pop(name, None)

    def pop(self, name: str, default: T | None = None) -> T | None:
        return self._entries.pop(name, default)

    def extend_modules(self, modules: Iterable[str]) -> None:
        """More modules to import on the next lookup (e.g. ``NNGEO_JOB_MODULES``)."""
        new = tuple(m for m in modules if m not in self.modules)
        if new:
            self.modules = self.modules + new
            self._loaded = False

    # -- loading -----------------------------------------------------------------------------
    def load(self) -> None:
        """Import the modules that register entries, once. A module that fails to import is an
        error: a missing piece of the package is a failure, never a silently shorter list."""
        if self._loaded or self._loading:
            return
        self._loading = True
        try:
            if self.loader is not None:
                self.loader(self)
            for mod in self.modules:
                try:
                    importlib.import_module(mod)
                except ImportError as exc:
                    raise NNGeoError(f"cannot import {mod!r}, which registers {self.what} entries: {exc}") from exc
            self._loaded = True
        finally:
            self._loading = False

    # -- lookup ------------------------------------------------------------------------------
    def unknown(self, name: object) -> NNGeoError:
        """The one-line error for a name that is not registered."""
        self.load()
        known = ", ".join(self._entries) or "none"
        hint = f", {self.unknown_hint}" if self.unknown_hint else ""
        return NNGeoError(f"unknown {self.what} {name!r}; known: {known}{hint}")

    def get(self, name: str) -> T:
        entry = self.find(name)
        if entry is None:
            raise self.unknown(name)
        return entry

    def find(self, name: object) -> T | None:
        """The entry, or None when ``name`` is not registered (no error)."""
        if not isinstance(name, str):
            return None
        if name not in self._entries:
            self.load()
            if name not in self._entries and self.missing is not None:
                entry = self.missing(name)
                if entry is not None:
                    self._entries[name] = entry
        return self._entries.get(name)

    def __contains__(self, name: object) -> bool:
        return self.find(name) is not None

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def names(self) -> list[str]:
        """Registered names, in registration order."""
        self.load()
        return list(self._entries)

    def items(self) -> list[tuple[str, T]]:
        self.load()
        return list(self._entries.items())

    def values(self) -> list[T]:
        self.load()
        return list(self._entries.values())

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        self.load()
        return len(self._entries)

    def keys(self) -> list[str]:
        return self.names()
