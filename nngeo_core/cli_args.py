"""What the ``nngeo`` sub-commands share: argument parsing (``--param k=v``, the run flags),
progress bars and JSON/table output. The command modules import this, never ``cli`` itself, so
imports run one way (``cli`` → command modules → ``cli_args``).

Heavy modules (torch via the defaults, pandas) are imported inside the helpers that need them:
`nngeo --help` builds every sub-command's parser and must start in a fraction of a second.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .errors import NNGeoError
from .progress import Progress
from .specs import DataSpec, ModelSpec, RunSpec


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


def run_spec_from_args(a: argparse.Namespace):
    # lazy: the defaults load every registry (torch, ~3 s); `nngeo --help` must not pay for them
    from .defaults import default_data_params, default_train

    model_params = parse_params(a.param)
    if a.widths:
        w = parse_value(a.widths)
        model_params["widths"] = w if isinstance(w, tuple) else (w,)
    if a.activation:
        model_params["activation"] = a.activation
    data = DataSpec(a.data, seed=a.data_seed, params=default_data_params(a.model, a.data, parse_params(a.data_param)))
    t = default_train(a.model, a.data)
    changes = {
        k: getattr(a, k)
        for k in ("epochs", "batch_size", "optimizer", "lr", "momentum", "weight_decay", "schedule")
        if getattr(a, k) is not None
    }
    if a.snapshots:
        s = parse_value(a.snapshots)
        changes["snapshots"] = tuple(int(e) for e in (s if isinstance(s, tuple) else (s,)))
    t = t.replace(seed=a.seed, device=a.device, **changes)
    return RunSpec(data=data, model=ModelSpec(a.model, model_params), train=t)


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
    print(json.dumps(obj, indent=2, default=_json_default))


def _json_default(o):
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    return str(o)


def print_table(df, max_rows: int = 60) -> None:
    import pandas as pd  # lazy: ~0.4 s; `nngeo --help` must not pay for it

    with pd.option_context(
        "display.max_rows", max_rows, "display.max_columns", 30, "display.width", 200, "display.max_colwidth", 40
    ):
        print(df.to_string(index=False) if len(df) else "(empty)")
