"""Geodesics: paths in weight space — accuracy and distance to the target along the path."""
import streamlit as st

from nngeo_core.dashboard import widgets as w
from nngeo_core.figures.geodesic import path_figure

st.title("Geodesics in weight space")
st.caption("Approximate geodesics of the functional metric g_w = J_wᵀJ_w (Raghavan & Thomson 2020): each "
           "step changes the network's function as little as possible while moving towards the target.")
store = w.get_store()
if w.optional_module("nngeo_core.geometry") is None:
    w.not_available("Weight-space geometry", "Install the geometry capability.")
    st.stop()
run = w.pick_run(store, key="geo-run")
if run is None:
    st.stop()
epoch = w.pick_epoch(store, run, key="geo-epoch")
tab_sparse, tab_forget = st.tabs(["Sparsification path", "Forgetting path"])

with tab_sparse:
    c1, c2, c3 = st.columns(3)
    params = {"sparsity": float(c1.slider("target sparsity", 0.1, 0.99, 0.7, key="geo-sparsity")),
              "steps": int(c2.number_input("steps", 2, 2000, 50, key="geo-steps")),
              "method": c3.selectbox("step", ["exact", "gradient"], key="geo-method",
                                     help="exact: the constrained step of the paper; gradient: a cheaper "
                                          "normalised gradient step")}
    # a path computed elsewhere (CLI) with more settings counts when these three agree
    path = w.analysis_result(store, run, "geodesic", what="sparsification path", epoch=epoch, params=params,
                             key="geo-go", accept=lambda p: all(p.get(k) == v for k, v in params.items()))
    if path is not None and len(path):
        st.caption("accuracy: the network on the path; accuracy_projected: its projection onto the sparse "
                   "hyperplane; distance: Euclidean distance to that hyperplane.")
        w.show_figure(path_figure(path, title=f"path to {params['sparsity']:.0%} sparsity"),
                      f"{run}-sparsify-path", key="geo-fig")
        w.show_table(path, f"{run}-sparsify-path", key="geo-table")

with tab_forget:
    if w.analysis_available("forgetting"):
        path = w.analysis_result(store, run, "forgetting", what="forgetting path", epoch=epoch, key="geo-f-go",
                                 any_params=True)
        if path is not None and len(path):
            w.show_figure(path_figure(path, title="forgetting path"), f"{run}-forgetting-path", key="geo-f-fig")
            w.show_table(path, f"{run}-forgetting-path", key="geo-f-table")
    else:
        w.not_available("The forgetting path (task A → task B, accuracy on both)",
                        "It needs a `forgetting` analysis that takes a second run; "
                        "`nngeo_core.geometry.forgetting_path` computes it from Python.")
