"""Compare stored pruning sweeps: accuracy vs sparsity over seeds, the Pareto frontier, the highest
sparsity each run reaches within Δ of dense accuracy, and the settings that differ between runs."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import NNGeoError
from ..store import Store, default_store

DEFAULT_DELTA = 0.01  # one accuracy point (accuracies are fractions)
REQUIRED = ("strategy", "seed", "sparsity_requested", "sparsity_achieved", "accuracy")


@dataclass
class Comparison:
    table: pd.DataFrame  # one row per (label, level): mean/std/n over seeds
    pareto: pd.DataFrame  # the non-dominated (sparsity, accuracy) points over all labels
    within_delta: pd.DataFrame  # per label: highest sparsity within delta of dense accuracy
    settings: pd.DataFrame  # per run: only the settings that differ between runs
    delta: float = DEFAULT_DELTA
    labels: dict[str, str] = field(default_factory=dict)  # sweep key -> label
    rows: pd.DataFrame = field(default_factory=pd.DataFrame)  # the compared sweep rows, with their label

    def accuracy_pivot(self, column: str = "accuracy") -> pd.DataFrame:
        """Levels as rows, labels as columns, 'mean ± std' strings (what the CLI prints).

        ``column``: "accuracy" (after fine-tuning) or "accuracy_pruned" (right after pruning)."""
        mean, std = f"{column}_mean", f"{column}_std"
        if self.table.empty or mean not in self.table.columns:
            return pd.DataFrame()
        t = self.table.assign(
            cell=[
                f"{m:.4f} ± {s:.4f}" if np.isfinite(s) else f"{m:.4f}"
                for m, s in zip(self.table[mean], self.table[std], strict=False)
            ]
        )
        out = t.pivot(index="sparsity_requested", columns="label", values="cell").fillna("")
        out.columns.name = None
        return out.reset_index()

    def to_dict(self) -> dict[str, Any]:
        def records(df):
            return json.loads(df.to_json(orient="records"))

        return {
            "delta": self.delta,
            "table": records(self.table),
            "pareto": records(self.pareto),
            "within_delta": records(self.within_delta),
            "settings": records(self.settings),
            "labels": dict(self.labels),
        }


def load_sweeps(keys: Iterable[str], store: Store | None = None) -> tuple[pd.DataFrame, dict[str, dict]]:
    """Rows of the given prune-sweep results (a ``sweep`` column names each) and their specs."""
    store = store or default_store()
    frames, specs = [], {}
    for k in keys:
        entry = store.entry(k)
        if entry["kind"] != "prune-sweep":
            raise NNGeoError(f"result {entry['key'][:12]} is a {entry['kind']} result, not a prune-sweep")
        df = store.get(entry["key"]).assign(sweep=entry["key"])
        frames.append(df)
        specs[entry["key"]] = json.loads(entry["spec"])
    if not frames:
        raise NNGeoError("nothing to compare: give at least one prune-sweep key")
    return pd.concat(frames, ignore_index=True), specs


def flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    """{'run': {'train': {'lr': 0.1}}} -> {'run.train.lr': 0.1}; type tags dropped, lists as JSON."""
    out: dict[str, Any] = {}
    if isinstance(d, dict):
        for k, v in d.items():
            if k == "__type__":
                continue
            out.update(flatten(v, f"{prefix}{k}."))
    elif isinstance(d, (list, tuple)):
        out[prefix[:-1]] = json.dumps(d)
    else:
        out[prefix[:-1]] = d
    return out


def settings_diff(specs: dict[str, dict]) -> pd.DataFrame:
    """One row per run, only the columns whose values differ between runs."""
    if not specs:
        return pd.DataFrame()
    # object dtype: ints stay ints where other runs lack the setting (no NaN-driven float casts)
    flat = pd.DataFrame([{"sweep": k, **flatten(v)} for k, v in specs.items()], dtype=object)
    keep = ["sweep"] + [c for c in flat.columns if c != "sweep" and flat[c].astype(str).nunique(dropna=False) > 1]
    return flat[keep].reset_index(drop=True)


def _labels(rows: pd.DataFrame, diff: pd.DataFrame) -> dict[str, str]:
    """Label per sweep: its strategy (as ``specs.strategy_label`` names it: "IMP without
    rewinding"), plus the differing settings when strategies repeat."""
    by_sweep = rows.groupby("sweep")["strategy"].first()
    if "strategy_label" in rows.columns:  # sweeps stored before the column have only the strategy
        named = rows.groupby("sweep")["strategy_label"].first()
        by_sweep = named.where(named.notna(), by_sweep).astype(str)
    labels = {}
    for sweep, strategy in by_sweep.items():
        same = [s for s, st in by_sweep.items() if st == strategy]
        if len(same) == 1:
            labels[sweep] = str(strategy)
            continue
        extra = []
        if not diff.empty:
            r = diff[diff["sweep"] == sweep]
            for c in diff.columns:
                if c in ("sweep", "strategy") or r.empty:
                    continue
                others = diff[diff["sweep"].isin(same)][c].astype(str)
                if others.nunique() > 1:
                    extra.append(f"{c.split('.')[-1]}={r.iloc[0][c]}")
        labels[sweep] = f"{strategy} ({', '.join(extra) if extra else sweep[:8]})"
    return labels


def pareto_frontier(points: pd.DataFrame, x: str = "sparsity", y: str = "accuracy") -> pd.DataFrame:
    """Points not dominated by another with x >= and y >= (one strictly), sorted by x."""
    if points.empty:
        return points.copy()
    order = points.sort_values([x, y], ascending=[False, False]).reset_index(drop=True)
    best_after = np.maximum.accumulate(order[y].to_numpy())
    # a point is on the frontier when no point of larger-or-equal x has a larger-or-equal y
    prev_best = np.concatenate([[-np.inf], best_after[:-1]])
    keep = order[y].to_numpy() > prev_best
    return order[keep].sort_values(x).reset_index(drop=True)


def compare(
    source: Iterable[str] | pd.DataFrame, *, store: Store | None = None, delta: float = DEFAULT_DELTA
) -> Comparison:
    """Aggregate sweeps (keys, or a DataFrame of sweep rows) over seeds and compare them."""
    if not (np.isfinite(delta) and delta >= 0):
        raise NNGeoError(f"delta must be a number >= 0 (accuracy as a fraction), got {delta!r}")
    if isinstance(source, pd.DataFrame):
        rows = source.copy()
        specs: dict[str, dict] = {}
        if "sweep" not in rows.columns:
            rows["sweep"] = rows["strategy"].astype(str)
    else:
        keys = [source] if isinstance(source, str) else list(source)
        rows, specs = load_sweeps(keys, store)
    missing = [c for c in REQUIRED if c not in rows.columns]
    if missing:
        raise NNGeoError(f"the rows lack column {missing[0]!r}; compare needs prune-sweep rows")
    diff = settings_diff(specs)
    labels = _labels(rows, diff)
    rows = rows.assign(label=rows["sweep"].map(labels))
    agg = dict(
        sparsity=("sparsity_achieved", "mean"),
        accuracy_mean=("accuracy", "mean"),
        accuracy_std=("accuracy", "std"),
        n=("accuracy", "size"),
    )
    if "accuracy_pruned" in rows.columns:
        agg.update(accuracy_pruned_mean=("accuracy_pruned", "mean"), accuracy_pruned_std=("accuracy_pruned", "std"))
    if "finetune_epochs" in rows.columns:
        agg.update(finetune_epochs=("finetune_epochs", "max"))
    if "flops_fraction" in rows.columns:
        agg.update(flops_fraction=("flops_fraction", "mean"))
    table = (
        rows.groupby(["label", "strategy", "sparsity_requested"], as_index=False)
        .agg(**agg)
        .sort_values(["label", "sparsity_requested"])
        .reset_index(drop=True)
    )
    pareto = pareto_frontier(
        table.rename(columns={"accuracy_mean": "accuracy"})[["label", "sparsity_requested", "sparsity", "accuracy"]]
    )
    within = []
    for label, grp in table.groupby("label"):
        dense = rows[rows["label"] == label]
        dense_acc = float(dense["dense_accuracy"].mean()) if "dense_accuracy" in dense else float("nan")
        ok = grp[grp["accuracy_mean"] >= dense_acc - delta - 1e-12] if np.isfinite(dense_acc) else grp.iloc[:0]
        best = ok.loc[ok["sparsity_requested"].idxmax()] if len(ok) else None
        within.append(
            dict(
                label=label,
                dense_accuracy=dense_acc,
                max_sparsity=float(best["sparsity_requested"]) if best is not None else float("nan"),
                accuracy_there=float(best["accuracy_mean"]) if best is not None else float("nan"),
            )
        )
    within_df = (
        pd.DataFrame(within).sort_values("max_sparsity", ascending=False, na_position="last").reset_index(drop=True)
        if within
        else pd.DataFrame()
    )
    if not diff.empty:
        diff = diff.assign(label=diff["sweep"].map(labels))
        diff = diff[["label", "sweep"] + [c for c in diff.columns if c not in ("label", "sweep")]]
    return Comparison(
        table=table, pareto=pareto, within_delta=within_df, settings=diff, delta=delta, labels=labels, rows=rows
    )
