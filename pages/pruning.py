"""Pruning: choose strategies, sparsities and seeds for a trained run and queue the sweeps."""

import streamlit as st

from nngeo_core import pruning
from nngeo_core.dashboard import widgets as w
from nngeo_core.dashboard.forms import parse_float_list, parse_int_list
from nngeo_core.dashboard.results import runs_table
from nngeo_core.errors import NNGeoError
from nngeo_core.figures.colors import strategy_color
from nngeo_core.specs import RunSpec, spec_from_dict
from nngeo_core.store import filter_catalog

st.title("Pruning sweeps")
store = w.get_store()
run = w.pick_run(store, label="Trained run to prune", key="prune-run", kinds=["train"])
if run is None:
    st.stop()
run_spec = spec_from_dict(store.spec(run))
if not isinstance(run_spec, RunSpec):
    st.error("this result has no training spec to prune from")
    st.stop()

names = list(pruning.STRATEGIES)
chosen = st.multiselect(
    "Strategies", names, default=[n for n in ("random", "magnitude") if n in names], key="prune-strategies"
)
params = {}
for name in chosen:
    entry = pruning.STRATEGIES[name]
    with st.expander(f"{name} — {entry.description}", expanded=False):
        st.markdown(
            f"<span style='color:{strategy_color(name)}'>■</span> colour on every figure", unsafe_allow_html=True
        )
        params[name] = w.param_inputs(dict(entry.params), key=f"prune-p-{name}") if entry.params else {}

c1, c2, c3 = st.columns(3)
mode = c1.radio("Sparsities", ["compression levels", "explicit list"], key="prune-mode")
if mode == "compression levels":
    n_levels = c2.number_input("levels", 1, 12, 5, key="prune-n")
    base = c3.number_input("compression factor per level", 1.1, 10.0, 2.0, key="prune-base")
    sparsities = pruning.compression_levels(int(n_levels), base=float(base))
else:
    text = c2.text_input("sparsities (0..1)", "0.5, 0.75, 0.9", key="prune-list")
    try:
        sparsities = parse_float_list(text, "sparsities", low=0.0, high=0.999999)
    except NNGeoError as exc:
        w.error_box(exc)
        st.stop()
st.caption("sparsities: " + ", ".join(f"{s:.4g} ({1 / (1 - s):.3g}×)" for s in sparsities))

c1, c2, c3, c4 = st.columns(4)
seeds_text = c1.text_input("seeds", "0", key="prune-seeds")
finetune = int(c2.number_input("fine-tune epochs", 0, 1000, 0, key="prune-ft"))
scope = c3.selectbox("scope", ["global", "layer"], key="prune-scope")
exclude_last = c4.checkbox("keep the output layer dense", value=False, key="prune-excl")
analyses = st.multiselect("Per-level analyses", list(getattr(pruning.specs, "ANALYSES", ())), key="prune-analyses")

try:
    seeds = parse_int_list(seeds_text, "seeds", low=0) or (0,)
    specs = [
        pruning.SweepSpec(
            run=run_spec,
            strategy=s,
            params=params.get(s, {}),
            sparsities=tuple(sparsities),
            seeds=seeds,
            finetune_epochs=finetune,
            scope=scope,
            exclude_last=exclude_last,
            analyses=tuple(analyses),
        ).validate()
        for s in chosen
    ]
except NNGeoError as exc:
    w.error_box(exc)
    st.stop()

if st.button(
    f"Run {len(specs)} sweep(s)", type="primary", disabled=not specs, key="prune-submit", icon=":material/play_arrow:"
):
    for spec in specs:
        w.submit_job(spec, f"prune {spec.strategy}")
    st.info("Queued. Results appear on the **Compare** page when the jobs are done.", icon=":material/schedule:")

st.subheader(f"Stored sweeps of {run_spec.model.name} on {run_spec.data.name}", divider="gray")
sweeps = filter_catalog(w.catalog(store), kind="prune-sweep", model=run_spec.model.name, data=run_spec.data.name)
if len(sweeps):
    w.show_table(runs_table(sweeps), f"{run}-sweeps", key="prune-sweeps")
else:
    st.caption("none yet")
