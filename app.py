"""nngeo dashboard: `streamlit run app.py` is the whole start-up.

Starts the embedded job worker when none is alive (unless NNGEO_EMBEDDED_WORKER=0, as in tests or
when a separate `nngeo worker` runs), then shows the pages in pages/ and a sidebar with the store
location, the worker's state and the job queue.
"""

from __future__ import annotations

import streamlit as st

from nngeo_core.dashboard import jobs_view
from nngeo_core.dashboard.widgets import SUBMITTED
from nngeo_core.errors import one_line
from nngeo_core.settings import get_settings

st.set_page_config(page_title="nngeo", page_icon=":material/hub:", layout="wide")


@st.cache_resource(
    show_spinner="Starting the job worker…", validate=lambda handle: handle is not None and handle.alive()
)
def start_worker():
    """An embedded worker when none is alive: cached while the one we started lives; when another
    process serves the queue (None), checked again on the next rerun (a cheap heartbeat query)."""
    return jobs_view.ensure_worker()


if jobs_view.embedded_worker_wanted():
    try:
        start_worker()
    except Exception as exc:  # the app stays usable to browse results without a worker
        st.sidebar.error(f"could not start the job worker: {one_line(exc, typed=False)}")

PAGES = {
    "Results": [
        st.Page("pages/runs.py", title="Runs", icon=":material/table_view:", default=True),
        st.Page("pages/compare.py", title="Compare", icon=":material/compare_arrows:"),
    ],
    "Make": [
        st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
        st.Page("pages/pruning.py", title="Pruning", icon=":material/content_cut:"),
        st.Page("pages/upload.py", title="Upload", icon=":material/upload_file:"),
    ],
    "Analyse": [
        st.Page("pages/persistence.py", title="Persistence", icon=":material/bar_chart:"),
        st.Page("pages/curvature.py", title="Curvature", icon=":material/hub:"),
        st.Page("pages/volume.py", title="Volume element", icon=":material/blur_on:"),
        st.Page("pages/geodesics.py", title="Geodesics", icon=":material/route:"),
    ],
}
page = st.navigation(PAGES)


def _cancel(job_id: str) -> None:
    jobs_view.cancel(job_id)


@st.fragment(run_every=2.0)
def jobs_panel() -> None:
    """The job queue, refreshed every 2 s; a whole-app rerun when a watched job finishes, so the
    page shows its new result."""
    rows = jobs_view.list_jobs(limit=12)
    worker = jobs_view.worker_status(rows)
    st.caption(f"Worker: {':green[●]' if worker['alive'] else ':gray[○]'} {worker['text']}")
    st.subheader("Jobs", divider="gray")
    # jobs this session waits for: those seen active before, and those submitted since
    watched = set(st.session_state.get("nngeo_watched_jobs", set())) | set(st.session_state.pop(SUBMITTED, []))
    active_ids = {r["id"] for r in rows if jobs_view.is_active(r)}  # list_jobs returns every active job
    finished = watched - active_ids
    st.session_state["nngeo_watched_jobs"] = watched & active_ids
    if not rows:
        st.caption("no jobs yet")
    for r in rows:
        title = f"**{r['label'] or r['kind'] + ' ' + r['id'][:8]}**"
        if jobs_view.is_active(r):
            st.progress(r["fraction"], text=f"{title} · {jobs_view.progress_text(r)}")
            st.button(
                "Cancel",
                key=f"cancel-{r['id']}",
                on_click=_cancel,
                args=(r["id"],),
                icon=":material/cancel:",
                type="tertiary",
            )
        elif jobs_view.is_failed(r):
            st.error(f"{title}: {one_line(str(r['error'] or 'failed'))}", icon=":material/error:")
        elif jobs_view.is_done(r):
            st.success(title, icon=":material/check_circle:")
        else:
            st.caption(f"{title}: {r['state']}")
    if finished:
        st.rerun(scope="app")


with st.sidebar:
    settings = get_settings()
    st.caption(f"Store: `{settings.store}`")
    jobs_panel()

page.run()
