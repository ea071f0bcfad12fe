"""Compare: accuracy against sparsity across pruning sweeps, summary tables, and up to four runs
side by side for any per-run figure."""

import streamlit as st

from nngeo_core import pruning
from nngeo_core.dashboard import widgets as w
from nngeo_core.dashboard.per_run import PER_RUN_FIGURES
from nngeo_core.dashboard.results import run_label, weight_shapes
from nngeo_core.figures.common import share_ranges
from nngeo_core.figures.pruning import accuracy_vs_sparsity
from nngeo_core.pruning.comparison import settings_diff
from nngeo_core.store import filter_catalog
from nngeo_core.store.queries import model_runs

st.title("Compare")
store = w.get_store()


def sweeps_section() -> None:
    sweeps = filter_catalog(w.catalog(store), kind="prune-sweep")
    if not len(sweeps):
        st.info("No pruning sweeps stored yet: run some on the **Pruning** page.", icon=":material/info:")
        return
    groups = sorted({f"{m} on {d}" for m, d in zip(sweeps["model"], sweeps["data"], strict=False)})
    group = st.selectbox("Model and data", groups, key="cmp-group")
    in_group = sweeps[[f"{m} on {d}" == group for m, d in zip(sweeps["model"], sweeps["data"], strict=False)]]
    labels = {r["key"]: f"{r['strategy']} · {r['key'][:8]} · {r['label']}" for _, r in in_group.iterrows()}
    keys = st.multiselect("Sweeps", list(labels), default=list(labels), format_func=labels.get, key="cmp-sweeps")
    delta = st.slider("Δ: accuracy drop allowed (points)", 0.0, 10.0, 1.0, 0.5, key="cmp-delta") / 100
    if not keys:
        return
    try:
        comparison = pruning.compare(keys, store=store, delta=delta)
    except Exception as exc:
        w.error_box(exc)
        return
    rows = comparison.rows
    one_run = "run" in rows and rows["run"].nunique() == 1
    dense = float(rows["dense_accuracy"].mean()) if "dense_accuracy" in rows and one_run else None
    w.show_figure(
        accuracy_vs_sparsity(rows, group="label", title=f"accuracy vs compression · {group}", dense_accuracy=dense),
        "accuracy-vs-sparsity",
        key="cmp-acc",
    )
    c1, c2 = st.columns(2)
    with c1:
        st.subheader(f"Highest sparsity within Δ = {delta * 100:.1f} points of dense")
        w.show_table(comparison.within_delta, "within-delta", key="cmp-within")
    with c2:
        st.subheader("Pareto frontier (sparsity, accuracy)")
        w.show_table(comparison.pareto, "pareto", key="cmp-pareto")
    st.subheader("Mean ± std over seeds")
    w.show_table(comparison.table, "sweep-summary", key="cmp-table")
    st.subheader("Download a pruned model")
    sweep = st.selectbox("Sweep", keys, format_func=labels.get, key="cmp-export-sweep")
    w.model_download(store, sweep, key="cmp-export")
    st.subheader("Settings that differ")
    if len(comparison.settings.columns) > 2:
        w.show_table(comparison.settings, "settings-diff", key="cmp-settings")
    else:
        st.caption("the sweeps differ only in strategy" if len(keys) > 1 else "one sweep")


st.header("Pruning sweeps", divider="gray")
sweeps_section()

st.header("Runs side by side", divider="gray")
runs = model_runs(store, w.catalog(store))
if not len(runs):
    st.info("No trained or uploaded models yet.", icon=":material/info:")
    st.stop()
row_of = {r["key"]: r for _, r in runs.iterrows()}
default = [k for k in [st.session_state.get(w.CURRENT_RUN)] if k in row_of]
chosen = st.multiselect(
    "Runs (up to four)",
    list(row_of),
    default=default,
    max_selections=4,
    format_func=lambda k: run_label(row_of[k]),
    key="cmp-runs",
)
figure_name = st.selectbox("Figure", list(PER_RUN_FIGURES), key="cmp-figure")
per_run = PER_RUN_FIGURES[figure_name]
if chosen:
    cols = st.columns(len(chosen))
    figures = {}
    for col, key in zip(cols, chosen, strict=False):
        with col:
            st.markdown(f"**{run_label(row_of[key])}**")
            table = w.analysis_result(
                store,
                key,
                per_run.method,
                what=per_run.what,
                params=per_run.params or {},
                any_params=per_run.params is None,
                key=f"cmp-go-{key}",
            )
            if table is not None:
                try:
                    figures[key] = per_run.draw(table, weight_shapes(store, key))
                except Exception as exc:
                    w.error_box(exc)
    # one scale for all: side by side, 0–5 next to 0–12 would read as equal
    share_ranges(list(figures.values()))
    for col, key in zip(cols, chosen, strict=False):
        if key in figures:
            with col:
                w.show_figure(figures[key], f"{key}-{per_run.method}", key=f"cmp-fig-{key}")
    if len(chosen) > 1:
        diff = settings_diff({k: store.spec(k) for k in chosen})
        st.subheader("Settings that differ")
        if len(diff.columns) > 1:
            w.show_table(
                diff.set_index("sweep").T.reset_index(names="setting"), "runs-settings-diff", key="cmp-runs-settings"
            )
        else:
            st.caption("no differences in the stored specs")
