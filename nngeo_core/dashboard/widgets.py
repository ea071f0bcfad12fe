"""Streamlit pieces shared by the pages (the only module here that imports streamlit).

Pages stay thin: they pick a run, build a spec, call ``submit_job`` or read a result, and show
it with ``show_figure`` / ``show_table``, which add the downloads every figure and table gets.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from ..errors import NNGeoError, one_line
from ..runs import read_header, snapshot_epochs
from ..specs import AnalysisSpec, spec_from_dict
from ..store import Store, default_store
from ..store.queries import find_analysis, model_runs
from . import datapoints, jobs_view
from .downloads import figure_html, plotly_config, safe_filename, table_bytes
from .forms import param_text, parse_param
from .results import run_label

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
    whenever a result is added or deleted; other stores are re-read after 2 s). ``st.cache_data``
    hands every caller its own unpickled copy, so callers may modify it."""
    return _catalog(store.root, _catalog_stamp(store))


def _catalog_stamp(store: Store) -> tuple:
    if store.local:
        folder = os.path.join(store.path, "catalog")
        try:
            st_ = os.stat(folder)
        except FileNotFoundError:
            return ("missing",)
        return (st_.st_mtime_ns, len(os.listdir(folder)))
    return ("ttl", int(time.time() // 2))


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
    df: pd.DataFrame, name: str, *, key: str | None = None, max_rows: int = 5000, **dataframe_kwargs: Any
) -> None:
    """The table (sortable by clicking headers; the first ``max_rows`` rows) with CSV and Parquet
    downloads of all of it."""
    st.dataframe(df.head(max_rows), hide_index=True, **dataframe_kwargs)
    if len(df) > max_rows:
        st.caption(f"showing {max_rows:,} of {len(df):,} rows; the downloads have them all")
    table_downloads(df, name, key=key)


def table_downloads(df: pd.DataFrame, name: str, *, key: str | None = None) -> None:
    c1, c2, _ = st.columns([1, 1, 4])
    fname = safe_filename(name)
    c1.download_button(
        "CSV",
        data=lambda: table_bytes(df, "csv"),
        file_name=f"{fname}.csv",
        mime="text/csv",
        key=f"csv-{key or name}",
        on_click="ignore",
        icon=":material/download:",
    )
    c2.download_button(
        "Parquet",
        data=lambda: table_bytes(df, "parquet"),
        file_name=f"{fname}.parquet",
        mime="application/octet-stream",
        key=f"pq-{key or name}",
        on_click="ignore",
        icon=":material/download:",
    )


def pick_run(
    store: Store,
    *,
    label: str = "Run",
    key: str = "run",
    kinds: Iterable[str] | None = None,
    where: Callable[[pd.Series], bool] | None = None,
    empty: str | None = None,
) -> str | None:
    """A run picker over stored models; starts at the run opened on the Runs page. ``empty``: the
    message shown when no run qualifies."""
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
    chosen = st.selectbox(label, keys, index=index, format_func=lambda k: labels.get(k, str(k)), key=key)
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
    """None (final model) or one of the run's kept snapshot epochs."""
    epochs = snapshot_epochs(run, store=store)
    if not epochs:
        return None
    options: list[str | int] = ["final", *epochs]
    value = st.select_slider(
        label,
        options=options,
        value="final",
        key=key,
        format_func=lambda e: "final model" if e == "final" else f"epoch {e}",
    )
    return value if isinstance(value, int) else None  # the other option is "final"


def submit_job(spec: Any, what: str) -> dict | None:
    """Submit a job; remember it in this session; one clear line on failure."""
    try:
        row = jobs_view.submit(spec)
    except NNGeoError as exc:
        st.error(str(exc), icon=":material/error:")
        return None
    st.session_state.setdefault(SUBMITTED, []).append(row["id"])
    st.toast(f"{what}: job {row['id'][:8]} queued", icon=":material/schedule:")
    return row


def error_box(exc: BaseException) -> None:
    """One line for a user error; never a traceback."""
    st.error(one_line(exc), icon=":material/error:")


def param_inputs(params: dict, choices: dict | None = None, *, key: str, skip: Iterable[str] = ()) -> dict:
    """One widget per constructor/loader parameter, typed by its default; returns the values."""
    choices = choices or {}
    out: dict = {}
    names = [n for n in params if n not in set(skip)]
    cols = st.columns(min(3, max(1, len(names)))) if names else []
    for i, name in enumerate(names):
        default = params[name]
        col = cols[i % len(cols)]
        k = f"{key}-{name}"
        if name in choices:
            opts = list(choices[name])
            out[name] = col.selectbox(name, opts, index=opts.index(default) if default in opts else 0, key=k)
        elif isinstance(default, bool):
            out[name] = col.checkbox(name, value=default, key=k)
        elif isinstance(default, int):
            out[name] = int(col.number_input(name, value=default, step=1, key=k))
        elif isinstance(default, float):
            out[name] = float(col.number_input(name, value=default, format="%.4g", key=k))
        else:
            text = col.text_input(
                name,
                value=param_text(default),
                key=k,
                help="comma-separated numbers" if isinstance(default, (tuple, list)) else "leave empty for the default",
            )
            out[name] = parse_param(text, default)
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
    ``analyse`` job with ``params``, or a progress line while it runs. A stored result computed
    with other params is shown instead when ``accept(its params)`` is true (``any_params``: any)."""
    params = dict(params or {})
    if any_params:
        accept = lambda _params: True  # noqa: E731  (a one-line local converter reads better than a def)
    found = find_analysis(store, run, method, epoch=epoch, params=params, accept=accept, catalog=catalog(store))
    if found is not None:
        return read_result(store, found)
    spec = AnalysisSpec(run=run, method=method, params=params, epoch=epoch)
    running = jobs_view.active_job_for(spec.hash)
    when = "the final model" if epoch is None else f"epoch {epoch}"
    if running is not None:
        st.progress(running["fraction"], text=f"computing {what} of {when} · {jobs_view.progress_text(running)}")
    elif st.button(f"Compute {what} ({when})", key=key, icon=":material/calculate:"):
        if submit_job(spec, what) is not None:
            st.info(f"Queued: {what} of {when}. It appears here when the job is done.", icon=":material/schedule:")
    else:
        st.caption(f"No {what} stored for {when} yet.")
    return None


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
