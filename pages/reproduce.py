"""Reproduce: pick a paper's claim, a size and seeds, run it in the worker, and read the report:
the paper's value beside the measured one with the verdict its declared rule computes, the
figures, the settings and version, and a standalone HTML report. A stored report (from this page
or `nngeo reproduce`: one key for both) shows at once, without a job."""

import json

import streamlit as st

from nngeo_core.dashboard import job_progress, jobs_view
from nngeo_core.dashboard import widgets as w
from nngeo_core.dashboard.reproductions import claim_table, report_filename
from nngeo_core.errors import NNGeoError
from nngeo_core.reproduce import CLAIMS
from nngeo_core.reproduce.base import SIZES
from nngeo_core.reproduce.jobs import job_spec, report_key, size_problem
from nngeo_core.reproduce.report import Report, load_report
from nngeo_core.settings import get_settings
from nngeo_core.store import Store

SIZE_TEXT = {"test": "test (seconds)", "default": "default (≤ 10 min on 2 cores)", "paper": "paper"}


@st.cache_data(show_spinner=False, max_entries=8)
def stored_report(root: str, key: str) -> Report:
    return load_report(Store(root), key)  # a stored report never changes: its key names it


@st.cache_data(show_spinner=False, ttl=30)
def problem_of(claim: str, size: str, data_dir: str) -> str | None:
    return size_problem(claim, size)  # loads one sample of each dataset; data added later shows within 30 s


def follow(running: dict, label: str) -> None:
    """The running job's progress inline, with the button disabled and a Cancel."""
    w.inline_progress(running, "reproducing")
    b1, b2 = st.columns([1, 4])
    b1.button(label, key="repro-go", icon=":material/science:", disabled=True, help="the job is queued or running")
    b2.button("Cancel", key="repro-cancel", on_click=jobs_view.cancel, args=(running["id"],), icon=":material/cancel:")


st.title("Reproduce a paper's claim")
st.caption(
    "Each claim is rerun with nngeo's own functions: the paper's number beside the measured one "
    "(mean ± std over seeds) and a verdict computed by the rule the claim declares. The papers are "
    "not assumed to be right, nor is nngeo."
)
store = w.get_store()
names = list(CLAIMS.names())
claim_name = st.selectbox("Claim", names, format_func=lambda n: f"{CLAIMS.get(n).paper} · {n}", key="repro-claim")
claim = CLAIMS.get(claim_name)
st.markdown(f"**{claim.paper}**: {claim.statement}")
c1, c2 = st.columns([3, 1])
size = c1.radio(
    "Size", SIZES, index=SIZES.index("default"), horizontal=True, format_func=SIZE_TEXT.get, key="repro-size"
)
c1.caption(claim.size(size).description)
seeds = c2.number_input(
    "Seeds",
    min_value=1,
    max_value=20,
    value=claim.default_seeds,
    key=f"repro-seeds-{claim_name}",
    disabled=not claim.seeded,
    help="how many seeds the measured mean ± std is taken over"
    if claim.seeded
    else "this claim does not depend on a seed: it is computed once",
)

try:
    spec = job_spec(claim_name, size, int(seeds))
except NNGeoError as exc:
    w.error_box(exc)
    st.stop()
key = report_key(spec)

if not store.exists(key):
    problem = problem_of(claim_name, size, str(get_settings().data_dir))
    snap = jobs_view.snapshot()
    running = snap.active_by_hash().get(spec.hash)
    label = f"Reproduce ({size})"
    if running is None:
        last = snap.latest_for(spec.hash)
        if problem is not None:
            st.error(problem, icon=":material/error:")
        elif last is not None and jobs_view.is_failed(last):
            st.error(f"The reproduction failed: {job_progress.failure(last)}", icon=":material/error:")
        else:
            st.caption("No report stored for this claim, size and seeds yet.")
        clicked = st.button(
            label, type="primary", icon=":material/science:", key="repro-go", disabled=problem is not None
        )
        if clicked and w.submit_job(spec, jobs_view.label_for(spec), toast=False):
            st.rerun()  # draw the page again: the job's progress in place of an active button
        st.stop()
    follow(running, label)
    st.stop()

report = stored_report(store.root, key)
rows = report.rows
agree = int((rows["verdict"] == "agrees").sum())
judged = int(rows["verdict"].isin(["agrees", "differs"]).sum())
st.success(
    f"{agree} of {judged} judged rows agree with the paper · {report.seconds:.1f} s · nngeo {report.version} · "
    f"key `{key}`",
    icon=":material/fact_check:",
)
st.download_button(
    "Download report (HTML)",
    data=lambda: report.to_html().encode("utf-8"),
    file_name=report_filename(report.claim, size, key),
    mime="text/html",
    key="repro-report-html",
    on_click="ignore",
    icon=":material/download:",
    help="one standalone page: claim table, figures, settings and version; opens offline",
)
st.subheader("Claims")
w.show_table(claim_table(rows), f"{report.claim}-{size}-claims", key="repro-claims", downloads=False)
w.table_downloads(rows, f"{report.claim}-{size}-claims", key="repro-claims")
st.caption("Verdicts: *agrees* / *differs* by the row's rule; *reference* rows are context, not judged.")
st.subheader("Figures")
for i, fig in enumerate(report.figures()):
    w.show_figure(fig, f"{report.claim}-{size}-{i}", key=f"repro-fig-{i}")
with st.expander("Settings and version"):
    st.caption(f"nngeo {report.version}, computed in {report.seconds:.1f} s")
    st.code(json.dumps(report.settings, indent=2, sort_keys=True), language="json")
