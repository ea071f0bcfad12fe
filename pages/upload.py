"""Upload: a network (checkpoint, state_dict or ONNX) -> validated (never executed) -> stored under
its content hash and the user's choices; and a dataset of the user's own."""

import streamlit as st

from nngeo_core.dashboard import widgets as w
from nngeo_core.dashboard.examples import EXAMPLES, available_examples, example_bytes
from nngeo_core.data import dataset_info, list_datasets
from nngeo_core.data.user import add_bytes, check_fits
from nngeo_core.specs import DataSpec
from nngeo_core.uploads import choice_needed, parse_input_shape, store_upload

PENDING = "upload-pending"  # what an ambiguous file asks: {file, option, candidates, message, choices}
LAST = "upload-last"  # the network stored last: {key, model, input_shape, num_classes}
DATASET = "upload-dataset-added"  # the manifest of the dataset added last
DATASET_SAID = "upload-dataset-said"  # what adding it gave: a message, or the error
OPTION_LABEL = {"arch": "Architecture", "activation": "Activation"}

st.title("Upload a checkpoint")
st.markdown(
    "Accepted: an nngeo checkpoint (`.safetensors` written by nngeo); a PyTorch `state_dict` "
    "(`.pt`/`.pth`, or a safetensors one) of a zoo model, a stack of `Linear` layers, a torchvision "
    "classifier or a timm model you name; or an `.onnx` file (a network of your own design). Files are "
    "read as tensors or as an ONNX graph only — nothing in them is executed — and stored under their "
    "content hash and your choices."
)
store = w.get_store()
max_mb = int(st.get_option("server.maxUploadSize"))


def report(result) -> None:
    verb = "Stored" if result.created else "Already stored"
    st.success(
        f"{verb} as `{result.key}`: {result.arch or result.model} ({result.source}), {result.n_params:,} parameters.",
        icon=":material/check_circle:",
    )
    if result.note:
        st.caption(result.note)
    st.session_state[w.CURRENT_RUN] = result.key
    st.session_state[LAST] = {
        "key": result.key,
        "model": result.model,
        "input_shape": list(result.input_shape),
        "num_classes": result.num_classes,
    }
    st.caption("It is now the selected run on the analysis pages.")
    w.show_table(result.layers, f"{result.key}-layers", key="upload-layers")


def attempt(file, data_spec, shape_text: str, choices: dict) -> None:
    """Store the file with these choices; an ambiguous file leaves its question in PENDING."""
    st.session_state.pop(PENDING, None)
    try:
        with st.spinner("validating…"):
            result = store_upload(
                file.getvalue(),
                name=file.name,
                store=store,
                data_spec=data_spec,
                max_bytes=max_mb * 2**20,
                input_shape=parse_input_shape(shape_text),
                **choices,
            )
    except Exception as exc:  # an untrusted file: one line, never a traceback
        asked = choice_needed(exc)
        if asked is None:
            w.error_box(exc)
        else:
            st.session_state[PENDING] = {**asked, "file": (file.name, file.size), "choices": choices}
        return
    report(result)


def shape_of(choice: str | None) -> str:
    """The C,H,W text of a dataset's image shape (empty for none, or for flat inputs)."""
    if not choice or choice.startswith("("):
        return ""
    params = {"resize": int(st.session_state.get("upload-resize", 28))} if choice == "digits" else {}
    shape = tuple(dataset_info(choice, **params).input_shape)
    return ",".join(map(str, shape)) if len(shape) == 3 else ""


def follow_dataset() -> None:
    """A keyed text box keeps what it holds: a new dataset choice writes its shape there itself."""
    st.session_state["upload-input-shape"] = shape_of(st.session_state.get("upload-data"))


