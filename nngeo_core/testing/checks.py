"""Public conformance checks: what every registered model, dataset, pruning strategy, analysis and
job kind must do, as functions anybody can run over their own entry (scikit-learn's
``check_estimator`` idea).

``all_checks()`` yields one ``Check`` per (registry entry, property) from what the entry declares:
an analysis that declares ``needs_data`` is checked with data, one that declares ``columns`` is
checked for them, a strategy that declares ``changes_weights`` for its weights, and so on. The test
suite runs every check (``tests/conformance/test_checks.py``); a check known to fail is declared in
``KNOWN_FAILURES`` with its reason and reported as an expected failure, never skipped.

The checks run on tiny models and data (a 2-8-8-2 ReLU net on xor, a small conv net on 6x6
images), so the whole set takes seconds.
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
from torch import nn

from ..analyses import ANALYSES, Analysis
from ..data import DATASETS, dataset_info, load
from ..data.base import Dataset
from ..errors import NNGeoError
from ..jobs.registry import JobKind, get_job_kind, job_kinds
from ..jobs.shards import ShardSpec, shard_specs
from ..models import MODELS, build, prunable_layers
from ..progress import Cancelled, Progress
from ..pruning.specs import SweepSpec
from ..pruning.strategies import STRATEGIES, PruneData, Strategy, prune, reset_caches
from ..reproduce.jobs import ReproduceJobSpec
from ..runs import load_run, train_run
from ..settings import get_settings
from ..specs import AnalysisSpec, DataSpec, ModelSpec, RunSpec, TrainSpec, spec_from_dict, to_dict
from ..store import Store

# a check known to fail: (registry, name, check) -> why
KNOWN_FAILURES: dict[tuple[str, str, str], str] = {}

# small settings that keep each entry's check to a second or less; the defaults stay what users get
QUICK_PARAMS: dict[str, dict[str, dict[str, Any]]] = {
    "analysis": {
        "volume": {"resolution": 6},
        "geodesic": {"sparsity": 0.5, "steps": 3, "batch_size": 16, "eval_size": 50},
        "forgetting": {"steps": 3, "eval_size": 50},
        "curvature": {"k_per_class": 1},
    },
    "strategy": {
        "imp": {"round_epochs": 1, "rewind_epoch": 0},
        "timp": {"round_epochs": 1, "rewind_epoch": 0},
        "snip": {"samples": 32},
        "grasp": {"samples": 32},
        "wanda": {"samples": 32},
        "synflow": {"rounds": 20},
        "geodesic": {"samples": 32, "steps": 10},
        "curvature": {"calibration_k": 1},
        "curvature_neg": {"calibration_k": 1},
    },
}


@dataclass(frozen=True)
class Check:
    registry: str  # "model", "dataset", "strategy", "analysis", "job kind"
    name: str  # the entry
    check: str  # the property
    run: Callable[[], None]

    @property
    def id(self) -> str:
        return f"{self.registry}:{self.name}:{self.check}"

    @property
    def known_failure(self) -> str | None:
        return KNOWN_FAILURES.get((self.registry, self.name, self.check))


def state_of(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_same_state(before: dict[str, torch.Tensor], model: nn.Module, what: str) -> None:
    after = model.state_dict()
    if set(after) != set(before) or any(not torch.equal(before[k], after[k]) for k in before):
        raise AssertionError(f"{what} changed the model it was given")


# -- fixtures ------------------------------------------------------------------------------------
def tiny_xor() -> Dataset:
    return load(DataSpec("xor", params={"n_train": 120, "n_test": 60}))


def tiny_mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build("mlp", input_shape=(2,), num_classes=2, widths=(8, 8))


class CancelAfter:
    """A cancel flag that trips at the ``n``-th look (0: at once)."""

    def __init__(self, n: int = 0) -> None:
        self.n, self.looks = n, 0

    def __call__(self) -> bool:
        self.looks += 1
        return self.looks > self.n


# -- models ----------------------------------------------------------------------------------------
def model_checks(name: str) -> Iterator[Check]:
    entry = MODELS.get(name)
    shape = entry.default_input_shape

    def builds_and_runs() -> None:
        model = build(name)
        out = model(torch.zeros(2, *shape))
        if tuple(out.shape) != (2, entry.default_num_classes):
            raise AssertionError(f"{name} gives outputs of shape {tuple(out.shape)}")
        if not prunable_layers(model, shape):
            raise AssertionError(f"{name} has no prunable layer")

    def rebuilds_from_its_params() -> None:
        torch.manual_seed(0)
        a = build(name)
        torch.manual_seed(0)
        b = build(a.zoo_name, input_shape=a.input_shape, num_classes=a.num_classes, **a.zoo_params)
        if [tuple(v.shape) for v in a.state_dict().values()] != [tuple(v.shape) for v in b.state_dict().values()]:
            raise AssertionError(f"{name} rebuilt from zoo_params has another architecture")
        for k, v in a.state_dict().items():
            if not torch.equal(v, b.state_dict()[k]):
                raise AssertionError(f"{name}: the same seed gave other weights for {k}")

    def refuses_unknown_params() -> None:
        try:
            build(name, no_such_parameter=1)
        except NNGeoError as exc:
            if "\n" in str(exc):
                raise AssertionError("the error is not one line") from exc
            return
        raise AssertionError(f"{name} accepted an unknown parameter")

    yield Check("model", name, "builds and runs at its default shape", builds_and_runs)
    yield Check("model", name, "rebuilds from its recorded params", rebuilds_from_its_params)
    yield Check("model", name, "refuses unknown params in one line", refuses_unknown_params)


# -- datasets --------------------------------------------------------------------------------------
def dataset_checks(name: str) -> Iterator[Check]:
    info = dataset_info(name)

    def loads_as_declared() -> None:
        ds = load(name, seed=0)
        if tuple(ds.input_shape) != tuple(info.input_shape) or ds.num_classes != info.num_classes:
            raise AssertionError(f"{name} loads as {ds.input_shape}/{ds.num_classes}, declared {info}")

    def same_data_for_a_seed() -> None:
        a, b = load(name, seed=3), load(name, seed=3)
        if not (torch.equal(a.x_train, b.x_train) and torch.equal(a.y_train, b.y_train)):
            raise AssertionError(f"{name} gave other data for the same seed")

    def missing_files_are_one_line() -> None:
        try:
            load(name, seed=0)
        except NNGeoError as exc:  # it must say where it looked
            if "\n" in str(exc) or str(get_settings().data_dir) not in str(exc):
                raise AssertionError(f"unclear error for missing files: {exc}") from exc
            return
        # the files are there: then it must load as declared
        loads_as_declared()

    if info.needs_files:
        yield Check("dataset", name, "missing files are a one-line error", missing_files_are_one_line)
    else:
        yield Check("dataset", name, "loads with its declared shape and classes", loads_as_declared)
        yield Check("dataset", name, "the same seed gives the same data", same_data_for_a_seed)


# -- strategies ------------------------------------------------------------------------------------
def strategy_checks(name: str) -> Iterator[Check]:
    entry: Strategy = STRATEGIES.get(name)
    params = QUICK_PARAMS["strategy"].get(name, {})

    def setup() -> tuple[nn.Module, PruneData]:
        data = tiny_xor()
        model = tiny_mlp()
        train = TrainSpec(epochs=1, batch_size=32, lr=1e-2)
        return model, PruneData(dataset=data, train=train, rewind={0: state_of(model)})

    def reaches_the_sparsity_and_leaves_the_model() -> None:
        model, data = setup()
        before = state_of(model)
        result = prune(model, name, 0.5, data=data, params=params, scope=entry.scopes[0])
        assert_same_state(before, model, f"the {name} strategy")
        kept = sum(int(m.sum()) for m in result.masks.values())
        total = sum(m.numel() for m in result.masks.values())
        if abs((total - kept) - round(0.5 * total)) > len(result.masks):
            raise AssertionError(f"{name} pruned {total - kept} of {total} weights at sparsity 0.5")
        if entry.changes_weights != (result.state_dict is not None):
            raise AssertionError(f"{name} declares changes_weights={entry.changes_weights} but returned otherwise")

    def deterministic_under_a_seed() -> None:
        model, data = setup()
        a = prune(model, name, 0.5, data=data, params=params, seed=3, scope=entry.scopes[0])
        reset_caches()
        b = prune(model, name, 0.5, data=data, params=params, seed=3, scope=entry.scopes[0])
        if any(not torch.equal(a.masks[n], b.masks[n]) for n in a.masks):
            raise AssertionError(f"{name} gave other masks for the same seed")

    def honours_cancel() -> None:
        if not (entry.iterative or entry.trains or entry.changes_weights):
            # a one-shot score (one batch at most) has no loop to stop: it must still finish
            model, data = setup()
            prune(model, name, 0.5, data=data, params=params, scope=entry.scopes[0])
            return
        model, data = setup()
        reset_caches()
        cancelled = Progress(is_cancelled=CancelAfter(0))
        try:
            prune(model, name, 0.5, data=data, params=params, scope=entry.scopes[0], progress=cancelled)
        except Cancelled:
            return
        raise AssertionError(f"{name} ran to the end although its job was cancelled")

    def refuses_unknown_params() -> None:
        model, data = setup()
        try:
            prune(model, name, 0.5, data=data, params={"no_such_parameter": 1})
        except NNGeoError:
            return
        raise AssertionError(f"{name} accepted an unknown parameter")

    yield Check(
        "strategy", name, "reaches the sparsity and leaves its input alone", reaches_the_sparsity_and_leaves_the_model
    )
    yield Check("strategy", name, "is deterministic under a seed", deterministic_under_a_seed)
    yield Check("strategy", name, "honours cancel", honours_cancel)
    yield Check("strategy", name, "refuses unknown params", refuses_unknown_params)


# -- analyses --------------------------------------------------------------------------------------
def analysis_inputs(entry: Analysis, store: Store) -> tuple[nn.Module, Dataset | None, dict[str, Any]]:
    """A tiny trained model (stored, for analyses that read the store), its data and quick params."""
    spec = RunSpec(
        data=DataSpec("xor", params={"n_train": 120, "n_test": 60}),
        model=ModelSpec("mlp", {"widths": (8, 8)}),
        train=TrainSpec(epochs=2, batch_size=32, lr=1e-2, device="cpu"),
    )
    key = train_run(spec, store=store)
    params = dict(QUICK_PARAMS["analysis"].get(entry.name, {}))
    if entry.needs_store:  # the one such analysis today walks towards a second run
        other = train_run(spec.replace(data=DataSpec("moons", params={"n_train": 120, "n_test": 60})), store=store)
        params = entry.normalize(key, {**params, "run_b": other}, store) if entry.normalize else params
    model = load_run(key, store=store).model.eval()
    return model, (tiny_xor() if entry.needs_data else None), params


def call_analysis(
    entry: Analysis, model: nn.Module, data: Dataset | None, params: dict, store: Store, progress: Progress
) -> pd.DataFrame:
    full = entry.resolve(params) if entry.params else dict(params)
    if entry.needs_store:
        return entry(model, data, full, progress, store=store)
    return entry(model, data, full, progress)


def analysis_checks(name: str) -> Iterator[Check]:
    entry = ANALYSES.get(name)

    def with_inputs(body: Callable[[nn.Module, Dataset | None, dict, Store], None]) -> Callable[[], None]:
        def run() -> None:
            with tempfile.TemporaryDirectory() as root:
                store = Store(root)
                model, data, params = analysis_inputs(entry, store)
                body(model, data, params, store)

        return run

    def returns_its_table_and_leaves_the_model(model, data, params, store) -> None:
        before = state_of(model)
        frame = call_analysis(entry, model, data, params, store, Progress())
        assert_same_state(before, model, f"analysis {name!r}")
        if not isinstance(frame, pd.DataFrame) or frame.empty:
            raise AssertionError(f"analysis {name!r} returned no table")
        missing = [c for c in entry.columns if c not in frame.columns]
        if missing:
            raise AssertionError(f"analysis {name!r} lacks its declared columns {missing}")

    def deterministic(model, data, params, store) -> None:
        torch.manual_seed(0)
        a = call_analysis(entry, copy.deepcopy(model), data, params, store, Progress())
        torch.manual_seed(0)
        b = call_analysis(entry, copy.deepcopy(model), data, params, store, Progress())
        a, b = (f.drop(columns=list(entry.timings)).reset_index(drop=True) for f in (a, b))
        pd.testing.assert_frame_equal(a, b)

    def honours_cancel(model, data, params, store) -> None:
        try:
            call_analysis(entry, model, data, params, store, Progress(is_cancelled=CancelAfter(0)))
        except Cancelled:
            return
        raise AssertionError(f"analysis {name!r} ran to the end although its job was cancelled")

    def declares_its_params() -> None:
        if not entry.params:
            raise AssertionError(f"analysis {name!r} declares no parameters")
        try:
            entry.resolve({"no_such_parameter": 1})
        except NNGeoError:
            return
        raise AssertionError(f"analysis {name!r} accepted an unknown parameter")

    yield Check("analysis", name, "declares its params", declares_its_params)
    yield Check(
        "analysis", name, "returns its columns, leaves the model", with_inputs(returns_its_table_and_leaves_the_model)
    )
    yield Check("analysis", name, "is deterministic", with_inputs(deterministic))
    yield Check("analysis", name, "honours cancel", with_inputs(honours_cancel))


# -- job kinds -------------------------------------------------------------------------------------
def example_spec(kind: JobKind, store: Store) -> Any:
    """A small request of each built-in kind (a kind of your own: its spec type's defaults)."""
    run = RunSpec(
        data=DataSpec("xor", params={"n_train": 120, "n_test": 60}),
        model=ModelSpec("mlp", {"widths": (8, 8)}),
        train=TrainSpec(epochs=2, batch_size=32, lr=1e-2, device="cpu"),
    )
    if kind.spec_type is RunSpec:
        return run
    if kind.spec_type is AnalysisSpec:
        return AnalysisSpec(run=train_run(run, store=store), method="persistence")
    if kind.spec_type is SweepSpec:
        return SweepSpec(run=run, strategy="magnitude", sparsities=(0.5,), seeds=(0,))
    if kind.spec_type is ShardSpec:
        whole = AnalysisSpec(run=train_run(run, store=store), method="curvature_weights")
        return shard_specs(whole, 2, store=store)[0]
    if kind.spec_type is ReproduceJobSpec:
        return ReproduceJobSpec(claim="balwani2022_eta_tau", size="test")  # needs no data, takes seconds
    return kind.spec_type()


def job_kind_checks(name: str) -> Iterator[Check]:
    kind = get_job_kind(name)

    def round_trips_and_labels() -> None:
        with tempfile.TemporaryDirectory() as root:
            spec = example_spec(kind, Store(root))
            back = spec_from_dict(to_dict(spec))
            if back != spec or back.hash != spec.hash:
                raise AssertionError(f"a {name} spec does not survive its stored JSON")
            if not kind.label_for(spec).strip():
                raise AssertionError(f"a {name} job has an empty label")

    def stores_its_result_under_its_key() -> None:
        with tempfile.TemporaryDirectory() as root:
            store = Store(root)
            spec = example_spec(kind, store)
            spec = kind.prepare(spec, store)
            key = kind.fn(spec, store=store, progress=Progress())
            if key != kind.key_for(spec) or not store.exists(key):
                raise AssertionError(f"a {name} job returned {key}, not its stored key {kind.key_for(spec)}")

    def honours_cancel() -> None:
        with tempfile.TemporaryDirectory() as root:
            store = Store(root)
            spec = example_spec(kind, store)
            spec = kind.prepare(spec, store)
            before = set(store.keys())
            try:
                kind.fn(spec, store=store, progress=Progress(is_cancelled=CancelAfter(0)))
            except Cancelled:
                if set(store.keys()) != before:
                    raise AssertionError(f"a cancelled {name} job stored a result") from None
                return
            raise AssertionError(f"a {name} job ran to the end although it was cancelled")

    yield Check("job kind", name, "its spec round-trips and has a label", round_trips_and_labels)
    yield Check("job kind", name, "stores its result under its key", stores_its_result_under_its_key)
    yield Check("job kind", name, "honours cancel", honours_cancel)


def all_checks() -> Iterator[Check]:
    """Every check of every registered entry."""
    for name in MODELS.names():
        yield from model_checks(name)
    for name in DATASETS.names():
        yield from dataset_checks(name)
    for name in STRATEGIES.names():
        yield from strategy_checks(name)
    for name in ANALYSES.names():
        yield from analysis_checks(name)
    for name in job_kinds():
        yield from job_kind_checks(name)
