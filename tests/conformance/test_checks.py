"""Run every public conformance check (``nngeo_core.testing.checks``) over every registered model,
dataset, pruning strategy, analysis and job kind. A check declared in ``KNOWN_FAILURES`` is an
expected failure with its reason, and the test fails once such a check passes (then the
declaration goes); nothing is skipped."""

from __future__ import annotations

import pytest

from nngeo_core.testing.checks import all_checks

CHECKS = list(all_checks())


def test_every_registry_has_checks():
    registries = {c.registry for c in CHECKS}
    assert registries == {"model", "dataset", "strategy", "analysis", "job kind"}


@pytest.mark.parametrize("check", CHECKS, ids=[c.id for c in CHECKS])
def test_check(check):
    reason = check.known_failure
    if reason:
        with pytest.raises(AssertionError):
            check.run()
        pytest.xfail(reason)
    check.run()
