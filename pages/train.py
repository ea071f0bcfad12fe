"""Train: pick a model, data and hyper-parameters, submit a training job, watch its curves.

The form starts from ``defaults.form_defaults`` and the spec is made by ``defaults.run_spec``, the
path `nngeo train` takes too, so the same choices are the same run (and key) either way. Every
choice is remembered for this session (``widgets.remembered``/``keep``), so the form comes back as
it was left after a visit to another page.
"""

import pandas as pd
import streamlit as st

from nngeo_core.dashboard import jobs_view
from nngeo_core.dashboard import widgets as w
from nngeo_core.dashboard.forms import check_buildable, run_spec, snapshot_epochs_for
from nngeo_core.data import dataset_info, list_datasets
from nngeo_core.defaults import data_declaration, form_defaults, model_declaration
from nngeo_core.errors import NNGeoError, one_line
from nngeo_core.figures.training import training_curves
from nngeo_core.models import list_models, model_info
from nngeo_core.settings import get_settings

JOB = "train-job"  # session key: the training job this page watches
TRAINED = "train-trained"  # session key: the run a job of this page trained (its key)
OPTIMIZERS = ["adam", "sgd"]
SCHEDULES = ["constant", "cosine", "step"]


def pick(widget, label: str, options: list, key: str, default, **kwargs):
    """A select box that starts where the user left it this session."""
    start = w.remembered(key, default, lambda v: v in options)
    return w.keep(key, widget(label, options, index=options.index(start), key=key, **kwargs))


def number(col, label: str, key: str, default, cast=int, **kwargs):
    """A number input that starts where the user left it this session."""
    low, high = kwargs.get("min_value"), kwargs.get("max_value")

    def fits(v) -> bool:
        return isinstance(v, (int, float)) and (low is None or v >= low) and (high is None or v <= high)

    value = col.number_input(label, value=cast(w.remembered(key, default, fits)), key=key, **kwargs)
    return cast(w.keep(key, value))


st.title("Train")
store = w.get_store()

models = list_models()
datasets = list_datasets()
c1, c2 = st.columns(2)
model = pick(c1.selectbox, "Model", models, "train-model", "mlp" if "mlp" in models else models[0])
data = pick(c2.selectbox, "Data", datasets, "train-data", "xor" if "xor" in datasets else datasets[0])
start = form_defaults(model, data)
minfo = model_info(model)
c1.caption(minfo["description"])

with st.expander("Model parameters", expanded=model == "mlp"):
    model_params = w.param_inputs(
        model_declaration(model), key=f"train-mp-{model}", start=start["model_params"], what=f"model {model}"
    )
with st.expander("Data parameters", expanded=start["data_params"] != dict(dataset_info(data).defaults)):
    # per model and data: the start depends on both (resize=28 for MNIST models on digits)
    data_params = w.param_inputs(
        data_declaration(data), key=f"train-dp-{model}-{data}", start=start["data_params"], what=f"dataset {data}"
    )
    data_seed = number(st, "data seed", "train-data-seed", start["data_seed"], min_value=0, step=1)
try:
    dinfo = dataset_info(data, **{k: v for k, v in data_params.items() if v is not None})
    c2.caption(f"{dinfo.description} · input {dinfo.input_shape} · {dinfo.num_classes} classes")
except NNGeoError as exc:
    c2.caption(dataset_info(data).description)
    data_params.errors.append(one_line(exc))
    w.error_box(exc)

