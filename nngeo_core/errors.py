"""One exception type for bad input, so the CLI and the app can print one clear line."""


class NNGeoError(ValueError):
    """A user-facing error: its message is one line that says what is wrong and what to do."""
