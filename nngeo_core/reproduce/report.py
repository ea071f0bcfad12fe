"""A reproduction report: the claim table (paper value beside the measured mean ± std, the
verdict its rule computes), the tables its figures are drawn from, the settings and the package
version; stored in the Parquet store under the hash of its ``ReproduceSpec`` and written as one
standalone HTML file (plotly's JavaScript inline: it opens offline).

In the store a report is one ``reproduction`` result: the claim table is the result table, each
figure table an artefact ``<name>.parquet``, and title, settings, figures and seconds are in the
catalog row's attrs, so a stored report reopens without recomputing anything.
"""

from __future__ import annotations

import html
import io
import json
import math
import time
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
import pyarrow as pa
import pyarrow.parquet as pq

from .. import __version__
from ..errors import NNGeoError
from ..figures.reproduce import BUILDERS
from ..progress import Progress
from ..store import Store, parquet_bytes
from .base import Claim, FigureRef, Measurement, ReproduceSpec
from .registry import CLAIMS
from .verdicts import finite, paper_text

KIND = "reproduction"
ROW_COLUMNS = ["claim", "paper", "measured_mean", "measured_std", "n_seeds", "verdict", "rule", "per_seed"]


@dataclass
class Report:
    claim: str
    title: str
    rows: pd.DataFrame
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figure_refs: list[FigureRef] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    version: str = __version__
    seconds: float = 0.0

    def figures(self) -> list[go.Figure]:
        """The report's figures, drawn from its tables by the pure builders."""
        out = []
        for ref in self.figure_refs:
            table = self.rows if ref.table == "rows" else self.tables.get(ref.table)
            if table is None:
                raise NNGeoError(f"report {self.claim}: figure {ref.title!r} reads a missing table {ref.table!r}")
            out.append(BUILDERS[ref.builder](table, title=ref.title, **dict(ref.options)))
        return out

    def meta(self) -> dict[str, Any]:
        return {
            "claim": self.claim,
            "title": self.title,
            "figures": [
                {"builder": f.builder, "table": f.table, "title": f.title, "options": dict(f.options)}
                for f in self.figure_refs
            ],
            "settings": self.settings,
            "seconds": self.seconds,
            "tables": sorted(self.tables),
        }

    def equals(self, other: Report) -> bool:
        """Same claim table, figure tables, figures, settings and version."""
        return (
            self.meta() == other.meta()
            and self.version == other.version
            and _frames_equal(self.rows, other.rows)
            and all(_frames_equal(self.tables[k], other.tables[k]) for k in self.tables)
        )

    def to_json(self) -> dict[str, Any]:
        rows = [{**r, "per_seed": json.loads(r["per_seed"])} for r in self.rows.to_dict("records")]
        return {**self.meta(), "version": self.version, "rows": rows}

    def to_html(self) -> str:
        """One standalone HTML page: title, claim table, figures, settings, version."""
        parts = [
            "<!DOCTYPE html><html><head><meta charset='utf-8'>",
            f"<title>{html.escape(self.title)}</title>",
            "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}"
            "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}</style>",
            "</head><body>",
            f"<h1>{html.escape(self.title)}</h1>",
            f"<p>claim <code>{html.escape(self.claim)}</code>, nngeo {html.escape(self.version)}, "
            f"{self.seconds:.1f} s</p>",
            "<h2>Claims</h2>",
            self.rows.drop(columns="per_seed")
            .assign(
                paper=[paper_text(float(p), str(r)) for p, r in zip(self.rows["paper"], self.rows["rule"], strict=True)]
            )
            .to_html(index=False, na_rep="—", float_format=lambda v: f"{v:.6g}"),
            "<h2>Figures</h2>",
        ]
        for i, fig in enumerate(self.figures()):
            # plotly's JavaScript once, inline, with the first figure: the page needs no network
            parts.append(pio.to_html(fig, include_plotlyjs=i == 0, full_html=False, include_mathjax=False))
        parts += [
            "<h2>Settings</h2>",
            f"<pre>{html.escape(json.dumps(self.settings, indent=2, sort_keys=True, default=str))}</pre>",
            "</body></html>",
        ]
        return "\n".join(parts)


def _frames_equal(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    try:
        pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True), check_dtype=False)
    except AssertionError:
        return False
    return True


