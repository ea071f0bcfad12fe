"""Persistence: diagrams and barcodes per layer, NP per layer and over training, η_τ, MST overlap."""

import streamlit as st

from nngeo_core.dashboard import jobs_view
from nngeo_core.dashboard import widgets as w
from nngeo_core.dashboard.results import weight_shapes
from nngeo_core.defaults import complete
from nngeo_core.figures import persistence as pf
from nngeo_core.figures.common import labels_for
from nngeo_core.models.nulls import NULL_KINDS, trained_rows
from nngeo_core.runs import snapshot_epochs
from nngeo_core.specs import AnalysisSpec
from nngeo_core.store.queries import analyses_over_epochs

st.title("Neural persistence")
store = w.get_store()
run = w.pick_run(store, key="pers-run")
if run is None:
    st.stop()
epoch = w.pick_epoch(store, run, key="pers-epoch")
shapes = weight_shapes(store, run)  # layers are labelled 'fc2 (6→5)' from the checkpoint's weight shapes
nulls = st.checkbox(
    "Compare with null models",
    key="pers-nulls",
    help="the same statistics of the network at initialisation, with each layer's weights shuffled, and "
    "of Gaussian weights of the same shape and RMS (3 seeds each): what an untrained network already does",
)
null_params = {"null_models": NULL_KINDS} if nulls else {}

tab_np, tab_diag, tab_train, tab_eta, tab_mst = st.tabs(
    ["NP per layer", "Diagrams & barcodes", "NP over training", "η_τ (critical compression)", "MST overlap"]
)

with tab_np:
    np_full = w.analysis_result(
        store, run, "persistence", what="neural persistence", epoch=epoch, key="pers-np-go", params=null_params
    )
    np_table = trained_rows(np_full)
    if np_table is not None:
        st.caption(
            "NP = p-norm of each layer's 0-dim persistence diagram; normalised NP divides by "
            "(|V|−1)^(1/p). Network NP: "
            f"**{np_table['np'].sum():.4f}**, mean normalised NP: **{np_table['np_normalized'].mean():.4f}**"
        )
        w.show_figure(pf.np_per_layer(np_table, shapes=shapes), f"{run}-np", key="pers-np")
        if pf.has_nulls(np_full):
            w.show_figure(pf.np_vs_nulls(np_full, shapes=shapes), f"{run}-np-nulls", key="pers-np-nulls")
        w.show_table(np_full, f"{run}-np", key="pers-np-table")

with tab_diag:
    diagrams = w.analysis_result(
        store, run, "persistence_diagrams", what="persistence diagrams", epoch=epoch, key="pers-diag-go"
    )
    if diagrams is not None and len(diagrams):
        w.show_figure(pf.persistence_diagrams(diagrams, shapes=shapes), f"{run}-diagrams", key="pers-diagrams")
        layers = list(dict.fromkeys(diagrams["layer"].astype(str)))
        names = labels_for(diagrams, shapes)
        layer = st.selectbox("Barcode of layer", layers, key="pers-barcode-layer", format_func=names.get)
        max_bars = st.slider("bars shown (longest first)", 20, 2000, 300, step=20, key="pers-bars")
        w.show_figure(pf.barcode(diagrams, layer, max_bars=max_bars), f"{run}-barcode-{layer}", key="pers-barcode")
        w.table_downloads(diagrams, f"{run}-diagrams", key="pers-diag-table")

with tab_train:
    epochs = snapshot_epochs(run, store=store)
    if not epochs:
        st.info(
            "This run kept no training snapshots; train with snapshots on the **Train** page to see NP over training.",
            icon=":material/info:",
        )
    else:
        over = analyses_over_epochs(
            store, run, "persistence", params={}, catalog=w.catalog(store), read=lambda key: w.read_result(store, key)
        )
        done = set(over["epoch"].unique()) if len(over) else set()
        specs = {e: AnalysisSpec(run=run, method="persistence", params={}, epoch=e) for e in epochs if e not in done}
        busy = jobs_view.active_jobs_by_hash()
        running = [e for e, s in specs.items() if complete(s).hash in busy]  # the queue keys by the completed spec
        missing = [e for e in specs if e not in running]
        if running:
            st.caption(f"computing NP for {len(running)} snapshot(s)…")
        if missing and st.button(
            f"Compute NP for {len(missing)} snapshot(s)", key="pers-train-go", icon=":material/calculate:"
        ):
            for e in missing:
                w.submit_job(specs[e], f"NP epoch {e}")
        if len(over):
            value = st.radio(
                "value",
                ["np_normalized", "np"],
                horizontal=True,
                key="pers-train-value",
                format_func={"np_normalized": "normalised NP", "np": "NP"}.get,
            )
            w.show_figure(
                pf.np_over_epochs(over, value=value, shapes=shapes), f"{run}-np-over-training", key="pers-train"
            )
            w.table_downloads(over, f"{run}-np-over-training", key="pers-train-table")

with tab_eta:
    eta = w.analysis_result(
        store, run, "critical_compression", what="critical compression", epoch=epoch, key="pers-eta-go"
    )
    if eta is not None:
        w.show_figure(pf.eta_per_layer(eta, shapes=shapes), f"{run}-eta", key="pers-eta")
        w.show_table(eta, f"{run}-eta", key="pers-eta-table")

with tab_mst:
    overlap = w.analysis_result(
        store, run, "mst_overlap", what="MST overlap", epoch=epoch, key="pers-mst-go", params=null_params
    )
    if overlap is not None:
        w.show_figure(pf.mst_overlap(trained_rows(overlap), shapes=shapes), f"{run}-mst-overlap", key="pers-mst")
        if pf.has_nulls(overlap):
            w.show_figure(pf.mst_overlap_vs_nulls(overlap, shapes=shapes), f"{run}-mst-nulls", key="pers-mst-nulls")
        w.show_table(overlap, f"{run}-mst-overlap", key="pers-mst-table")