d = start["train"]
k = f"train-{model}-{data}"  # each model and data keep their own training settings
st.subheader("Training", divider="gray")
t1, t2, t3, t4 = st.columns(4)
epochs = number(t1, "epochs", f"{k}-epochs", d["epochs"], min_value=1, max_value=10_000, step=1)
batch = number(t2, "batch size", f"{k}-batch", d["batch_size"], min_value=1, step=1)
optimizer = pick(t3.selectbox, "optimizer", OPTIMIZERS, f"{k}-opt", d["optimizer"])
lr = number(t4, "learning rate", f"{k}-lr", d["lr"], cast=float, min_value=0.0, format="%.4g")
t5, t6, t7, t8 = st.columns(4)
schedule = pick(t5.selectbox, "schedule", SCHEDULES, f"{k}-sched", d["schedule"])
weight_decay = number(t6, "weight decay", f"{k}-wd", d["weight_decay"], cast=float, min_value=0.0, format="%.4g")
seed = number(t7, "seed", f"{k}-seed", d["seed"], min_value=0, step=1)
# no snapshots unless asked for, as `nngeo train` does: the same choices are the same run
every = number(t8, "snapshot every k epochs (0 = none)", f"{k}-every", 0, min_value=0, step=1)
snap_text = st.text_input(
    "or snapshot epochs",
    value=w.remembered(f"{k}-snaps", "", lambda v: isinstance(v, str)),
    placeholder="e.g. 0, 5, 10",
    key=f"{k}-snaps",
)
w.keep(f"{k}-snaps", snap_text)

spec = None
errors = model_params.errors + data_params.errors
if not errors:
    try:
        asked = run_spec(
            model,
            data,
            model_params=model_params,
            data_params=data_params,
            data_seed=data_seed,
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
        check_buildable(asked)  # lenet5 on xor: said here, not by a failed job
        spec = asked
    except NNGeoError as exc:
        w.error_box(exc)

# a job of this page that has ended: say what it did (before the page shows the stored run)
job_id = st.session_state.get(JOB)
if job_id:
    row = jobs_view.status(job_id)  # the queue itself, not the shared snapshot: it may be a poll old
    if row is not None and jobs_view.is_done(row):
        st.session_state.pop(JOB, None)
        st.session_state[TRAINED] = row["result"] or row["spec_hash"]

stored = spec is not None and store.exists(spec.hash)
if stored and spec is not None:
    if st.session_state.get(TRAINED) == spec.hash:
        st.success(f"Trained: the run is stored as `{spec.hash}`.", icon=":material/check_circle:")
    else:
        st.success(f"This run is already in the store as `{spec.hash}`.", icon=":material/check_circle:")
if (
    st.button(
        "Train", type="primary", icon=":material/play_arrow:", key="train-submit", disabled=spec is None or stored
    )
    and spec is not None
):
    row = w.submit_job(spec, jobs_view.label_for(spec))
    if row is not None:
        st.session_state[JOB] = row["id"]
        st.session_state["train-live"] = {}
        st.session_state.pop(TRAINED, None)


def live() -> None:
    """The submitted job: progress bar, live curves from its per-epoch metrics."""
    job_id = st.session_state.get(JOB)
    if not job_id:
        return
    row = jobs_view.job(job_id)
    if row is None:
        st.warning(f"job {job_id[:8]} is no longer known to the queue")
        return
    points = st.session_state.setdefault("train-live", {})
    m = row["metrics"]
    if "epoch" in m and m.get("loss") is not None:
        # the epoch's loss and accuracy so far (its final values once it ends), paired with it
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
        st.rerun(scope="app")  # the page then says "Trained" and shows the stored run
    else:
        st.caption(f"job {job_id[:8]}: {row['state']}")


# poll only while this page's job is queued or running: an idle Train tab then costs nothing
watched = st.session_state.get(JOB)
watched_row = jobs_view.status(watched) if watched else None
if watched_row is not None and jobs_view.is_active(watched_row):
    st.fragment(live, run_every=get_settings().poll_s)()
else:
    live()

if stored and spec is not None:
    entry = store.entry(spec.hash)
    st.metric("test accuracy", f"{entry['metric']:.4f}")
    history = w.read_result(store, spec.hash)
    w.show_figure(training_curves(history, title=f"{model} on {data}"), f"{spec.hash}-history", key="train-history")
    if st.button("Open in analysis pages", icon=":material/open_in_new:", key="train-open"):
        st.session_state[w.CURRENT_RUN] = spec.hash
        st.toast(f"{spec.hash[:8]} selected")
