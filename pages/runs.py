"""Runs: every stored result as a sortable, filterable table; open, export or delete one."""

import streamlit as st

from nngeo_core.dashboard import widgets as w
from nngeo_core.dashboard.downloads import table_bytes
from nngeo_core.dashboard.results import run_label, runs_table
from nngeo_core.figures.training import training_curves
from nngeo_core.store import MODEL_KINDS

st.title("Runs")
store = w.get_store()
catalog = w.catalog(store)
if not len(catalog):
    st.info(
        "The store is empty. Train a model on the **Train** page, upload one on the **Upload** page, "
        "or run `nngeo train` in a terminal.",
        icon=":material/info:",
    )
    st.stop()

c1, c2 = st.columns([2, 3])
kinds = c1.multiselect("Kinds", sorted(catalog["kind"].dropna().unique()), key="runs-kinds")
text = c2.text_input("Filter", placeholder="model, data, method, key…", key="runs-text")
table = runs_table(catalog, kinds=kinds, text=text)
st.caption(f"{len(table)} of {len(catalog)} results · click a column header to sort")
event = st.dataframe(
    table,
    hide_index=True,
    on_select="rerun",
    selection_mode="single-row",
    key="runs-table",
    column_config={
        "metric": st.column_config.NumberColumn("accuracy", format="%.4f"),
        "sparsity": st.column_config.NumberColumn(format="%.3f"),
        "created": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm"),
    },
)
w.table_downloads(table, "nngeo-catalog", key="catalog")

rows = event.selection.rows if event is not None and hasattr(event, "selection") else []
keys = list(table["key"])
default = keys[rows[0]] if rows else None
chosen = st.selectbox(
    "Result",
    keys,
    index=keys.index(default) if default in keys else None,
    format_func=lambda k: run_label(table[table["key"] == k].iloc[0]),
    placeholder="select a row above or pick a result",
    key="runs-chosen",
)
if chosen is None:
    st.stop()

entry = store.entry(chosen)
st.subheader(run_label(entry))
b1, b2, b3, b4 = st.columns(4)
if entry["kind"] in MODEL_KINDS and b1.button("Open in analysis pages", icon=":material/open_in_new:", key="runs-open"):
    st.session_state[w.CURRENT_RUN] = chosen
    st.success(f"{chosen[:8]} is now the selected run on the analysis pages.")
result = w.read_result(store, chosen)
b2.download_button(
    "Export CSV",
    data=lambda: table_bytes(result, "csv"),
    file_name=f"{chosen}.csv",
    key="runs-export-csv",
    on_click="ignore",
    icon=":material/download:",
)
b3.download_button(
    "Export Parquet",
    data=lambda: table_bytes(result, "parquet"),
    file_name=f"{chosen}.parquet",
    key="runs-export-parquet",
    on_click="ignore",
    icon=":material/download:",
)
if b4.button("Delete…", icon=":material/delete:", key="runs-delete"):
    st.session_state["runs-confirm-delete"] = chosen

if st.session_state.get("runs-confirm-delete") == chosen:
    st.warning(f"Delete result **{chosen}** and its artefacts? This cannot be undone.", icon=":material/warning:")
    y, n, _ = st.columns([1, 1, 4])
    if y.button("Yes, delete", type="primary", key="runs-delete-yes"):
        store.delete(chosen)
        st.session_state.pop("runs-confirm-delete", None)
        if st.session_state.get(w.CURRENT_RUN) == chosen:
            st.session_state.pop(w.CURRENT_RUN, None)
        st.toast(f"deleted {chosen[:8]}")
        st.rerun()
    if n.button("Cancel", key="runs-delete-no"):
        st.session_state.pop("runs-confirm-delete", None)
        st.rerun()

if entry["kind"] in MODEL_KINDS or entry["kind"] == "prune-sweep":
    st.subheader("Export the model", divider="gray")
    w.model_download(store, chosen, key="runs-model")
with st.expander("Spec and artefacts"):
    st.json(store.spec(chosen), expanded=False)
    st.write("artefacts:", ", ".join(store.artifacts(chosen)) or "none")
if entry["kind"] == "train" and {"epoch", "train_loss"} <= set(result.columns):
    w.show_figure(training_curves(result, title="training history"), f"{chosen}-history", key="runs-history")
w.show_table(result, chosen, key="runs-result", downloads=False)  # exported by the buttons above
