"""Geodesics: paths in weight space — accuracy and distance to the target along the path."""

import streamlit as st

from nngeo_core.dashboard import widgets as w
from nngeo_core.figures.geodesic import path_figure

st.title("Geodesics in weight space")
st.caption(
    "Approximate geodesics of the functional metric g_w = J_wᵀJ_w (Raghavan & Thomson 2020): each "
    "step changes the network's function as little as possible while moving towards the target."
)
store = w.get_store()
run = w.pick_run(store, key="geo-run")
if run is None:
    st.stop()
epoch = w.pick_epoch(store, run, key="geo-epoch")
tab_sparse, tab_forget = st.tabs(["Sparsification path", "Forgetting path"])

with tab_sparse:
    c1, c2, c3 = st.columns(3)
    params = {
        "sparsity": float(c1.slider("target sparsity", 0.1, 0.99, 0.7, key="geo-sparsity")),
        "steps": int(c2.number_input("steps", 2, 2000, 50, key="geo-steps")),
        "method": c3.selectbox(
            "step",
            ["exact", "gradient"],
            key="geo-method",
            help="exact: the constrained step of the paper; gradient: a cheaper normalised gradient step",
        ),
    }
    # a path computed elsewhere (CLI) with more settings counts when these three agree
    path = w.analysis_result(
        store,
        run,
        "geodesic",
        what="sparsification path",
        epoch=epoch,
        params=params,
        key="geo-go",
        accept=lambda p: all(p.get(k) == v for k, v in params.items()),
    )
    if path is not None and len(path):
        st.caption(
            "accuracy: the network on the path; accuracy_projected: its projection onto the sparse "
            "hyperplane; distance: Euclidean distance to that hyperplane."
        )
        w.show_figure(
            path_figure(path, title=f"path to {params['sparsity']:.0%} sparsity"), f"{run}-sparsify-path", key="geo-fig"
        )
        w.show_table(path, f"{run}-sparsify-path", key="geo-table")

with tab_forget:
    st.caption(
        "From this run (task A) towards a run of the same architecture trained on task B, changing "
        "task A's outputs as little as possible: accuracy on both tasks and distance to run B."
    )
    run_b = w.pick_run(
        store,
        label="Run trained on task B",
        key="geo-f-run-b",
        where=lambda r: r["key"] != run and w.same_architecture(store, run, r["key"], with_data=True),
        empty="No other run of this architecture to walk to: train the same model on another task "
        "on the **Train** page (e.g. `moons`, or `permuted:<dataset>:1`) and pick it here.",
    )
    if run_b is None:
        st.stop()
    c1, c2, c3 = st.columns(3)
    steps = int(c1.number_input("steps", 2, 2000, 50, key="geo-f-steps"))
    method = c2.selectbox(
        "step",
        ["exact", "gradient"],
        key="geo-f-method",
        help="exact: the constrained step of the paper; gradient: a cheaper normalised gradient step",
    )
    direction = c3.selectbox(
        "direction",
        ["target", "gradient"] if method == "exact" else ["target"],
        key="geo-f-direction",
        help="target: straight towards run B's weights; gradient: down task B's loss (exact steps only)",
    )
    params = {"run_b": run_b, "steps": steps, "method": method, "direction": direction}
    path = w.analysis_result(
        store,
        run,
        "forgetting",
        what="forgetting path",
        epoch=epoch,
        params=params,
        key="geo-f-go",
        accept=lambda p: all(p.get(k) == v for k, v in params.items()),
    )
    if path is not None and len(path):
        data = w.catalog(store).set_index("key")["data"]
        names = {
            "accuracy_a": f"task A ({data.get(run)})",
            "accuracy_b": f"task B ({data.get(run_b)})",
            "accuracy_mean": "mean of both",
            "distance_to_b": "distance to run B",
        }
        st.caption("The star marks the network on the path with the best mean accuracy of both tasks.")
        name = f"{run}-forgetting-{run_b}"
        w.show_figure(path_figure(path, title="forgetting path", names=names), name, key="geo-f-fig")
        w.show_table(path, name, key="geo-f-table")