st.subheader("Your network", divider="gray")
datasets = ["(from the file, or none)", *list_datasets()]
data_choice = st.selectbox(
    "Dataset to analyse it with",
    datasets,
    key="upload-data",
    on_change=follow_dataset,
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
# the weights of a torchvision conv net do not fix its input size: the chosen data's, else asked
data_shape = tuple(dataset_info(data_spec.name, **data_params).input_shape) if data_spec else ()
st.session_state.setdefault("upload-input-shape", ",".join(map(str, data_shape)) if len(data_shape) == 3 else "")
shape_text = st.text_input(
    "Input shape C,H,W (torchvision nets; ONNX files whose sizes are open)",
    placeholder="3,224,224 (ImageNet size) or 3,32,32 (CIFAR size)",
    key="upload-input-shape",
    help="Filled from the chosen dataset's images. Empty: the file's own shape, or 3,224,224 for a "
    "torchvision net. Part of the stored key unless it is the dataset's own shape.",
)

arch_text = st.text_input(
    "Architecture (optional)",
    placeholder="empty: recognised from the weights; timm:NAME for a timm model",
    key="upload-arch",
    help="A torchvision builder (resnet18, …) or a zoo model to load the weights as, or timm:NAME "
    "(e.g. timm:resnet18, with timm installed): timm models are only built when named. Part of the key.",
)
named = {"arch": arch_text.strip()} if arch_text.strip() else {}

uploaded = st.file_uploader(
    "Network file",
    type=["safetensors", "pt", "pth", "bin", "ckpt", "onnx", "pt2"],
    key="upload-file",
    max_upload_size=max_mb,
)
if uploaded is not None and st.button(
    "Validate and store", type="primary", key="upload-store", icon=":material/upload:"
):
    attempt(uploaded, data_spec, shape_text, named)

pending = st.session_state.get(PENDING)
if pending and uploaded is not None and tuple(pending["file"]) == (uploaded.name, uploaded.size):
    st.warning(pending["message"], icon=":material/help:")
    choice = st.selectbox(
        OPTION_LABEL[pending["option"]], pending["candidates"], key=f"upload-choice-{pending['option']}"
    )
    if st.button("Upload with this choice", key="upload-choose", icon=":material/upload:"):
        attempt(uploaded, data_spec, shape_text, {**pending["choices"], pending["option"]: choice})
        if PENDING in st.session_state:  # the next question (an architecture, then its activation)
            st.rerun()

st.subheader("Your own data", divider="gray")
st.markdown(
    "A `.zip` of an image folder (one subfolder per class), a `.npz` or `.safetensors` with `x` and `y`, "
    "a `.csv` with a label column, or IDX files (`*-idx3-ubyte` with its labels, in a `.zip`). Stored "
    "under the hash of its content as `user:<hash>`; it then appears in every dataset list."
)
# behind a toggle: one file input on the page unless a dataset is wanted (which file is which stays clear)
wanted = st.toggle("Upload a dataset of my own", key="upload-dataset-on")
data_file = (
    st.file_uploader(
        "Dataset file",
        type=["zip", "npz", "safetensors", "csv", "gz"],
        key="upload-dataset-file",
        max_upload_size=max_mb,
    )
    if wanted
    else None
)


def add_dataset_file() -> None:
    """The Add button's callback, run before the page is drawn again, so the new dataset is in
    the dataset list above and chosen there (with its input shape)."""
    st.session_state.pop(DATASET, None)  # what is shown below is always the file just given
    st.session_state.pop(DATASET_SAID, None)
    file = st.session_state.get("upload-dataset-file")
    if file is None:
        return
    try:
        added = add_bytes(file.getvalue(), file.name, max_bytes=max_mb * 2**20)
    except Exception as exc:  # an untrusted file: one line, never a traceback
        st.session_state[DATASET_SAID] = exc
        return
    st.session_state[DATASET] = added.manifest
    st.session_state["upload-data"] = added.name
    follow_dataset()
    st.session_state[DATASET_SAID] = f"{'Added' if added.created else 'Already added'}: `{added.name}`."


if data_file is not None:
    st.button("Add dataset", key="upload-dataset-add", icon=":material/dataset:", on_click=add_dataset_file)
said = st.session_state.get(DATASET_SAID)
if wanted and isinstance(said, BaseException):
    w.error_box(said)
elif wanted and said:
    st.success(said, icon=":material/check_circle:")
manifest = st.session_state.get(DATASET)
if wanted and manifest:
    shape = "×".join(map(str, manifest["input_shape"]))
    names = ", ".join(map(str, manifest["class_names"][:10])) + (" …" if len(manifest["class_names"]) > 10 else "")
    st.markdown(
        f"**{manifest['id']}**: inputs {shape}, {manifest['num_classes']} classes ({names}); "
        f"{manifest['counts']['train']:,} train / {manifest['counts']['test']:,} test examples."
    )
    last = st.session_state.get(LAST)
    if last and last.get("input_shape") and last.get("num_classes"):
        try:
            check_fits(manifest, last["input_shape"], last["num_classes"])
            st.success(f"It fits the network stored last ({last['model']}, `{last['key']}`).", icon=":material/check:")
        except Exception as exc:  # a mismatch is a one-line NNGeoError
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
