"""Curvature: the layer graph with edges coloured by Ollivier-Ricci curvature (diverging, 0 = white)
and neurons by node curvature; top-k edges for wide layers; per-layer histograms; readouts: a
layer's curvature matrix, curvature vs |w| with Spearman ρ per layer, dead edges per layer."""

import streamlit as st

from nngeo_core.dashboard import widgets as w
from nngeo_core.dashboard.results import builder_labels, builder_layer_names, curvature_layers, weight_shapes
from nngeo_core.figures.common import labels_for, layer_labels
from nngeo_core.figures.curvature import (
    NULL_STATISTICS,
    curvature_heatmap,
    curvature_histogram,
    curvature_vs_nulls,
    curvature_vs_weight,
    curvature_weight_correlation,
    dead_edges,
    dead_share_figure,
    edge_layers,
    layer_graph,
    top_edges,
)
from nngeo_core.figures.persistence import has_nulls
from nngeo_core.models.nulls import NULL_KINDS, trained_rows

st.title("Curvature")
store = w.get_store()
run = w.pick_run(store, key="curv-run")
if run is None:
    st.stop()
epoch = w.pick_epoch(store, run, key="curv-epoch")
shapes = weight_shapes(store, run)  # layer labels 'fc2 (6→5)'
method = st.radio(
    "Curvature of",
    ["curvature_weights", "curvature"],
    horizontal=True,
    key="curv-method",
    format_func={
        "curvature_weights": "the weight graph (Ollivier-Ricci on |w|)",
        "curvature": "the network on data (neural curvature)",
    }.get,
)
with st.expander("Layers and conv positions", expanded=False):
    positions = int(
        st.number_input("output positions per conv layer", 1, 1024, 4, key="curv-positions", help="spread evenly")
    )
    layers, default, total = curvature_layers(shapes, positions)
    chosen = st.multiselect(
        "layers to compute (the whole graph is their neighbourhood)",
        layers,
        default=default,
        key=f"curv-layers-{run}",
        format_func=builder_labels(layers, layer_labels(layers, shapes), builder_layer_names(store, run, layers)).get,
    )
if layers and default != layers:
    st.caption(
        f"All {len(layers)} layers would be about {total:,} edges, each a transport problem: the first and "
        "last layers are chosen; add others under *Layers and conv positions*."
    )
params: dict = {} if not layers or chosen == layers else {"layers": ",".join(chosen)}
if positions != 4:
    params["conv_positions"] = positions
if method == "curvature_weights" and st.checkbox(
    "Compare with null models",
    key="curv-nulls",
    help="the same curvature of the network at initialisation, with each layer's weights shuffled, and of "
    "Gaussian weights of the same shape and RMS (3 seeds each): what an untrained network already does",
):
    params["null_models"] = NULL_KINDS
full = w.analysis_result(
    store, run, method, what="curvature", epoch=epoch, key="curv-go", params=params, any_params=not params
)
edges = trained_rows(full)  # a result with null models: the network's own edges
if full is not None and has_nulls(full):
    statistic = st.radio(
        "per layer, against the null models",
        list(NULL_STATISTICS),
        horizontal=True,
        key="curv-null-stat",
        format_func=NULL_STATISTICS.get,
    )
    w.show_figure(
        curvature_vs_nulls(full, statistic=statistic, shapes=shapes), f"{run}-curvature-nulls", key="curv-nulls-fig"
    )
if edges is not None and len(edges):
    c1, c2 = st.columns(2)
    by = c1.radio(
        "Show the top edges by",
        ["curvature", "weight"],
        horizontal=True,
        key="curv-by",
        format_func={"curvature": "|curvature|", "weight": "|weight|"}.get,
    )
    widest = int(edges.groupby("layer").size().max())
    k = c2.slider("edges per layer", 1, max(2, widest), min(widest, 200), key="curv-k")
    shown = top_edges(edges, k, by=by if by in edges.columns else "curvature")
    w.show_figure(
        layer_graph(edges, shown=shown, title="layer graph", shapes=shapes), f"{run}-curvature-graph", key="curv-graph"
    )
    w.show_figure(
        curvature_histogram(edges, title="curvature per layer", shapes=shapes),
        f"{run}-curvature-hist",
        key="curv-hist",
    )
    dead = int(dead_edges(edges)["dead"].iloc[-1])
    if dead:
        st.caption(
            f"`alive` counts the calibration inputs on which both neurons of an edge fire; {dead:,} edges "
            "have `alive` = 0 (dead on every input) and carry `dead_value` as their curvature by definition."
        )
    st.subheader("Reading the result")
    drawn = edge_layers(edges)
    names = builder_labels(drawn, labels_for(edges, shapes), builder_layer_names(store, run, drawn))
    c1, c2 = st.columns(2)
    matrix_layer = c1.selectbox("curvature matrix of", drawn, key=f"curv-matrix-layer-{run}", format_func=names.get)
    pooled = c2.radio(
        "cell of a conv layer or a block of neurons",
        ["mean", "min"],
        horizontal=True,
        key="curv-matrix-agg",
        format_func={"mean": "mean κ", "min": "min κ"}.get,
    )
    w.show_figure(
        curvature_heatmap(edges, matrix_layer, aggregate=pooled, shapes=shapes),
        f"{run}-curvature-matrix",
        key="curv-matrix",
    )
    if dead:
        st.caption(
            "Dead edges keep `dead_value` (1 by default) as their κ: a dead neuron is a flat row or column "
            "of that value in the matrix; the scatter and ρ leave dead edges out."
        )
    w.show_figure(curvature_vs_weight(edges, shapes=shapes), f"{run}-curvature-vs-weight", key="curv-scatter")
    st.caption(
        "Spearman ρ of κ with |w| over each layer's live edges: near ±1, curvature ranks the edges as "
        "magnitude does; near 0, it says something magnitude does not."
    )
    correlation = curvature_weight_correlation(edges)
    correlation["layer"] = correlation["layer"].map(lambda n: names.get(n, n))
    w.show_table(correlation, f"{run}-curvature-vs-weight", key="curv-corr")
    if "alive" in edges.columns:
        if dead:
            w.show_figure(dead_share_figure(edges, shapes=shapes), f"{run}-curvature-dead", key="curv-dead")
        else:
            st.caption("Dead edges per layer: no data: no dead edges (every edge is alive on some input).")
    w.show_table(edges, f"{run}-curvature", key="curv-table")
