"""Sharded curvature: one curvature analysis of a large model split into shards, each an ordinary
queued job computing some of its weight layers, so several workers (Redis, several GPUs) share
it; the shards' tables are merged into the table the unsharded analysis stores, under its key.

``shard_specs(spec, n, store=...)`` splits a ``curvature`` or ``curvature_weights`` AnalysisSpec
into at most ``n`` ``ShardSpec``s: the model's weight layers (those the analysis computes, in
forward order, or the ones its ``layers`` names) cut into contiguous groups whose largest edge
count is as small as it can be (a dense layer has out x in edges, a conv layer out x in/groups x
kh x kw per computed output position). Fewer shards than ``n`` when the model has fewer layers:
no shard is ever empty.

A shard runs the ``analyse`` kind on the whole analysis with ``layers=`` its group, so it is
stored as an ordinary analysis under its own key (the one `nngeo analyse --param layers=...`
would give) and a resubmission reuses every shard already stored: only missing or failed shards
run again. A layer's rows depend only on the layer (its edges are computed on the whole neuron
graph), so concatenating the shards' rows in layer order, with the skipped-module rows once at
the end, is the unsharded table row for row. A shard that finishes and finds every sibling
stored merges them (``merge_if_complete``): no job ever waits for another (one worker cannot
deadlock), and two shards finishing together both write the same table (the store's writes are
atomic), which is harmless. ``submit_sharded`` queues the shards (or merges at once when they are
all stored); ``run_sharded`` computes them here, one after another.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..analyses import analysis_attrs
from ..errors import NNGeoError, one_line
from ..progress import Progress
from ..specs import AnalysisSpec, SpecBase, register_spec
from .backend import JobBackend, JobInfo
from .registry import get_job_kind, register_job_kind

if TYPE_CHECKING:
    import pandas as pd

    from ..store import Store

SHARDABLE = ("curvature", "curvature_weights")
SKIPPED = "skipped"  # the ``kind`` of a module's row that has no layer graph (once per table)


@register_spec
@dataclass(frozen=True, eq=True)
class ShardSpec(SpecBase):
    """Shard ``index`` of the sharded ``analysis``: its layers are ``groups[index]``; ``groups``
    (comma-separated layer names, one entry per shard, in layer order) names every sibling."""

    analysis: AnalysisSpec = field(default_factory=AnalysisSpec)
    groups: tuple[str, ...] = ()
    index: int = 0
    kind: str = "analyse-shard"


@dataclass
class ShardedJob:
    """What ``submit_sharded`` did: ``key`` is where the merged table is (or will be) stored."""

    key: str
    groups: tuple[str, ...]
    jobs: list[JobInfo]
    done: bool  # the merged table is stored


def part_spec(whole: AnalysisSpec, group: str) -> AnalysisSpec:
    """The analysis of one shard: ``whole`` on the layers ``group``."""
    return whole.replace(params={**dict(whole.params), "layers": group})


def _check(spec: AnalysisSpec, n: Any) -> int:
    if not isinstance(spec, AnalysisSpec) or spec.method not in SHARDABLE:
        what = spec.method if isinstance(spec, AnalysisSpec) else type(spec).__name__
        raise NNGeoError(f"only the {' and '.join(SHARDABLE)} analyses split into shards, not {what!r}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise NNGeoError(f"the number of shards must be a whole number >= 1, got {n!r}")
    if dict(spec.params or {}).get("null_models"):
        # a shard holds some layers of every model; merged, the null rows would come out of order
        raise NNGeoError("null models are not split into shards; run the analysis with them unsharded")
    return n


def balanced_groups(weights: list[int], n: int) -> list[list[int]]:
    """Indices 0..len(weights)-1 cut into min(n, len) contiguous, non-empty groups whose largest
    sum is the smallest possible (ties: the earliest cuts). Exact dynamic programme."""
    m = len(weights)
    if m == 0:
        raise NNGeoError("the analysis has no weight layers to split into shards")
    n = min(n, m)
    prefix = [0]
    for w in weights:
        prefix.append(prefix[-1] + int(w))
    inf = float("inf")
    # best[j][i]: the smallest largest sum of the first i items in j groups; cut[j][i]: the last group's start
    best = [[inf] * (m + 1) for _ in range(n + 1)]
    cut = [[0] * (m + 1) for _ in range(n + 1)]
    best[0][0] = 0
    for j in range(1, n + 1):
        for i in range(j, m - (n - j) + 1):
            for s in range(j - 1, i):
                value = max(best[j - 1][s], prefix[i] - prefix[s])
                if value < best[j][i]:
                    best[j][i], cut[j][i] = value, s
    groups, i = [], m
    for j in range(n, 0, -1):
        s = cut[j][i]
        groups.append(list(range(s, i)))
        i = s
    return groups[::-1]


def layer_edges(spec: AnalysisSpec, store: Store) -> list[tuple[str, int]]:
    """(name, edges computed) of every weight layer ``spec`` computes, in forward order."""
    # lazy, all of these: torch (seconds), which importing the job kinds (`nngeo jobs list`) must not pay
    from ..curvature.analyses import preset_params
    from ..curvature.layer_graph import build_network
    from ..curvature.neural import preset_settings
    from ..models.base import builder_name, builder_renames  # lazy: torch
    from ..models.layers import fold_batchnorm  # lazy: torch
    from ..runs import load_run  # lazy: torch

    ckpt = load_run(spec.run, store=store, epoch=spec.epoch)
    model = ckpt.model.eval()
    shape = getattr(model, "input_shape", None)
    if shape is None and ckpt.data_spec is not None:
        from ..data import load as load_data  # lazy: torchvision

        shape = tuple(load_data(ckpt.data_spec).x_test.shape[1:])
    if shape is None:
        raise NNGeoError(f"model {spec.run} does not say its input shape, so its layers cannot be split into shards")
    shape = tuple(int(s) for s in shape)
    folded, _ = fold_batchnorm(model, shape)
    net, _ = build_network(folded, shape)
    params = dict(spec.params)
    if spec.method == "curvature":
        positions = preset_settings(params["preset"], **preset_params(params))["conv_positions"]
    else:
        positions = None if params.get("conv_positions") is None else int(params["conv_positions"])
    renames = builder_renames(model)
    names = [lay.name for lay in net.layers]
    chosen = set(range(len(names)))
    if params.get("layers") is not None:  # as the analysis reads it: our names or the builder's
        index = {name: k for k, name in enumerate(names)}
        index.update({builder_name(renames, name): k for k, name in enumerate(names)})
        wanted = [w.strip() for w in str(params["layers"]).split(",") if w.strip()]
        unknown = [w for w in wanted if w not in index]
        if unknown or not wanted:
            shown = ", ".join(builder_name(renames, name) for name in names)
            first = unknown[0] if unknown else "(none given)"
            raise NNGeoError(one_line(f"no weight layer named {first!r}; the layers are {shown}"))
        chosen = {index[w] for w in wanted}
    out = []
    for k, lay in enumerate(net.layers):
        if k not in chosen:
            continue
        if lay.kind == "conv":
            edges = len(lay.positions(positions)) * int(lay.W.shape[0]) * lay.cin_g * lay.kh * lay.kw
        else:
            edges = lay.n_out * lay.n_in
        out.append((lay.name, int(edges)))
    return out


def shard_specs(spec: AnalysisSpec, n: int, *, store: Store | None = None) -> list[ShardSpec]:
    """``spec`` (a curvature analysis) as at most ``n`` shards balanced by edge count."""
    from ..store import default_store  # lazy: pandas

    n = _check(spec, n)
    store = store if store is not None else default_store()
    whole = get_job_kind("analyse").prepare(spec, store)
    _check(whole, n)
    layers = layer_edges(whole, store)
    groups = tuple(",".join(layers[k][0] for k in g) for g in balanced_groups([e for _, e in layers], n))
    return [ShardSpec(analysis=whole, groups=groups, index=i) for i in range(len(groups))]


def merge_tables(tables: list[pd.DataFrame]) -> pd.DataFrame:
    """The shards' tables (in shard order) as one: their computed rows in order, then the
    skipped-module rows (every shard has the same ones) once."""
    import pandas as pd  # lazy: 1.4 s

    computed = [t[t["kind"] != SKIPPED] for t in tables]
    parts = [t for t in computed if len(t)] or computed[:1]
    skipped = tables[0][tables[0]["kind"] == SKIPPED]
    if len(skipped):
        parts.append(skipped)
    return pd.concat(parts, ignore_index=True)


def merge_if_complete(whole: AnalysisSpec, groups: tuple[str, ...], store: Store) -> str | None:
    """Store the merged table under ``whole``'s key once every shard is stored; its key, or None
    while a shard is missing. Idempotent: a second merge writes the same table again."""
    if store.exists(whole.hash):
        return whole.hash
    keys = [part_spec(whole, g).hash for g in groups]
    if not all(store.exists(k) for k in keys):
        return None
    table = merge_tables([store.get(k) for k in keys])
    return store.put("analyse", whole, table, attrs=analysis_attrs(whole, store))


def normalize_shard(spec: ShardSpec, store: Store) -> ShardSpec:
    whole = get_job_kind("analyse").prepare(spec.analysis, store)
    _check(whole, len(spec.groups) or 1)
    if not spec.groups or not all(spec.groups) or not (0 <= int(spec.index) < len(spec.groups)):
        raise NNGeoError(f"shard {spec.index} of {len(spec.groups)} layer groups does not exist")
    return spec if whole == spec.analysis else spec.replace(analysis=whole)


def analyse(spec: AnalysisSpec, *, store: Store, progress: Progress) -> str:
    """The ``analyse`` kind's computation (``kinds.analyse_job``, which imports this module)."""
    return get_job_kind("analyse").fn(spec, store=store, progress=progress)


