"""nngeo dashboard: `streamlit run app.py` is the whole start-up.

Starts the embedded job worker when none is alive (unless NNGEO_EMBEDDED_WORKER=0, as in tests or
when a separate `nngeo worker` runs), then shows the pages in pages/ and a sidebar with the store
location, the worker's state and the job queue.
"""

from __future__ import annotations

import streamlit as st

from nngeo_core import jobs
from nngeo_core.dashboard import job_progress, jobs_view
from nngeo_core.dashboard.job_progress import SIDEBAR_POLL, WATCHED
from nngeo_core.dashboard.widgets import SUBMITTED
from nngeo_core.errors import one_line
from nngeo_core.settings import get_settings

st.set_page_config(page_title="nngeo", page_icon=":material/hub:", layout="wide")


@st.cache_resource(show_spinner="Starting the job worker…", validate=lambda sup: sup is not None and sup.alive())
def start_worker():
    """The app process's worker supervisor, started once per process: a daemon thread, not page
    reruns, starts the embedded worker when none serves the queue and a new one within a second
    of its death (failing the jobs it was running), with no browser open as well."""
    return jobs.start_supervisor()


if jobs_view.embedded_worker_wanted():
    try:
        supervisor = start_worker()
    except Exception as exc:  # the app stays usable to browse results without a worker
        st.sidebar.error(f"could not start the job worker: {one_line(exc, typed=False)}")
    else:
        if supervisor is not None and supervisor.last_error:  # it retries by itself, ever more slowly
            st.sidebar.error(f"the job worker keeps failing: {one_line(supervisor.last_error)}")

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
    "Papers": [
        st.Page("pages/reproduce.py", title="Reproduce", icon=":material/science:"),
    ],
}
page = st.navigation(PAGES)


def _cancel(job_id: str) -> None:
    jobs_view.cancel(job_id)


def _watch(snap: jobs_view.JobsSnapshot) -> set[str]:
    """Update the jobs this session waits for (every active job it has seen, and those it
    submitted) from a snapshot; returns the ones that finished since the last look."""
    watched = set(st.session_state.get(WATCHED, ())) | set(st.session_state.pop(SUBMITTED, []))
    active = {r["id"] for r in snap.rows if jobs_view.is_active(r)}  # a snapshot holds every active job
    st.session_state[WATCHED] = active
    return watched - active


def _jobs_panel(interval: float):
    """The sidebar's job list, as the body of a fragment registered with ``run_every=interval``.
    Its first call is inline in a full run; later calls are the fragment's own reruns, which rerun
    the whole app once when a watched job has finished (so the page shows the new result and this
    list its done/failed state, read from the same snapshot) or when the interval should change
    (a job appeared from elsewhere): a fragment cannot re-register its own run_every."""
    first = True

    def jobs_panel() -> None:
        nonlocal first
        inline, first = first, False
        settings = get_settings()
        snap = jobs_view.snapshot()
        finished = set() if inline else _watch(snap)  # a full run has just updated the watch
        rows = snap.recent(12)
        st.caption(f"Worker: {':green[●]' if snap.worker['alive'] else ':gray[○]'} {snap.worker['text']}")
        st.subheader("Jobs", divider="gray")
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
                st.error(f"{title}: {job_progress.failure(r)}", icon=":material/error:")
            elif jobs_view.is_done(r):
                st.success(title, icon=":material/check_circle:")
            else:
                st.caption(f"{title}: {r['state']}")
        wanted = job_progress.poll_interval(
            snap.rows, st.session_state.get(WATCHED, ()), poll_s=settings.poll_s, idle_poll_s=settings.idle_poll_s
        )
        if not inline and (finished or wanted != interval):
            st.rerun(scope="app")

    return jobs_panel


with st.sidebar:
    settings = get_settings()
    st.caption(f"Store: `{settings.store}`")
    # Polling costs nothing when nothing changes: every tab reads the one shared snapshot of the job
    # table (jobs_view.snapshot), and polls at poll_s only while a job is active, else at
    # idle_poll_s (slow, so jobs submitted from the CLI still appear). Hidden tabs are left to the
    # browser: an idle tab, visible or not, costs about 0.5 % of a core (bench/idle_tabs.py), and
    # Chromium throttles hidden tabs' timers further; a script component reporting visibility
    # would itself be an iframe per tab and a rerun per change, more than it could save.
    snap = jobs_view.snapshot()
    _watch(snap)  # a job that finished since needs no rerun here: the page is drawn next
    interval = job_progress.poll_interval(
        snap.rows, st.session_state[WATCHED], poll_s=settings.poll_s, idle_poll_s=settings.idle_poll_s
    )
    st.session_state[SIDEBAR_POLL] = interval  # submit_job reads it (see widgets.submit_job)
    st.fragment(_jobs_panel(interval), run_every=interval)()

page.run()
