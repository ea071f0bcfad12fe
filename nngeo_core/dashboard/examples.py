"""The example checkpoints in assets/examples (made by assets/make_examples.py)."""

from __future__ import annotations

from pathlib import Path

from ..errors import NNGeoError
from ..specs import DataSpec

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "assets" / "examples"

# name shown on the button -> (file, dataset it was trained on)
EXAMPLES: dict[str, tuple[str, DataSpec]] = {
    "mlp on xor": ("mlp_xor.safetensors", DataSpec("xor")),
    "fcn_mnist on digits (28×28)": ("fcn_mnist_digits.safetensors", DataSpec("digits", params={"resize": 28})),
}


def example_path(name: str) -> Path:
    if name not in EXAMPLES:
        raise NNGeoError(f"unknown example {name!r}; known: {', '.join(EXAMPLES)}")
    return EXAMPLES_DIR / EXAMPLES[name][0]


def available_examples() -> list[str]:
    return [n for n in EXAMPLES if example_path(n).is_file()]


def example_bytes(name: str) -> bytes:
    path = example_path(name)
    if not path.is_file():
        raise NNGeoError(f"example file {path.name} is missing; run `python assets/make_examples.py`")
    return path.read_bytes()