def shard_job(spec: ShardSpec, *, store: Store, progress: Progress) -> str:
    """Compute (or find) this shard's analysis, then merge if every sibling is stored."""
    spec = normalize_shard(spec, store)
    key = analyse(part_spec(spec.analysis, spec.groups[spec.index]), store=store, progress=progress)
    merged = merge_if_complete(spec.analysis, spec.groups, store)
    if merged is not None:
        progress.update(1.0, f"merged {len(spec.groups)} shards into {merged}", force=True)
    return key


def describe_shard(spec: ShardSpec) -> str:
    a = spec.analysis
    return f"analyse {a.method} of {a.run[:8]} shard {spec.index + 1}/{len(spec.groups)} ({spec.groups[spec.index]})"


def submit_sharded(
    spec: AnalysisSpec, n: int, *, store: Store | None = None, backend: JobBackend | None = None
) -> ShardedJob:
    """Queue ``spec`` as ``n`` shards (fewer for a model with fewer layers); stored shards are
    served from the store, and when all are stored the merge happens here. With one shard, or a
    merged table already stored, it is the ordinary analysis job."""
    from ..store import default_store  # lazy: pandas
    from .queues import get_backend

    n = _check(spec, n)
    store = store if store is not None else default_store()
    backend = backend if backend is not None else get_backend()
    whole = get_job_kind("analyse").prepare(spec, store)
    _check(whole, n)
    if n == 1 or store.exists(whole.hash):
        info = backend.submit(whole, store=store)
        return ShardedJob(whole.hash, (), [info], store.exists(whole.hash))
    shards = shard_specs(whole, n, store=store)
    if len(shards) == 1:
        info = backend.submit(whole, store=store)
        return ShardedJob(whole.hash, (), [info], store.exists(whole.hash))
    infos = [backend.submit(s, store=store) for s in shards]
    done = merge_if_complete(whole, shards[0].groups, store) is not None
    return ShardedJob(whole.hash, shards[0].groups, infos, done)


def run_sharded(spec: AnalysisSpec, n: int, *, store: Store, progress: Progress | None = None) -> str:
    """Compute ``spec`` as ``n`` shards here, one after another (each stored as it finishes, so
    a run stopped half way resumes from the stored shards); returns the merged key."""
    n = _check(spec, n)
    progress = progress or Progress()
    whole = get_job_kind("analyse").prepare(spec, store)
    _check(whole, n)
    if store.exists(whole.hash):
        return whole.hash
    shards = shard_specs(whole, n, store=store)
    if len(shards) == 1:
        return analyse(whole, store=store, progress=progress)
    for i, shard in enumerate(shards):
        progress.check()
        shard_job(shard, store=store, progress=progress.sub(i / len(shards), (i + 1) / len(shards)))
    key = merge_if_complete(whole, shards[0].groups, store)
    if key is None:  # a shard was deleted meanwhile
        raise NNGeoError(f"the shards of {whole.hash} were not all stored; run it again")
    return key


register_job_kind(
    "analyse-shard",
    ShardSpec,
    shard_job,
    describe=describe_shard,
    normalize=normalize_shard,
    result_key=lambda s: part_spec(s.analysis, s.groups[s.index]).hash,
)
