"""Train: pick a model, data and hyper-parameters, submit a training job, watch its curves."""

import pandas as pd
import streamlit as st

from nngeo_core.dashboard import jobs_view
from nngeo_core.dashboard import widgets as w
from nngeo_core.dashboard.forms import run_spec, snapshot_epochs_for
from nngeo_core.data import dataset_info, list_datasets
from nngeo_core.defaults import default_train
from nngeo_core.errors import NNGeoError, one_line
from nngeo_core.figures.training import training_curves
from nngeo_core.models import list_models, model_info

st.title("Train")
store = w.get_store()

models = list_models()
datasets = list_datasets()
c1, c2 = st.columns(2)
model = c1.selectbox("Model", models, index=models.index("mlp") if "mlp" in models else 0, key="train-model")
data = c2.selectbox("Data", datasets, index=datasets.index("xor") if "xor" in datasets else 0, key="train-data")
minfo, dinfo = model_info(model), dataset_info(data)
c1.caption(minfo["description"])
c2.caption(f"{dinfo.description} · input {dinfo.input_shape} · {dinfo.num_classes} classes")

with st.expander("Model parameters", expanded=model == "mlp"):
    model_params = w.param_inputs(minfo["params"], minfo["choices"], key=f"train-mp-{model}")
with st.expander("Data parameters"):
    data_params = w.param_inputs(dinfo.defaults, key=f"train-dp-{data}")
    data_seed = st.number_input("data seed", value=0, step=1, key="train-data-seed")

d = default_train(model, data)
k = f"train-{model}-{data}"  # fresh defaults when model or data change
st.subheader("Training", divider="gray")
t1, t2, t3, t4 = st.columns(4)
epochs = int(t1.number_input("epochs", min_value=1, max_value=10_000, value=d.epochs, step=1, key=f"{k}-epochs"))
batch = int(t2.number_input("batch size", min_value=1, value=d.batch_size, step=1, key=f"{k}-batch"))
optimizer = t3.selectbox("optimizer", ["adam", "sgd"], index=["adam", "sgd"].index(d.optimizer), key=f"{k}-opt")
lr = float(t4.number_input("learning rate", min_value=0.0, value=float(d.lr), format="%.4g", key=f"{k}-lr"))
t5, t6, t7, t8 = st.columns(4)
schedule = t5.selectbox(
    "schedule", ["constant", "cosine", "step"], index=["constant", "cosine", "step"].index(d.schedule), key=f"{k}-sched"
)
weight_decay = float(
    t6.number_input("weight decay", min_value=0.0, value=float(d.weight_decay), format="%.4g", key=f"{k}-wd")
)
seed = int(t7.number_input("seed", value=0, step=1, key=f"{k}-seed"))
every = int(
    t8.number_input(
        "snapshot every k epochs (0 = none)", min_value=0, value=max(1, epochs // 5), step=1, key=f"{k}-every"
    )
)
snap_text = st.text_input("or snapshot epochs", placeholder="e.g. 0, 5, 10", key=f"{k}-snaps")

try:
    spec = run_spec(
        model,
        data,
        model_params=model_params,
        data_params=data_params,
        data_seed=int(data_seed),
        train=dict(
            epochs=epochs,
            batch_size=batch,
            optimizer=optimizer,
            lr=lr,
            schedule=schedule,
            weight_decay=weight_decay,
            seed=seed,
            snapshots=snapshot_epochs_for(epochs, snap_text, every or None),
        ),
    )
except NNGeoError as exc:
    w.error_box(exc)
    st.stop()

stored = store.exists(spec.hash)
if stored:
    st.success(f"This run is already in the store as `{spec.hash}`.", icon=":material/check_circle:")
if st.button("Train", type="primary", icon=":material/play_arrow:", key="train-submit", disabled=stored):
    row = w.submit_job(spec, f"train {model} on {data}")
    if row is not None:
        st.session_state["train-job"] = row["id"]
        st.session_state["train-live"] = {}


@st.fragment(run_every=1.0)
def live() -> None:
    """Poll the submitted job: progress bar, live curves from its per-epoch metrics."""
    job_id = st.session_state.get("train-job")
    if not job_id:
        return
    row = jobs_view.status(job_id)
    if row is None:
        st.warning(f"job {job_id[:8]} is no longer known to the queue")
        return
    points = st.session_state.setdefault("train-live", {})
    m = row["metrics"]
    if "epoch" in m and "loss" in m:
        points[int(m["epoch"])] = {
            "epoch": int(m["epoch"]),
            "train_loss": m.get("loss"),
            "train_acc": m.get("accuracy"),
            "test_acc": m.get("test_accuracy"),
        }
    if jobs_view.is_active(row):
        st.progress(row["fraction"], text=jobs_view.progress_text(row))
        w.show_figure(training_curves(pd.DataFrame(points.values()), title="live"), "train-live", key="train-live")
    elif jobs_view.is_failed(row):
        st.error(f"training failed: {one_line(str(row['error'] or 'unknown error'))}", icon=":material/error:")
    elif jobs_view.is_done(row):
        st.session_state.pop("train-job", None)
        st.rerun(scope="app")
    else:
        st.caption(f"job {job_id[:8]}: {row['state']}")


live()

if stored:
    entry = store.entry(spec.hash)
    st.metric("test accuracy", f"{entry['metric']:.4f}")
    history = w.read_result(store, spec.hash)
    w.show_figure(training_curves(history, title=f"{model} on {data}"), f"{spec.hash}-history", key="train-history")
    if st.button("Open in analysis pages", icon=":material/open_in_new:", key="train-open"):
        st.session_state[w.CURRENT_RUN] = spec.hash
        st.toast(f"{spec.hash[:8]} selected")
