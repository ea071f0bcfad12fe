"""Volume element: log10 √det g (and the Ricci scalar) of the pullback metric in input space.

2-D tasks: a heatmap over the input plane with the training points and the decision boundary,
one per training snapshot. Image models: the plane through three chosen inputs and the line
between two of them.
"""

import streamlit as st

from nngeo_core.dashboard import jobs_view
from nngeo_core.dashboard import widgets as w
from nngeo_core.dashboard.datapoints import thumbnail
from nngeo_core.dashboard.planes import line_of_plane
from nngeo_core.dashboard.results import final_epoch, input_shape_of, snapshot_choices
from nngeo_core.defaults import complete
from nngeo_core.figures.volume import QUANTITY_LABELS, geometry_heatmap, line_profile, plane_heatmap
from nngeo_core.runs import snapshot_epochs
from nngeo_core.specs import AnalysisSpec
from nngeo_core.store.queries import analysis_epochs, data_spec_of

st.title("Volume element")
store = w.get_store()
run = w.pick_run(store, key="vol-run")
if run is None:
    st.stop()
data = data_spec_of(store, run)
if data is None:
    st.info(
        "This model records no dataset, so its input space is unknown. Upload it again and pick the "
        "dataset it was trained on.",
        icon=":material/info:",
    )
    st.stop()
shape = input_shape_of(store, run)

if shape == (2,):
    c1, c2 = st.columns(2)
    quantity = c1.radio(
        "Quantity", ["log_volume", "ricci"], format_func=QUANTITY_LABELS.get, horizontal=True, key="vol-quantity"
    )
    resolution = c2.select_slider("Grid resolution", [40, 60, 80, 100, 150], value=80, key="vol-res")
    params = {"resolution": int(resolution)}
    # a snapshot at the final epoch is the final model itself: offered once, as "final model"
    epochs = snapshot_choices(snapshot_epochs(run, store=store), final_epoch(store, run))
    stored = analysis_epochs(store, run, "volume", w.catalog(store))
    missing = [e for e in [None, *epochs] if e not in stored]
    busy = jobs_view.active_jobs_by_hash()
    running = [
        e for e in missing if complete(AnalysisSpec(run=run, method="volume", params=params, epoch=e)).hash in busy
    ]
    missing = [e for e in missing if e not in running]
    if running:
        st.caption(f"computing {len(running)} model(s)…")
    if missing and st.button(
        f"Compute for {len(missing)} model(s) (final + snapshots)", key="vol-go", icon=":material/calculate:"
    ):
        for e in missing:
            w.submit_job(
                AnalysisSpec(run=run, method="volume", params=params, epoch=e),
                "volume element" + (f" epoch {e}" if e is not None else ""),
            )
        st.info("Queued; the heatmaps appear here when the jobs are done.", icon=":material/schedule:")
    if stored:
        if len(stored) > 1:
            epoch = st.select_slider(
                "Training snapshot",
                options=stored,
                value=stored[0],
                key="vol-epoch",
                format_func=lambda e: "final model" if e is None else f"epoch {e}",
            )
        else:
            epoch = stored[0]
        grid = w.analysis_result(
            store, run, "volume", what="volume element", epoch=epoch, key="vol-one", any_params=True
        )
        if grid is not None:
            if quantity == "ricci" and "ricci" not in grid.columns:
                st.info("This result has no Ricci scalar; recompute with Ricci enabled.", icon=":material/info:")
            else:
                points = w.training_points(data)
                when = "final model" if epoch is None else f"epoch {epoch}"
                w.show_figure(
                    geometry_heatmap(
                        grid, value=quantity, points=points, title=f"{QUANTITY_LABELS[quantity]} · {when}"
                    ),
                    f"{run}-{quantity}-{when}",
                    key="vol-heat",
                )
                w.table_downloads(grid, f"{run}-volume-{when}", key="vol-table")
else:
    st.caption(
        f"{data.name}: inputs of shape {shape}. Pick three test inputs: the plane through them, "
        "and the line from the first to the second."
    )
    cols = st.columns(3)
    picks = [
        int(c.number_input(f"test input {i + 1}", min_value=0, value=i, step=1, key=f"vol-idx-{i}"))
        for i, c in enumerate(cols)
    ]
    try:
        inputs = w.chosen_inputs(data, picks)
    except Exception as exc:
        w.error_box(exc)
        st.stop()
    for c, i, (x, label) in zip(cols, picks, inputs, strict=False):
        c.image(thumbnail(x), caption=f"#{i} · class {label}", width=112)
    epoch = w.pick_epoch(store, run, key="vol-img-epoch")
    resolution = st.select_slider("Plane resolution", [20, 30, 40, 60], value=30, key="vol-img-res")
    plane = w.analysis_result(
        store,
        run,
        "volume",
        what="plane through the three inputs",
        epoch=epoch,
        params={"indices": picks, "resolution": int(resolution)},
        key="vol-plane-go",
        accept=lambda p: list(p.get("indices") or []) == picks,
    )
    if plane is not None and len(plane):
        quantity = st.radio(
            "Quantity",
            # only what was computed: a foreign net's plane has the plane's area element, no volume
            [q for q in ("log_volume", "log_area") if q in plane.columns and plane[q].notna().any()],
            format_func=QUANTITY_LABELS.get,
            horizontal=True,
            key="vol-img-quantity",
        )
        names = [f"#{i} (class {label})" for i, (_, label) in zip(picks, inputs, strict=False)]
        w.show_figure(
            plane_heatmap(
                plane,
                value=quantity,
                names=names,
                title=f"{QUANTITY_LABELS[quantity]} on the plane through the three inputs",
            ),
            f"{run}-plane",
            key="vol-plane",
        )
        w.table_downloads(plane, f"{run}-plane", key="vol-plane-table")
        line = line_of_plane(plane)
        if line is None:
            st.info(
                "This plane was stored without the line between inputs 1 and 2 (an older version): delete "
                "it on the **Runs** page and compute it again.",
                icon=":material/info:",
            )
        else:
            st.caption(
                f"Along the segment x(t) = (1 − t)·x₁ + t·x₂ from input 1 to input 2, computed at "
                f"{len(line)} points of the segment."
            )
            w.show_figure(
                line_profile(
                    line,
                    values=tuple(c for c in ("log_volume", "log_area") if c in line.columns and line[c].notna().any()),
                    title=f"from #{picks[0]} to #{picks[1]}",
                ),
                f"{run}-line",
                key="vol-line",
            )
            w.table_downloads(line, f"{run}-line", key="vol-line-table")
