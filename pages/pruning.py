"""Pruning: choose strategies, sparsities and seeds for a stored model and queue the sweeps.

A trained run is pruned as the CLI's `nngeo prune --model … --data …` does (one dense run per
seed, the stored one reused). An upload is pruned as it is (`nngeo prune --run KEY`): a dataset
picker (starting at the upload's own data) gives the data that evaluates, calibrates and
fine-tunes it, checked against the model's input shape and classes before anything is queued;
IMP and T-IMP on an upload, which kept no training snapshots, run without rewinding, and their
rounds retrain for the fine-tune epochs unless ``round_epochs`` is set (an upload has no training
run whose epochs they could repeat; 0, the default, prunes in rounds without retraining); the
strategy's panel says which budget its rounds get.

Each strategy's parameters get widgets of their declared types (``widgets.param_inputs``); a value
that does not fit is an error under its widget and nothing is queued. Every choice is remembered
for this session, so the form comes back as it was left after a visit to another page.
"""

import streamlit as st

from nngeo_core import pruning
from nngeo_core.dashboard import jobs_view
from nngeo_core.dashboard import widgets as w
from nngeo_core.dashboard.forms import parse_float_list, parse_int_list
from nngeo_core.dashboard.results import builder_labels, builder_layer_names, runs_table, weight_layers, weight_shapes
from nngeo_core.data import list_datasets
from nngeo_core.errors import NNGeoError
from nngeo_core.figures.colors import strategy_color
from nngeo_core.figures.common import layer_labels
from nngeo_core.pruning.cli import source_sweeps
from nngeo_core.runs import read_header
from nngeo_core.specs import DataSpec, RunSpec, spec_from_dict
from nngeo_core.store import filter_catalog

SCOPES = ["global", "layer"]
MODES = ["compression levels", "explicit list"]


def kept(widget, *args, key: str, default, fits, start_as: str = "value", **kwargs):
    """``widget`` (a Streamlit input) starting where the user left it this session."""
    start = w.remembered(key, default, fits)
    if start_as == "index":
        start = args[1].index(start)
    return w.keep(key, widget(*args, key=key, **{start_as: start}, **kwargs))


def is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


st.title("Pruning sweeps")
store = w.get_store()
run = w.pick_run(store, label="Model to prune (a trained run or an upload)", key="prune-run", kinds=["train", "upload"])
if run is None:
    st.stop()
upload_data: DataSpec | None = None  # an upload's evaluation data (None: a trained run)
if store.entry(run)["kind"] == "upload":
    own = read_header(run, store=store).data_spec
    datasets = list_datasets()
    picked = kept(
        st.selectbox,
        "Data to evaluate, calibrate and fine-tune it on",
        datasets,
        key=f"prune-data-{run}",
        default=own.name if own is not None and own.name in datasets else datasets[0],
        fits=datasets.__contains__,
        start_as="index",
    )
    upload_data = own if own is not None and own.name == picked else DataSpec(picked)
    st.caption("an upload is pruned as it is; the seeds vary the strategy's draws and the fine-tuning order")
    model_name, data_name = store.entry(run)["model"], upload_data.name
else:
    run_spec = spec_from_dict(store.spec(run))
    if not isinstance(run_spec, RunSpec):
        st.error("this result has no training spec to prune from")
        st.stop()
    model_name, data_name = run_spec.model.name, run_spec.data.name

names = list(pruning.STRATEGIES)
chosen = kept(
    st.multiselect,
    "Strategies",
    names,
    key="prune-strategies",
    default=[n for n in ("random", "magnitude") if n in names],
    fits=lambda v: isinstance(v, list) and all(n in names for n in v),
    start_as="default",
)
params = {}
errors: list[str] = []
round_notes = {}  # strategy -> where its panel says how long its rounds retrain (filled below)
for name in chosen:
    entry = pruning.STRATEGIES[name]
    with st.expander(f"{name} — {entry.description}", expanded=False):
        st.markdown(
            f"<span style='color:{strategy_color(name)}'>■</span> colour on every figure", unsafe_allow_html=True
        )
        values = w.param_inputs(entry.params, key=f"prune-p-{name}", what=f"the {name} strategy")
        params[name] = dict(values)
        errors += values.errors
        if entry.trains and "round_epochs" in entry.defaults:
            round_notes[name] = st.empty()

c1, c2, c3 = st.columns(3)
mode = kept(
    c1.radio, "Sparsities", MODES, key="prune-mode", default=MODES[0], fits=MODES.__contains__, start_as="index"
)
sparsities: tuple = ()
if mode == "compression levels":
    n_levels = kept(c2.number_input, "levels", 1, 12, key="prune-n", default=5, fits=lambda v: v in range(1, 13))
    base = kept(
        c3.number_input,
        "compression factor per level",
        1.1,
        10.0,
        key="prune-base",
        default=2.0,
        fits=lambda v: is_number(v) and 1.1 <= v <= 10.0,
    )
    sparsities = pruning.compression_levels(int(n_levels), base=float(base))