def claim_rows(measurement: Measurement) -> pd.DataFrame:
    """The claim table: per row the paper's value, mean and std (ddof 1; 0 for one value) of the
    finite measured values, their count, the verdict the row's rule computes and the rule's text."""
    out = []
    for row in measurement.rows:
        v = finite(row.values)
        mean = sum(v) / len(v) if v else math.nan
        std = math.sqrt(sum((x - mean) ** 2 for x in v) / (len(v) - 1)) if len(v) > 1 else (0.0 if v else math.nan)
        out.append(
            {
                "claim": row.name,
                "paper": float(row.paper),
                "measured_mean": mean,
                "measured_std": std,
                "n_seeds": len(v),
                "verdict": row.rule.verdict(row.paper, row.values),
                "rule": row.rule.text,
                "per_seed": json.dumps([float(x) if math.isfinite(x) else None for x in row.values]),
            }
        )
    return pd.DataFrame(out, columns=ROW_COLUMNS)


def build_report(claim: Claim, size: str = "default", seeds: int | None = None, progress: Progress | None = None):
    """Run the claim and put its report together (nothing is stored)."""
    start = time.monotonic()
    seed_list = claim.seed_list(seeds)
    measurement = claim.run(size, seeds, progress)
    return Report(
        claim=claim.name,
        title=f"{claim.paper}: {claim.statement}",
        rows=claim_rows(measurement),
        tables=dict(measurement.tables),
        figure_refs=list(measurement.figures),
        settings={"size": size, "seeds": list(seed_list), **_plain(claim.size(size).settings)},
        seconds=time.monotonic() - start,
    )


def _plain(settings) -> dict[str, Any]:
    return json.loads(json.dumps(dict(settings), default=lambda v: list(v) if isinstance(v, tuple) else str(v)))


def spec_for(claim: str, size: str = "default", seeds: int | None = None) -> ReproduceSpec:
    """The spec a report is keyed by (the claim looked up first: an unknown one is the registry's
    one-line error). ``seeds`` equal to the claim's default is left out of the key."""
    entry = CLAIMS.get(claim)
    entry.size(size)
    n = len(entry.seed_list(seeds))
    return ReproduceSpec(claim=claim, size=size, seeds=0 if n == entry.default_seeds or not entry.seeded else n)


def save_report(store: Store, spec: ReproduceSpec, report: Report) -> str:
    artifacts = {f"{name}.parquet": parquet_bytes(_arrow(table)) for name, table in report.tables.items()}
    verdicts = report.rows["verdict"]
    agree = int((verdicts == "agrees").sum())
    judged = int(verdicts.isin(["agrees", "differs"]).sum())
    return store.put(
        KIND,
        spec,
        report.rows,
        artifacts=artifacts,
        attrs={
            "method": report.claim,
            "label": f"{report.claim} ({spec.size}): {agree} of {judged} rows agree",
            "metric": agree / judged if judged else None,
            "report": json.dumps(report.meta(), sort_keys=True),
        },
    )


def _arrow(table: pd.DataFrame) -> pa.Table:
    return pa.Table.from_pandas(table, preserve_index=False)


def load_report(store: Store, key: str) -> Report:
    """A stored report, read back without recomputing."""
    entry = store.entry(key)
    if entry["kind"] != KIND:
        raise NNGeoError(f"result {entry['key']} is a {entry['kind']} result, not a reproduction report")
    meta = json.loads(json.loads(entry["attrs"])["report"])
    tables = {
        name: pq.read_table(io.BytesIO(store.read_artifact(entry["key"], f"{name}.parquet"))).to_pandas()
        for name in meta["tables"]
    }
    return Report(
        claim=meta["claim"],
        title=meta["title"],
        rows=store.get(entry["key"]),
        tables=tables,
        figure_refs=[FigureRef(f["builder"], f["table"], f["title"], f["options"]) for f in meta["figures"]],
        settings=meta["settings"],
        version=entry["version"],
        seconds=float(meta["seconds"]),
    )


def reproduce(
    claim: str,
    size: str = "default",
    seeds: int | None = None,
    *,
    store: Store | None = None,
    force: bool = False,
    progress: Progress | None = None,
) -> tuple[Report, str, bool]:
    """(report, key, cached): the stored report when there is one (unless ``force``), else a fresh
    run, stored. Bad input (unknown claim or size, missing data) is one line and stores nothing."""
    spec = spec_for(claim, size, seeds)
    entry = CLAIMS.get(claim)
    store = store or Store()
    if not force and store.exists(spec.hash):
        return load_report(store, spec.hash), spec.hash, True
    entry.check(size)
    report = build_report(entry, size, seeds, progress)
    return report, save_report(store, spec, report), False
