"""Geodesics: paths in weight space (sparsification, forgetting) — accuracy on both tasks and the
distance to the target along the path."""
import streamlit as st

from nngeo_core.dashboard import widgets as w
from nngeo_core.figures.geodesic import path_figure

st.title("Geodesics in weight space")
store = w.get_store()
if w.optional_module("nngeo_core.geometry") is None:
    w.not_available("Weight-space geometry", "Install the geometry capability.")
    st.stop()
run = w.pick_run(store, key="geo-run")
if run is None:
    st.stop()
kind = st.radio("Path", ["sparsify", "forgetting"], horizontal=True, key="geo-kind",
                format_func={"sparsify": "sparsification path", "forgetting": "forgetting path"}.get)
c1, c2 = st.columns(2)
params = {"path": kind, "steps": int(c1.number_input("steps", 2, 200, 20, key="geo-steps"))}
if kind == "sparsify":
    params["sparsity"] = float(c2.slider("target sparsity", 0.1, 0.99, 0.9, key="geo-sparsity"))
else:
    params["task_b"] = c2.text_input("second task (dataset)", "", placeholder="e.g. permuted:mnist:1",
                                     key="geo-task-b") or None
    params = {k: v for k, v in params.items() if v is not None}
path = w.analysis_result(store, run, "geodesic", what=f"{kind} path", params=params, key="geo-go")
if path is not None and len(path):
    w.show_figure(path_figure(path, title=f"{kind} path"), f"{run}-{kind}-path", key="geo-fig")
    w.show_table(path, f"{run}-{kind}-path", key="geo-table")
