"""What the ``nngeo`` sub-commands share: argument parsing (``--param k=v``, the run flags),
progress bars and JSON/table output. The command modules import this, never ``cli`` itself, so
imports run one way (``cli`` → command modules → ``cli_args``).

Heavy modules (torch via the defaults, pandas) are imported inside the helpers that need them:
`nngeo --help` builds every sub-command's parser and must start in a fraction of a second; names
are checked against ``catalogue`` (no torch) before anything heavy loads.

Every parser is a ``OneLineParser``: a mistake on the command line prints one line and exits 2.
``print_json`` writes strict JSON (no NaN or Infinity, which JSON does not have).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any, NoReturn

from . import catalogue
from .errors import NNGeoError, one_line
from .progress import Progress
from .specs import RunSpec


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a mistake prints one line, ``nngeo: error: SUBCOMMAND: what is wrong (see
    `nngeo SUBCOMMAND --help`)``, and exits 2; argparse's own prints the usage block first.
    Sub-parsers are of the same class (``add_subparsers`` makes them with ``type(parent)``)."""

    def error(self, message: str) -> NoReturn:
        where = self.prog.split(" ", 1)[1] + ": " if " " in self.prog else ""
        text = " ".join(one_line(message, join=True, limit=10_000).split())  # whole: argparse's are short
        self.exit(2, f"nngeo: error: {where}{text} (see `{self.prog} --help`)\n")

    def parse_args(self, args=None, namespace=None):
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:  # argparse blames the top parser; the sub-command they were given to is told instead
            self.chosen(parsed).error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed

    def chosen(self, parsed: argparse.Namespace) -> argparse.ArgumentParser:
        """The deepest sub-command parser ``parsed`` went through (this one if none)."""
        for action in self._actions:
            parsers = getattr(action, "choices", None)
            if isinstance(parsers, dict) and getattr(parsed, action.dest, None) in parsers:
                sub = parsers[getattr(parsed, action.dest)]
                return sub.chosen(parsed) if isinstance(sub, OneLineParser) else sub
        return self


def parse_value(text: str) -> Any:
    """'3' -> 3, '0.5' -> 0.5, 'true' -> True, '64,64' -> (64, 64), else the string."""
    t = text.strip()
    if "," in t:
        return tuple(parse_value(p) for p in t.split(",") if p.strip())
    low = t.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(t)
        except ValueError:
            pass
    return t


