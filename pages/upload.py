"""Upload: a checkpoint file -> validated (never executed) -> stored under its content hash."""

import streamlit as st

from nngeo_core.dashboard import widgets as w
from nngeo_core.dashboard.examples import EXAMPLES, available_examples, example_bytes
from nngeo_core.data import list_datasets
from nngeo_core.specs import DataSpec
from nngeo_core.uploads import store_upload

st.title("Upload a checkpoint")
st.markdown(
    "Accepted: an nngeo checkpoint (`.safetensors` written by nngeo), a plain PyTorch `state_dict` "
    "(`.pt`/`.pth`) of a zoo model or of a stack of `Linear` layers, or a safetensors `state_dict`. "
    "Files are read as tensors only — nothing in them is executed — and stored under their content hash."
)
store = w.get_store()
max_mb = int(st.get_option("server.maxUploadSize"))


def report(result) -> None:
    verb = "Stored" if result.created else "Already stored"
    st.success(
        f"{verb} as `{result.key}`: {result.model} ({result.source}), {result.n_params:,} parameters.",
        icon=":material/check_circle:",
    )
    if result.note:
        st.caption(result.note)
    st.session_state[w.CURRENT_RUN] = result.key
    st.caption("It is now the selected run on the analysis pages.")
    w.show_table(result.layers, f"{result.key}-layers", key="upload-layers")


datasets = ["(from the file, or none)", *list_datasets()]
data_choice = st.selectbox(
    "Dataset to analyse it with",
    datasets,
    key="upload-data",
    help="Needed by analyses that use data (volume element, geodesics) when the file "
    "does not say which data the model was trained on.",
)
data_params = {}
if data_choice == "digits":
    side = st.number_input(
        "digits resize (28 for MNIST models, 8 = original)", min_value=8, max_value=64, value=28, key="upload-resize"
    )
    data_params = {"resize": int(side)} if side != 8 else {}
data_spec = None if data_choice.startswith("(") else DataSpec(data_choice, params=data_params)

uploaded = st.file_uploader(
    "Checkpoint file", type=["safetensors", "pt", "pth", "bin", "ckpt"], key="upload-file", max_upload_size=max_mb
)
if uploaded is not None and st.button(
    "Validate and store", type="primary", key="upload-store", icon=":material/upload:"
):
    try:
        with st.spinner("validating…"):
            report(
                store_upload(
                    uploaded.getvalue(), name=uploaded.name, store=store, data_spec=data_spec, max_bytes=max_mb * 2**20
                )
            )
    except Exception as exc:  # an untrusted file: one line, never a traceback
        w.error_box(exc)

st.subheader("Try an example", divider="gray")
examples = available_examples()
if not examples:
    st.info("No example checkpoints found; make them with `python assets/make_examples.py`.", icon=":material/info:")
for i, name in enumerate(examples):
    if st.button(f"Try an example: {name}", key=f"upload-example-{i}", icon=":material/science:"):
        try:
            report(store_upload(example_bytes(name), name=EXAMPLES[name][0], store=store, data_spec=EXAMPLES[name][1]))
        except Exception as exc:
            w.error_box(exc)
