"""Every test runs against its own nngeo home: store, queue and data dir under tmp_path,
downloads off, no embedded worker. Nothing touches ~/.nngeo or the network."""

from __future__ import annotations

import os

# The test models are tiny: one intra-op thread is several times faster than two, and worker
# subprocesses started by tests inherit this, so they do not fight the test process for cores.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
# workers set torch's threads from their share of the cores, which would override the line above
os.environ.setdefault("NNGEO_WORKER_THREADS", "1")

import pytest
import torch

from nngeo_core.settings import home_env

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def nngeo_home(tmp_path, monkeypatch):
    home = tmp_path / "nngeo-home"
    home.mkdir()
    for k, v in home_env(home).items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("NNGEO_DOWNLOAD", "0")
    monkeypatch.setenv("NNGEO_EMBEDDED_WORKER", "0")
    yield home
    # a user dataset lives in this test's NNGEO_HOME, but the registry that found it is the
    # process's: forget it, so later tests (which compare the registry with the catalogue) see
    # the built-ins only
    from nngeo_core.data.base import DATASETS
    from nngeo_core.data.common import DESCRIBERS

    for name in [n for n in DATASETS.names() if n.startswith("user:")]:
        DATASETS.remove(name)
        DESCRIBERS.pop(name, None)


def pytest_sessionfinish(session, exitstatus):
    """On CI (``CI`` set, as `.ci/run` is run) a skipped test is a failure: CI installs Chromium and
    redis-server, so a skip there can only hide a breakage. Locally the skips say what to install."""
    if not os.environ.get("CI"):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter is not None else []
    if skipped:
        reporter.write_line(f"CI allows no skipped test; {len(skipped)} skipped (see the reasons above)", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