def parse_params(items: list[str] | None) -> dict[str, Any]:
    out = {}
    for item in items or []:
        if "=" not in item:
            raise NNGeoError(f"expected KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        out[k.strip()] = parse_value(v)
    return out


def check_run_names(a: argparse.Namespace) -> None:
    """The model and dataset named by the run flags exist: the registries' own one-line errors,
    from the catalogue, before torch loads (seconds) for the run itself."""
    catalogue.check_model(a.model)
    catalogue.check_dataset(a.data)


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    """Flags that define a training run (shared by `train`, `jobs submit train`, `prune`)."""
    g = p.add_argument_group("run")
    g.add_argument("--model", default="mlp", help="zoo model name (see `nngeo models`)")
    g.add_argument("--data", default="xor", help="dataset name (see `nngeo datasets`)")
    g.add_argument("--widths", help="mlp hidden widths, e.g. 32,32")
    g.add_argument("--activation", help="mlp activation: relu, tanh, gelu, erf, sigmoid, softplus")
    g.add_argument("--param", action="append", metavar="K=V", help="extra model parameter (repeatable)")
    g.add_argument("--data-param", action="append", metavar="K=V", help="dataset parameter, e.g. resize=28")
    g.add_argument("--data-seed", type=int, default=0)
    g.add_argument("--epochs", type=int)
    g.add_argument("--batch-size", type=int)
    g.add_argument("--optimizer", choices=["adam", "sgd"])
    g.add_argument("--lr", type=float)
    g.add_argument("--momentum", type=float)
    g.add_argument("--weight-decay", type=float)
    g.add_argument("--schedule", choices=["constant", "cosine", "step"])
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--snapshots", help="epochs whose weights are kept, e.g. 0,5,10")
    g.add_argument("--device", default="auto", help="auto (cuda if present), cpu, cuda, mps")


def run_spec_from_args(a: argparse.Namespace) -> RunSpec:
    """The run the flags ask for, made by ``defaults.run_spec`` as the Train page's is (one run,
    one key, whichever way it is asked for)."""
    # lazy: the defaults load every registry (torch, ~3 s); `nngeo --help` must not pay for them
    from .defaults import run_spec

    model_params = parse_params(a.param)
    if a.widths:
        w = parse_value(a.widths)
        model_params["widths"] = w if isinstance(w, tuple) else (w,)
    if a.activation:
        model_params["activation"] = a.activation
    train = {
        k: getattr(a, k) for k in ("epochs", "batch_size", "optimizer", "lr", "momentum", "weight_decay", "schedule")
    }
    if a.snapshots:
        s = parse_value(a.snapshots)
        train["snapshots"] = tuple(int(e) for e in (s if isinstance(s, tuple) else (s,)))
    return run_spec(
        a.model,
        a.data,
        model_params=model_params,
        data_params=parse_params(a.data_param),
        data_seed=a.data_seed,
        train={**train, "seed": a.seed, "device": a.device},
    )


class ProgressBar:
    """A tqdm bar on stderr driven by ``Progress`` updates."""

    def __init__(self, desc: str, enabled: bool = True):
        self.desc, self.enabled = desc, enabled
        self.bar: Any = None  # a tqdm bar once the first report comes

    def __call__(self, fraction: float, phase: str, metrics: dict) -> None:
        if self.bar is None:  # created on the first report, so early errors print one line only
            from tqdm import tqdm  # lazy: ~40 ms, a quarter of `nngeo --help`'s start-up

            self.bar = tqdm(
                total=1000,
                desc=self.desc,
                file=sys.stderr,
                disable=not self.enabled,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {postfix}",
            )
        bar = self.bar
        bar.n = int(1000 * fraction)
        shown = {
            k: (f"{v:.4g}" if isinstance(v, float) else v)
            for k, v in metrics.items()
            if k in ("loss", "accuracy", "test_accuracy", "sparsity", "layer")
        }
        bar.set_postfix_str(" ".join([phase] + [f"{k}={v}" for k, v in shown.items()]), refresh=False)
        bar.refresh()

    def close(self):
        if self.bar is not None:
            self.bar.close()


def progress_for(desc: str, quiet: bool):
    bar = ProgressBar(desc, enabled=not quiet)
    return Progress(bar), bar


def print_json(obj: Any) -> None:
    """``obj`` as strict JSON on stdout: every command's ``--json`` goes through here."""
    print(json.dumps(jsonable(obj), indent=2, allow_nan=False))


def jsonable(o: Any) -> Any:
    """``o`` with only what strict JSON holds: NaN and ±inf become null (JSON has no such numbers),
    numpy/torch scalars and arrays plain numbers and lists, tuples and sets lists, paths and other
    objects their text; ``allow_nan=False`` in ``print_json`` catches anything that slips through."""
    if o is None or isinstance(o, (str, bool, int)):
        return o
    if isinstance(o, float):
        return float(o) if math.isfinite(o) else None
    if isinstance(o, Mapping):
        return {_json_key(k): jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in (sorted(o, key=repr) if isinstance(o, (set, frozenset)) else o)]
    if hasattr(o, "tolist"):  # numpy or torch scalars and arrays, without importing either here
        return jsonable(o.tolist())
    if isinstance(o, (datetime, date)):
        return o.isoformat()
    if isinstance(o, os.PathLike):
        return os.fspath(o)
    return str(o)


def _json_key(k: Any) -> str | int | float | bool | None:
    k = k.tolist() if hasattr(k, "tolist") else k
    return k if k is None or isinstance(k, (str, int, float, bool)) else str(k)


def print_table(df, max_rows: int = 60) -> None:
    import pandas as pd  # lazy: ~0.4 s; `nngeo --help` must not pay for it

    with pd.option_context(
        "display.max_rows", max_rows, "display.max_columns", 30, "display.width", 200, "display.max_colwidth", 40
    ):
        print(df.to_string(index=False) if len(df) else "(empty)")
