"""The dashboard heals its embedded worker by itself: `streamlit run app.py` with the embedded
worker on, one page open in headless Chromium that is never navigated, the worker SIGKILLed mid-
job. The sidebar must show the killed job failed, a live worker again, and a training job
submitted afterwards (from this process, into the same queue) done - all by its own polling.
Server and browser from conftest.py."""

from __future__ import annotations

import os
import signal
import time

import pytest

from nngeo_core import jobs
from nngeo_core.jobs.kinds import HealthSpec
from nngeo_core.jobs.liveness import live_workers, pid_alive
from nngeo_core.specs import DataSpec, ModelSpec, RunSpec, TrainSpec


def wait_until(cond, timeout: float, what: str, poll: float = 0.1):
    deadline = time.monotonic() + timeout
    while not (value := cond()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(poll)
    return value


def ready_workers(table) -> list[dict]:
    return [w for w in live_workers(table) if w["state"] != "starting"]


@pytest.mark.timeout(420)
def test_sidebar_shows_a_new_worker_and_a_later_job_done_after_a_kill(
    tmp_path, monkeypatch, app_env, serve_app, browser
):
    home = tmp_path / "home"
    extra = {
        "NNGEO_WORKER_THREADS": "1",  # two cores shared with the browser and the server
        "NNGEO_POLL_S": "1",
        "NNGEO_IDLE_POLL_S": "2",
    }
    # this process submits into the app's queue and reads its job table
    for k, v in app_env(home, **extra).items():
        monkeypatch.setenv(k, v)
    table = jobs.get_backend().table
    url = serve_app(home, **extra)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.set_default_timeout(90_000)
        page.goto(url)
        page.wait_for_selector("h1", timeout=120_000)  # the first load starts the supervisor
        start_url = page.url
        sidebar = page.locator("[data-testid=stSidebar]")
        (first,) = wait_until(lambda: ready_workers(table), 120, "the embedded worker")

        long = jobs.submit(HealthSpec(seconds=600, tag="killed in e2e"))
        wait_until(lambda: (s := jobs.status(long.id)).state == "running" and s.progress > 0, 90, "the job")
        sidebar.get_by_text(long.label).first.wait_for()

        os.kill(first["pid"], signal.SIGKILL)
        t_kill = time.monotonic()
        spec = RunSpec(
            data=DataSpec("xor", params={"n_train": 64, "n_test": 64}),
            model=ModelSpec("mlp", {"widths": (4,)}),
            train=TrainSpec(epochs=2, seed=13),
        )
        train = jobs.submit(spec)  # queued into a queue whose worker just died
        (new,) = wait_until(lambda: [w for w in live_workers(table) if w["pid"] != first["pid"]], 60, "a new worker")
        print(f"SIGKILL -> new worker heartbeat after {time.monotonic() - t_kill:.2f} s")
        assert not pid_alive(first["pid"])

        # what the never-navigated page shows, by its own polling
        failed_alert = sidebar.locator("[data-testid=stAlertContentError]", has_text=long.label).first
        failed_alert.wait_for()
        failed = failed_alert.inner_text()
        assert "worker died (killed?) while running" in failed
        done_alert = sidebar.locator("[data-testid=stAlertContentSuccess]", has_text=jobs.status(train.id).label)
        done_alert.first.wait_for(timeout=180_000)
        final = jobs.status(train.id)
        assert final.state == "done" and final.pid == new["pid"] and final.result == spec.hash
        worker_line = sidebar.get_by_text("Worker:").first.inner_text()
        assert "alive" in worker_line and "no worker" not in worker_line, worker_line
        assert page.url == start_url  # no navigation happened
        print(f"job submitted after the kill shown done after {time.monotonic() - t_kill:.1f} s")
    finally:
        page.close()
