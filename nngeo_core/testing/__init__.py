"""Public conformance checks for registry entries (see ``checks``)."""
