"""How often the sidebar polls, and an analysis page's inline progress, in Streamlit's AppTest (the
real app.py in-process; NNGEO_EMBEDDED_WORKER=0, so submitted jobs stay queued until the test
moves them on). AppTest does not fire ``run_every`` timers, so these check what each full run
draws and registers; tests/e2e/test_inline_progress.py watches the timers in a real browser."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from nngeo_core import jobs
from nngeo_core.dashboard import jobs_view
from nngeo_core.dashboard.job_progress import SIDEBAR_POLL, WATCHED
from nngeo_core.dashboard.widgets import CURRENT_RUN
from nngeo_core.specs import AnalysisSpec, DataSpec, ModelSpec, RunSpec

APP = str(Path(__file__).resolve().parents[2] / "app.py")
POLL_S, IDLE_POLL_S = 1.5, 45.0  # not the defaults, so the test sees the settings are used


@pytest.fixture(autouse=True)
def poll_settings(monkeypatch):
    monkeypatch.setenv("NNGEO_POLL_S", str(POLL_S))
    monkeypatch.setenv("NNGEO_IDLE_POLL_S", str(IDLE_POLL_S))
    jobs_view.invalidate()  # the shared snapshot belongs to no test


def no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def open_curvature_neural(run: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state[CURRENT_RUN] = run
    at.run()
    at.switch_page("pages/curvature.py").run()
    at.radio(key="curv-method").set_value("curvature").run()  # neural curvature: not in the fixture store
    no_exception(at)
    return at


def test_the_sidebar_polls_slowly_when_idle_and_at_poll_s_while_a_job_is_active():
    at = AppTest.from_file(APP, default_timeout=120).run()
    no_exception(at)
    assert at.session_state[SIDEBAR_POLL] == IDLE_POLL_S
    assert any("no jobs yet" in c.value for c in at.sidebar.caption)

    info = jobs.submit(RunSpec(data=DataSpec("xor"), model=ModelSpec("mlp", {"widths": (4,)})))  # as the CLI
    jobs_view.invalidate()  # seen at the next read (in the app: at most poll_s/2 later)
    at = AppTest.from_file(APP, default_timeout=120).run()
    no_exception(at)
    assert at.session_state[SIDEBAR_POLL] == POLL_S
    assert at.session_state[WATCHED] == {info.id}  # seen active: the app reruns when it ends

    jobs.cancel(info.id)
    jobs_view.invalidate()
    at = AppTest.from_file(APP, default_timeout=120)  # AppTest draws the sidebar on a first run only
    at.session_state[WATCHED] = {info.id}
    at.run()
    no_exception(at)
    assert at.session_state[SIDEBAR_POLL] == IDLE_POLL_S and at.session_state[WATCHED] == set()
    assert any(info.id[:8] in e.value or "train mlp on xor" in e.value for e in at.sidebar.caption)


def test_an_analysis_job_shows_inline_progress_with_the_button_disabled(with_fixture_store):
    at = open_curvature_neural(with_fixture_store.run)
    button = at.button(key="curv-go")
    assert not button.disabled and not at.main.get("progress")
    button.click().run()
    no_exception(at)
    (job,) = jobs.list_jobs()
    assert job.kind == "analyse" and job.state == "queued" and "curvature" in job.label
    # the page reran after the submission: the job's bar in place of an active button
    (bar,) = at.main.get("progress")
    assert bar.proto.value == 0 and bar.proto.text == "computing curvature of the final model · queued (next)"
    assert at.button(key="curv-go").disabled

    # the worker takes it and reports progress: the next read shows it
    table = jobs.get_backend().table
    assert table.transition(job.id, ["queued"], {"state": "running", "started": time.time(), "phase": "starting"})
    table.update(job.id, {"progress": 0.4, "phase": "layer fc2"})
    jobs_view.invalidate()
    at.run()
    no_exception(at)
    (bar,) = at.main.get("progress")
    assert (
        bar.proto.value == 40 and bar.proto.text == "computing curvature of the final model · running · layer fc2 · 40%"
    )
    assert at.button(key="curv-go").disabled


def test_a_failed_analysis_job_shows_its_one_line_error_and_the_button_again(with_fixture_store):
    spec = AnalysisSpec(run=with_fixture_store.run, method="curvature")
    info = jobs.submit(spec)
    error = "NNGeoError: the calibration set is empty\nTraceback (most recent call last):\n  ..."
    assert jobs.get_backend().table.transition(
        info.id, ["queued"], {"state": "failed", "ended": time.time(), "error": error, "phase": "failed"}
    )
    jobs_view.invalidate()
    at = open_curvature_neural(with_fixture_store.run)
    assert [e.value for e in at.main.error] == [
        "Computing curvature of the final model failed: NNGeoError: the calibration set is empty"
    ]
    assert not at.main.get("progress") and not at.button(key="curv-go").disabled