else:
    text = kept(
        c2.text_input,
        "sparsities (0..1)",
        key="prune-list",
        default="0.5, 0.75, 0.9",
        fits=lambda v: isinstance(v, str),
    )
    try:
        sparsities = parse_float_list(text, "sparsities", low=0.0, high=0.999999)
    except NNGeoError as exc:
        w.error_box(exc)
        errors.append(str(exc))
if sparsities:
    st.caption("sparsities: " + ", ".join(f"{s:.4g} ({1 / (1 - s):.3g}×)" for s in sparsities))

c1, c2, c3, c4 = st.columns(4)
seeds_text = kept(c1.text_input, "seeds", key="prune-seeds", default="0", fits=lambda v: isinstance(v, str))
finetune = int(
    kept(c2.number_input, "fine-tune epochs", 0, 1000, key="prune-ft", default=0, fits=lambda v: v in range(0, 1001))
)
scope = kept(
    c3.selectbox, "scope", SCOPES, key="prune-scope", default="global", fits=SCOPES.__contains__, start_as="index"
)
exclude_last = kept(
    c4.checkbox, "keep the output layer dense", key="prune-excl", default=False, fits=lambda v: isinstance(v, bool)
)
for name, note in round_notes.items():
    set_to = params[name].get("round_epochs")
    if set_to is not None:
        note.caption(f"each round retrains for {set_to} epoch(s) (round_epochs)")
    elif upload_data is not None:
        note.caption(
            f"round_epochs empty: each round retrains for the fine-tune epochs ({finetune}"
            + ("; the rounds only prune" if finetune == 0 else "")
            + "), since an upload has no training run"
        )
    else:
        note.caption(f"round_epochs empty: each round retrains for the run's {run_spec.train.epochs} epoch(s)")
shapes = weight_shapes(store, run)
layer_choices = weight_layers(shapes)
layer_label = builder_labels(
    layer_choices, layer_labels(layer_choices, shapes), builder_layer_names(store, run, layer_choices)
)
c1, c2 = st.columns([3, 1])
only = kept(
    c1.multiselect,
    "Layers to prune (empty: every layer)",
    layer_choices,
    key=f"prune-layers-{run}",
    default=[],
    fits=lambda v: isinstance(v, list) and all(n in layer_choices for n in v),
    start_as="default",
    format_func=lambda n: layer_label.get(n, n),
    help="The sparsity is then of these layers' weights; the others stay dense.",
)
ablate = kept(
    c2.checkbox,
    "one sweep per layer (ablation)",
    key="prune-ablate",
    default=False,
    fits=lambda v: isinstance(v, bool),
    help="Each chosen layer (or every layer) pruned alone, one sweep each: the one-layer-at-a-time ablation.",
)
layer_sets = [(n,) for n in (only or layer_choices)] if ablate else [tuple(only)]
sweep_analyses = list(getattr(pruning.specs, "ANALYSES", ()))
analyses = kept(
    st.multiselect,
    "Per-level analyses",
    sweep_analyses,
    key="prune-analyses",
    default=[],
    fits=lambda v: isinstance(v, list) and all(a in sweep_analyses for a in v),
    start_as="default",
)

specs = []
if not errors:
    try:
        seeds = parse_int_list(seeds_text, "seeds", low=0) or (0,)
        fields = dict(
            sparsities=tuple(sparsities),
            seeds=seeds,
            finetune_epochs=finetune,
            scope=scope,
            exclude_last=exclude_last,
            analyses=tuple(analyses),
        )
        if upload_data is not None:
            # only the values the user changed count as asked for (a rewind_epoch left at its
            # default on an upload means IMP without rewinding, one set is refused)
            changed = {
                s: {k: v for k, v in params.get(s, {}).items() if v != pruning.STRATEGIES[s].defaults.get(k)}
                for s in chosen
            }
            specs = [
                spec
                for layers in layer_sets
                for spec in source_sweeps(store, run, chosen, changed, data=upload_data, layers=layers, **fields)
            ]
        else:
            specs = [
                pruning.SweepSpec(
                    run=run_spec, strategy=s, params=params.get(s, {}), layers=layers, **fields
                ).validate()
                for layers in layer_sets
                for s in chosen
            ]
    except NNGeoError as exc:
        w.error_box(exc)
        specs = []

if st.button(
    f"Run {len(specs)} sweep(s)", type="primary", disabled=not specs, key="prune-submit", icon=":material/play_arrow:"
):
    for spec in specs:
        w.submit_job(spec, jobs_view.label_for(spec))
    st.info("Queued. Results appear on the **Compare** page when the jobs are done.", icon=":material/schedule:")

st.subheader(f"Stored sweeps of {model_name} on {data_name}", divider="gray")
sweeps = filter_catalog(w.catalog(store), kind="prune-sweep", model=model_name, data=data_name)
if len(sweeps):
    w.show_table(runs_table(sweeps), f"{run}-sweeps", key="prune-sweeps")
else:
    st.caption("none yet")
