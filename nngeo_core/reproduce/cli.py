"""`nngeo reproduce CLAIM` (run or reopen a reproduction, print its claim table, write its HTML
report) and `nngeo reproduce --list` / `nngeo reproductions` (the registered claims).

Imported whenever the ``nngeo`` parser is built: the claim registry imports no torch (the claims
load it when they run), so listing and name checks answer at once.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..cli_args import print_json, print_table, progress_for
from ..errors import NNGeoError
from .base import SIZES
from .registry import CLAIMS


def claim_listing() -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "paper": c.paper,
            "statement": c.statement,
            "sizes": {s: size.description for s, size in c.sizes.items()},
            "default_seeds": c.default_seeds if c.seeded else None,
        }
        for name, c in CLAIMS.items()
    ]


def cmd_reproductions(a: argparse.Namespace) -> int:
    rows = claim_listing()
    if a.json:
        print_json(rows)
        return 0
    for r in rows:
        print(f"{r['name']:28s} {r['paper']}: {r['statement']}")
    return 0


def cmd_reproduce(a: argparse.Namespace) -> int:
    if a.list:
        return cmd_reproductions(a)
    if not a.claim:
        raise NNGeoError("give a claim (`nngeo reproduce --list` lists them)")
    claim = CLAIMS.get(a.claim)  # the registry's one-line error for an unknown name, before torch loads
    claim.size(a.size)
    # lazy: the report loads pandas, plotly and the store (~1 s, measured); `nngeo --help` must not pay
    from ..store import Store, default_store
    from .report import reproduce

    store = Store(a.store) if getattr(a, "store", None) else default_store()
    progress, bar = progress_for(f"reproduce {claim.name} ({a.size})", a.json)
    try:
        report, key, cached = reproduce(claim.name, a.size, a.seeds, store=store, force=a.force, progress=progress)
    finally:
        bar.close()
    if a.html:
        Path(a.html).write_text(report.to_html(), encoding="utf-8")
    if a.json:
        print_json({"key": key, "cached": cached, "store": store.root, "html": a.html, **report.to_json()})
        return 0
    word = "found in store" if cached else "reproduced"
    print(f"{word}: {report.title}  (key {key}, {report.seconds:.1f} s, nngeo {report.version})")
    shown = report.rows.drop(columns=["per_seed"])
    print_table(shown)
    if a.html:
        print(f"report: {a.html}", file=sys.stderr)
    return 0


def add_commands(sub: Any) -> None:
    """The hook ``nngeo_core.cli`` calls for each module in ``COMMAND_MODULES``."""
    p = sub.add_parser("reproduce", help="reproduce a paper's claim: paper value, measured value, verdict, report")
    p.add_argument("claim", nargs="?", help="a claim name (`nngeo reproduce --list`)")
    p.add_argument("--list", action="store_true", help="list the claims")
    p.add_argument("--size", choices=SIZES, default="default", help="test (seconds), default (<=10 min) or paper")
    p.add_argument("--seeds", type=int, default=None, help="number of seeds (default: the claim's own)")
    p.add_argument("--html", help="write the standalone HTML report to this path")
    p.add_argument("--store", default=argparse.SUPPRESS, help="store root (as the top-level --store)")
    p.add_argument("--force", action="store_true", help="compute again even if the report is stored")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_reproduce)

    q = sub.add_parser("reproductions", help="list the claims `nngeo reproduce` can reproduce")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_reproductions)
