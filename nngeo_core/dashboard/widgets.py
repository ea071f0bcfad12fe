"""Streamlit pieces shared by the pages (the only module here that imports streamlit).

Pages stay thin: they pick a run, build a spec, call ``submit_job`` or read a result, and show
it with ``show_figure`` / ``show_table``, which add the downloads every figure and table gets.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from ..defaults import complete
from ..errors import NNGeoError, one_line
from ..export import SWEEP_KIND, export_bytes, export_formats
from ..params import declare, format_value
from ..runs import read_header, snapshot_epochs
from ..settings import get_settings
from ..specs import AnalysisSpec, spec_from_dict
from ..store import MODEL_KINDS, Store, default_store
from ..store.queries import find_analysis, model_runs
from . import datapoints, job_progress, jobs_view
from .downloads import figure_html, plotly_config, safe_filename, table_bytes
from .forms import AUTOMATIC, FormMemory, WidgetSpec, param_text, widget_for
from .results import column_formats, final_epoch, run_label, snapshot_choices

CURRENT_RUN = "nngeo_current_run"  # session key: the run opened on the Runs page
SUBMITTED = "nngeo_submitted_jobs"  # session key: job ids submitted from this session


def _leave_pages_directory_mode() -> None:
    """Streamlit starts every server in its older multipage mode when a ``pages/`` folder sits next
    to the main script, and leaves it only once app.py calls ``st.navigation``. So the first visit
    after start-up that opens a page's URL directly (a bookmark, a reload) would run that page
    alone: no sidebar, no worker, the folder's file names as the menu. This module is imported
    first by that page, so it switches the mode off here and reruns, which runs app.py."""
    try:  # here, not at the top: the except below is the check for a Streamlit without this internal
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:  # a Streamlit without this internal: nothing to fix
        return
    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


_leave_pages_directory_mode()


def get_store() -> Store:
    return default_store()


def catalog(store: Store) -> pd.DataFrame:
    """The store's catalog, read again only when it changed (a local catalog folder's mtime moves
    whenever a result is added or deleted; other stores are re-read every ``settings.poll_s`` and
    whenever a job has finished). One read serves every session; ``st.cache_data`` hands every
    caller its own unpickled copy, so callers may modify it."""
    return _catalog(store.root, _catalog_stamp(store))


def _catalog_stamp(store: Store) -> tuple:
    if store.local:
        folder = os.path.join(store.path, "catalog")
        try:
            st_ = os.stat(folder)
        except FileNotFoundError:
            return ("missing",)
        return (st_.st_mtime_ns, len(os.listdir(folder)))
    # no cheap change marker: a time bucket, and the jobs seen finishing (they add results)
    return ("ttl", int(time.time() // get_settings().poll_s), jobs_view.finished_count())


@st.cache_data(show_spinner=False, max_entries=8)
def _catalog(root: str, stamp: tuple) -> pd.DataFrame:
    return Store(root).catalog()


@st.cache_data(show_spinner=False, max_entries=128)
def _read_result(root: str, key: str) -> pd.DataFrame:
    # results are content-addressed: one key always names the same table
    return Store(root).get(key)


def read_result(store: Store, key: str) -> pd.DataFrame:
    return _read_result(store.root, key)  # a fresh copy per call (st.cache_data unpickles)


def show_figure(fig: go.Figure, name: str, *, key: str | None = None) -> None:
    """The figure (PNG from plotly's toolbar camera) and a standalone-HTML download button."""
    st.plotly_chart(fig, config=plotly_config(name), key=f"chart-{key or name}")
    st.download_button(
        "Download HTML",
        data=lambda: figure_html(fig),
        file_name=f"{safe_filename(name)}.html",
        mime="text/html",
        key=f"html-{key or name}",
        on_click="ignore",
        icon=":material/download:",
    )


def show_table(
    df: pd.DataFrame,
    name: str,
    *,
    key: str | None = None,
    max_rows: int = 5000,
    downloads: bool = True,
    **dataframe_kwargs: Any,
) -> None:
    """The table (sortable by clicking headers; the first ``max_rows`` rows) with CSV and Parquet
    downloads of all of it (unless ``downloads`` is false: the page offers its own). Columns are
    formatted and explained by ``results.column_formats`` (tiny probabilities in scientific
    notation); a ``column_config`` given here wins."""
    given = dict(dataframe_kwargs.pop("column_config", None) or {})
    auto = {
        c: st.column_config.NumberColumn(help=spec.get("help"), format=spec["format"])
        if "format" in spec
        else st.column_config.Column(help=spec.get("help"))
        for c, spec in column_formats(df).items()
    }
    st.dataframe(df.head(max_rows), hide_index=True, column_config={**auto, **given}, **dataframe_kwargs)
    if len(df) > max_rows:
        st.caption(f"showing {max_rows:,} of {len(df):,} rows" + ("; the downloads have them all" if downloads else ""))
    if downloads:
        table_downloads(df, name, key=key)


def table_downloads(df: pd.DataFrame, name: str, *, key: str | None = None) -> None:
    # a row sized to its buttons, not fixed-width columns: those cut the labels to "C.." in a
    # narrow container (a half-width column on Compare)
    row = st.container(horizontal=True, gap="small")
    fname = safe_filename(name)
    row.download_button(
        "CSV",
        data=lambda: table_bytes(df, "csv"),
        file_name=f"{fname}.csv",
        mime="text/csv",
        key=f"csv-{key or name}",
        on_click="ignore",
        icon=":material/download:",
        width="content",
    )
    row.download_button(
        "Parquet",
        data=lambda: table_bytes(df, "parquet"),
        file_name=f"{fname}.parquet",
        mime="application/octet-stream",
        key=f"pq-{key or name}",
        on_click="ignore",
        icon=":material/download:",
        width="content",
    )


def pick_run(
    store: Store,
    *,
    label: str = "Run",
    key: str = "run",
    kinds: Iterable[str] | None = None,
    where: Callable[[pd.Series], bool] | None = None,
    empty: str | None = None,
    remember: bool | None = None,
) -> str | None:
    """A run picker over stored models. It starts at this session's current run (``CURRENT_RUN``:
    the run last picked on any page, opened on the Runs or Train page, or uploaded), and a run
    the user picks becomes the current run, so the next page starts from it. ``remember`` (default:
    unless ``where`` narrows the list to partners of another run, like the second run of a pair):
    whether a pick here changes the current run. ``empty``: the message shown when no run
    qualifies."""
    runs = model_runs(store, catalog(store))
    if kinds:
        runs = runs[runs["kind"].isin(list(kinds))]
    if where is not None and len(runs):
        runs = runs[[bool(where(r)) for _, r in runs.iterrows()]]
    if not len(runs):
        st.info(
            empty
            or "No trained or uploaded models in the store yet: train one on the **Train** page or "
            "upload one on the **Upload** page.",
            icon=":material/info:",
        )
        return None
    keys = list(runs["key"])
    labels = {str(r["key"]): run_label(r) for _, r in runs.iterrows()}
    current = st.session_state.get(CURRENT_RUN)
    index = keys.index(current) if current in keys else 0
    # only a pick by the user moves the current run: a picker that starts elsewhere because the
    # current run is not among its choices (an upload on the Pruning page) leaves it as it is
    on_change = _make_current if (remember if remember is not None else where is None) else None
    chosen = st.selectbox(
        label,
        keys,
        index=index,
        format_func=lambda k: labels.get(k, str(k)),
        key=key,
        on_change=on_change,
        args=(key,),
    )
    return chosen


@st.cache_data(show_spinner=False, max_entries=512)
def _checkpoint_header(root: str, key: str):
    # a model's key always names the same checkpoint
    try:
        return read_header(key, store=Store(root))
    except NNGeoError:
        return None


def same_architecture(store: Store, a: str, b: str, *, with_data: bool = False) -> bool:
    """Whether two stored models have the same weight names and shapes (read from their checkpoint
    headers only); ``with_data``: and ``b`` records the dataset it was trained on."""
    head_a, head_b = _checkpoint_header(store.root, a), _checkpoint_header(store.root, b)
    return (
        head_a is not None
        and head_b is not None
        and head_a.shapes == head_b.shapes
        and (head_b.data_spec is not None or not with_data)
    )


def pick_epoch(store: Store, run: str, *, key: str, label: str = "Training snapshot") -> int | None:
    """None (final model) or one of the run's kept snapshot epochs; a snapshot of the final epoch
    is the final model, offered once (``results.snapshot_choices``)."""
    final = final_epoch(store, run)
    epochs = snapshot_choices(snapshot_epochs(run, store=store), final)
    if not epochs:
        return None
    options: list[str | int] = [*epochs, "final"]  # in training order: the final model last
    final_text = "final model" if final is None else f"final model (epoch {final})"
    value = st.select_slider(
        label,
        options=options,
        value="final",
        key=key,
        format_func=lambda e: final_text if e == "final" else f"epoch {e}",
    )
    return value if isinstance(value, int) else None  # the other option is "final"


def submit_job(spec: Any, what: str, *, toast: bool = True) -> dict | None:
    """Submit a job; remember it in this session (the sidebar then polls at ``poll_s`` until it
    ends, and reruns the app when it does); one clear line on failure."""
    try:
        row = jobs_view.submit(spec)
    except NNGeoError as exc:
        st.error(str(exc), icon=":material/error:")
        return None
    st.session_state.setdefault(SUBMITTED, []).append(row["id"])
    if toast:
        st.toast(f"{what}: job {row['id'][:8]} queued", icon=":material/schedule:")
    poll_s = get_settings().poll_s
    if st.session_state.get(job_progress.SIDEBAR_POLL, poll_s) != poll_s:
        # The sidebar is drawn before the page, so in this run it registered its idle interval
        # without this job: one app rerun after poll_s, from this one-shot fragment, lets it see
        # the job and poll at poll_s (the rerun drops the fragment again).
        first = True

        def catch_up() -> None:
            nonlocal first
            if not first:
                st.rerun(scope="app")
            first = False

        st.fragment(catch_up, run_every=poll_s)()
        st.session_state[job_progress.SIDEBAR_POLL] = poll_s  # one catch-up per run is enough
    return row


def error_box(exc: BaseException) -> None:
    """One line for a user error; never a traceback."""
    st.error(one_line(exc), icon=":material/error:")


def param_inputs(
    params: Mapping[str, Any],
    choices: Mapping[str, Iterable[Any]] | None = None,
    *,
    key: str,
    skip: Iterable[str] = (),
    start: Mapping[str, Any] | None = None,
    what: str = "parameter",
) -> ParamValues:
    """One widget per declared parameter (``Param`` or bare default; ``choices`` adds allowed
    values), chosen by its type (``forms.widget_for``), starting at ``start`` (default: the
    declared defaults) or where the user left it this session. Returns every value, read and
    checked; a value that does not fit is a one-line error under its widget and in ``.errors``
    (queue nothing then). ``what`` names the owner in those errors."""
    decl = declare(params)
    for name, values in (choices or {}).items():
        if name in decl and not decl[name].choices and decl[name].value_kind is not bool:
            decl[name] = dataclasses.replace(decl[name], choices=tuple(values))
    out = ParamValues()
    names = [n for n in decl if n not in set(skip)]
    if not names:
        st.caption("No parameters to set.")
        return out
    memory = form_memory()
    cols = st.columns(min(3, len(names)))
    for i, name in enumerate(names):
        col = cols[i % len(cols)]
        k = f"{key}-{name}"
        spec = widget_for(name, decl[name], start[name] if start and name in start else decl[name].default, what=what)
        raw = memory.keep(k, _draw_param(col, spec, memory.start(k, spec.value, spec.accepts), k))
        try:
            out[name] = spec.read(raw)
        except NNGeoError as exc:
            col.error(one_line(exc), icon=":material/error:")
            out.errors.append(one_line(exc))
    return out


def analysis_result(
    store: Store,
    run: str,
    method: str,
    *,
    what: str,
    epoch: int | None = None,
    params: dict | None = None,
    key: str,
    any_params: bool = False,
    accept: Callable[[dict], bool] | None = None,
) -> pd.DataFrame | None:
    """The stored table of ``method`` on ``run`` (at ``epoch``), or a button that submits the
    ``analyse`` job with ``params``. While that job is queued or running, the page shows its
    progress inline (refreshed every ``settings.poll_s`` by a fragment that lives only as long as
    the job) with the button disabled, and reruns when it ends: the result, or the failed job's
    one-line error above the button. A stored result computed with other params is shown instead
    when ``accept(its params)`` is true (``any_params``: any)."""
    params = dict(params or {})
    if any_params:
        accept = lambda _params: True  # noqa: E731  (a one-line local converter reads better than a def)
    found = find_analysis(store, run, method, epoch=epoch, params=params, accept=accept, catalog=catalog(store))
    if found is not None:
        return read_result(store, found)
    spec = AnalysisSpec(run=run, method=method, params=params, epoch=epoch)
    try:  # a job's spec has its defaults filled in at submission, and so has its hash
        spec_hash = complete(spec).hash
    except NNGeoError:  # bad params: the click below shows the error
        spec_hash = spec.hash
    snap = jobs_view.snapshot()
    running = snap.active_by_hash().get(spec_hash)
    when = "the final model" if epoch is None else f"epoch {epoch}"
    label = f"Compute {what} ({when})"
    if running is None:
        last = snap.latest_for(spec_hash)
        if last is not None and jobs_view.is_failed(last):
            st.error(f"Computing {what} of {when} failed: {job_progress.failure(last)}", icon=":material/error:")
        else:
            st.caption(f"No {what} stored for {when} yet.")
        if st.button(label, key=key, icon=":material/calculate:") and submit_job(spec, what, toast=False):
            st.rerun()  # draw the page again: the job's progress in place of an active button
        return None
    inline_progress(running, f"computing {what} of {when}")
    st.button(label, key=key, icon=":material/calculate:", disabled=True, help="the job is queued or running")
    return None


def inline_progress(running: dict, doing: str) -> None:
    """The running job's progress bar ("``doing`` · its status"), refreshed every poll_s by a
    fragment that lives only as long as the job and reruns the page when it ends (done, failed or
    cancelled: the page then shows what came of it)."""
    job_id, first = running["id"], True

    def live() -> None:
        nonlocal first
        inline, first = first, False
        now = jobs_view.snapshot()
        row = now.by_id.get(job_id)
        if not inline and (row is None or not jobs_view.is_active(row)):
            st.rerun(scope="app")
        row = row or running
        st.progress(job_progress.fraction(row), text=f"{doing} · {job_progress.status_text(row, now.rows)}")

    st.fragment(live, run_every=get_settings().poll_s)()


@st.cache_data(show_spinner=False, max_entries=16)
def _training_points(data_json: str, n: int) -> pd.DataFrame:
    return datapoints.training_points(spec_from_dict(data_json), n)


def training_points(data, n: int = 400) -> pd.DataFrame:
    return _training_points(data.to_json(), n)


@st.cache_data(show_spinner=False, max_entries=16)
def _chosen_inputs(data_json: str, indices: tuple) -> list:
    return datapoints.chosen_inputs(spec_from_dict(data_json), list(indices))


def chosen_inputs(data, indices) -> list:
    return _chosen_inputs(data.to_json(), tuple(int(i) for i in indices))


# -- form memory and typed parameter widgets (``param_inputs``, ``pick_run``) ------------------
FORM_MEMORY = "nngeo_form_memory"  # session key: the last value of every remembered widget


def form_memory() -> FormMemory:
    """This session's form memory: Streamlit forgets the state of widgets a page does not draw,
    so forms start from here and come back as the user left them after a visit elsewhere."""
    return FormMemory(st.session_state.setdefault(FORM_MEMORY, {}))


def remembered(key: str, default: Any, accepts: Callable[[Any], bool] | None = None) -> Any:
    """The value the widget ``key`` starts with: its last value this session if it still fits
    (``accepts``), else ``default``. Pass the widget's value to ``keep`` after drawing it."""
    return form_memory().start(key, default, accepts)


def keep(key: str, value: Any) -> Any:
    """Remember widget ``key``'s value for the next time its page is drawn; returns it."""
    return form_memory().keep(key, value)


class ParamValues(dict):
    """``param_inputs``' values; ``errors``: the one-line errors shown under the widgets."""

    def __init__(self) -> None:
        super().__init__()
        self.errors: list[str] = []


def _make_current(key: str) -> None:
    st.session_state[CURRENT_RUN] = st.session_state[key]


def _draw_param(col: Any, spec: WidgetSpec, value: Any, key: str) -> Any:
    """Draw ``spec``'s widget in ``col`` starting at ``value``; what it returns."""
    helptext = spec.help or None
    if spec.widget == "select":
        options = list(spec.options)
        return col.selectbox(
            spec.name,
            options,
            index=options.index(value),
            format_func=lambda v: AUTOMATIC if v is None else format_value(v),
            key=key,
            help=helptext,
        )
    if spec.widget == "checkbox":
        return col.checkbox(spec.name, value=bool(value), key=key, help=helptext)
    if spec.widget == "int":
        return col.number_input(
            spec.name,
            value=None if value is None else int(value),
            min_value=None if spec.low is None else int(spec.low),
            max_value=None if spec.high is None else int(spec.high),
            step=1,
            key=key,
            placeholder=AUTOMATIC if spec.nullable else None,
            help=helptext,
        )
    if spec.widget == "float":
        return col.number_input(
            spec.name,
            value=None if value is None else float(value),
            min_value=None if spec.low is None else float(spec.low),
            max_value=None if spec.high is None else float(spec.high),
            format="%.4g",
            key=key,
            placeholder=AUTOMATIC if spec.nullable else None,
            help=helptext,
        )
    return col.text_input(
        spec.name, value=str(value), key=key, help=helptext, placeholder=param_text(spec.param.default) or AUTOMATIC
    )


def model_download(store: Store, result_key: str, *, key: str) -> None:
    """Download a stored model, or one level and seed of a pruning sweep, as safetensors, a
    state_dict, torch's prune-style weight_orig/weight_mask, or ONNX. The file is made on request
    (a sweep stored before levels were kept is rebuilt from its dense run and checked against its
    stored row) and kept for this session, so reruns do not make it again."""
    entry = store.entry(result_key)
    level: float | None = None
    seed: int | None = None
    c_level, c_seed, c_fmt, c_go = st.columns([1, 1, 1, 1], vertical_alignment="bottom")
    if entry["kind"] == SWEEP_KIND:
        spec = spec_from_dict(store.spec(result_key))
        level = c_level.selectbox(
            "Sparsity level", list(spec.sparsities), format_func=lambda s: f"{s:g}", key=f"{key}-level"
        )
        seed = c_seed.selectbox("Seed", list(spec.seeds), key=f"{key}-seed")
    elif entry["kind"] not in MODEL_KINDS:
        return
    fmt = c_fmt.selectbox("Model format", export_formats(), key=f"{key}-format")
    wanted = (store.root, result_key, level, seed, fmt)
    if c_go.button("Prepare model file", icon=":material/build:", key=f"{key}-prepare"):
        try:
            with st.spinner("Exporting the model…"):
                st.session_state[f"{key}-file"] = (wanted, *export_bytes(store, result_key, level, seed, fmt))
        except NNGeoError as exc:
            error_box(exc)
    ready = st.session_state.get(f"{key}-file")
    if ready is not None and ready[0] == wanted:
        _, data, name, mime = ready
        st.download_button(
            f"Download {name}",
            data=data,
            file_name=name,
            mime=mime,
            key=f"{key}-download",
            on_click="ignore",
            icon=":material/download:",
        )
