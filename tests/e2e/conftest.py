"""Stages of one browser scenario (``pytest.mark.incremental`` on a module): its tests run in order
and each builds on the ones before it, so once a stage fails (or its fixtures do) every later
stage of that module is reported as xfailed, "previous stage <name> failed", instead of failing
again for a reason that is not its own."""

from __future__ import annotations

import pytest

_FAILED = pytest.StashKey[str]()  # on the module: the name of its first stage that failed


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "incremental: the module's tests are stages in order; after a failure the rest xfail"
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    report = yield
    if item.get_closest_marker("incremental") is not None and report.failed and item.parent is not None:
        item.parent.stash.setdefault(_FAILED, item.name)  # the first failure, not the xfails after it
    return report


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("incremental") is None or item.parent is None:
        return
    failed = item.parent.stash.get(_FAILED, None)
    if failed is not None:
        pytest.xfail(f"previous stage {failed} failed")
