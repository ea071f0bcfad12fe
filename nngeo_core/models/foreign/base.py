"""What every foreign-model loader shares: the result type, the ambiguity error, and the one-line
summary of what a state_dict holds (used when nothing fits)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import torch
from torch import nn

from ...errors import MAX_LINE, NNGeoError


class ForeignModel(NamedTuple):
    """A module built from someone else's file, and the spec (plain JSON data) that rebuilds it."""

    model: nn.Module
    spec: dict[str, Any]


class AmbiguousArchitecture(NNGeoError):
    """Several architectures fit the weights equally; the user must choose (never guessed).

    ``candidates`` are the names to choose from; ``option`` is what the choice sets: ``arch``
    (``--arch NAME`` on the CLI, the architecture choice on the Upload page) or ``activation``."""

    def __init__(self, what: str, candidates: Iterable[str], option: str = "arch") -> None:
        self.candidates = tuple(candidates)
        self.option = option
        where = "the architecture choice" if option == "arch" else "the activation choice"
        shown = ", ".join(self.candidates)
        super().__init__(
            fit_line(
                f"ambiguous: {what} fit {len(self.candidates)} choices ({shown}); "
                f"choose one with --{option} NAME on the CLI or {where} on the Upload page"
            )
        )


def fit_line(text: str, limit: int = MAX_LINE) -> str:
    """``text`` on one line of at most ``limit`` characters (cut at a word, with an ellipsis)."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0].rstrip(",;(")
    return cut + "…"


def shape_text(shape: Sequence[int]) -> str:
    return "×".join(str(int(d)) for d in shape) or "scalar"


# kinds of layer, in the order a summary lists them
_KINDS = ("conv", "conv1d", "conv3d", "linear", "attention", "batch-norm", "norm", "embedding", "other")
_CONV_BY_DIM = {3: "conv1d", 4: "conv", 5: "conv3d"}


def layer_kinds(state: Mapping[str, torch.Tensor]) -> Counter[str]:
    """How many layers of each kind a state_dict holds, read from its key names and shapes only:
    a module is the key's prefix; running statistics mark batch norm, a 4-D weight a 2-D conv."""
    modules: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        prefix, _, leaf = key.rpartition(".")
        modules.setdefault(prefix, {})[leaf] = value
    kinds: Counter[str] = Counter()
    for tensors in modules.values():
        weight = tensors.get("weight")
        if "running_mean" in tensors:
            kinds["batch-norm"] += 1
        elif "in_proj_weight" in tensors:
            kinds["attention"] += 1
        elif weight is None:
            kinds["other"] += 1
        elif weight.dim() in _CONV_BY_DIM:
            kinds[_CONV_BY_DIM[weight.dim()]] += 1
        elif weight.dim() == 2:
            kinds["linear"] += 1
        elif weight.dim() == 1:
            kinds["norm"] += 1
        else:
            kinds["other"] += 1
    return kinds


def describe_state(state: Mapping[str, torch.Tensor]) -> str:
    """E.g. "12 conv, 1 linear, 10 batch-norm (57 tensors)"."""
    kinds = layer_kinds(state)
    parts = [f"{kinds[k]} {k}" for k in _KINDS if kinds[k]]
    n = len(state)
    return f"{', '.join(parts) or 'no layers'} ({n} tensor{'' if n == 1 else 's'})"
