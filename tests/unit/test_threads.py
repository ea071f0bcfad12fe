"""Torch threads per worker consumer (``nngeo_core.threads``): the count against a brute-force
recomputation from its definition, the CPU-count fallback, and that torch really changes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from nngeo_core import threads
from nngeo_core.errors import NNGeoError


def brute_force(cores: int, consumers: int, setting: int | None) -> int:
    """The definition, by search: the setting when there is one, else the most threads t >= 1
    with t threads for each of the consumers fitting in the cores (1 when not even that fits)."""
    if setting is not None:
        return setting
    fitting = [t for t in range(1, cores + 1) if t * consumers <= cores]
    return max(fitting) if fitting else 1


@pytest.fixture
def restore_torch_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


CASES = [
    (cores, consumers, setting)
    for cores in (1, 2, 3, 4, 7, 64)
    for consumers in (1, 2, 3, 5, 100)
    for setting in (None, 1, 3)
]


@pytest.mark.parametrize(("cores", "consumers", "setting"), CASES)
def test_threads_per_consumer_match_the_definition(cores, consumers, setting, monkeypatch, restore_torch_threads):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(100, 100 + cores)), raising=False)
    if setting is None:
        monkeypatch.delenv("NNGEO_WORKER_THREADS", raising=False)
    else:
        monkeypatch.setenv("NNGEO_WORKER_THREADS", str(setting))
    expected = brute_force(cores, consumers, setting)
    assert threads.usable_cores() == cores
    torch.set_num_threads(1 if expected != 1 else 2)  # so that setting it is a visible change
    assert threads.set_for_consumers(consumers) == expected
    assert torch.get_num_threads() == expected == threads.current()


def test_without_an_affinity_the_cpu_count_is_used(monkeypatch):
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert threads.usable_cores() == 6
    assert [threads.for_consumers(c) for c in (1, 2, 4, 7)] == [brute_force(6, c, None) for c in (1, 2, 4, 7)]
    monkeypatch.setattr(os, "cpu_count", lambda: None)  # unknown: one core
    assert threads.usable_cores() == 1 and threads.for_consumers(3) == 1


def test_a_bad_setting_is_a_one_line_error(monkeypatch):
    for bad in ("0", "-2", "many"):
        monkeypatch.setenv("NNGEO_WORKER_THREADS", bad)
        with pytest.raises(NNGeoError, match="NNGEO_WORKER_THREADS") as err:
            threads.set_for_consumers(1)
        assert "\n" not in str(err.value)


SCRIPT = """
import json, os, sys
import torch
from nngeo_core import threads
out = []
for cpus, consumers, setting in json.loads(sys.argv[1]):
    os.sched_setaffinity(0, cpus)
    if setting is None:
        os.environ.pop("NNGEO_WORKER_THREADS", None)
    else:
        os.environ["NNGEO_WORKER_THREADS"] = str(setting)
    torch.set_num_threads(1 if len(cpus) // consumers != 1 else 2)
    before = torch.get_num_threads()
    n = threads.set_for_consumers(consumers)
    out.append([len(os.sched_getaffinity(0)), before, n, torch.get_num_threads()])
print(json.dumps(out))
"""


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs os.sched_setaffinity (Linux)")
def test_a_real_process_changes_its_torch_threads_to_its_share_of_its_affinity():
    """No monkeypatching: the real affinity (set with sched_setaffinity) and torch in a fresh process."""
    cpus = sorted(os.sched_getaffinity(0))
    cases = [(cpus[:1], 1, None), (cpus, 1, None), (cpus, 2, None), (cpus[:1], 1, 3)]
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(cases)], capture_output=True, text=True, timeout=180
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    for (cpu_set, consumers, setting), (affinity, before, n, after) in zip(
        cases, json.loads(proc.stdout.strip().splitlines()[-1]), strict=True
    ):
        expected = brute_force(len(cpu_set), consumers, setting)
        assert affinity == len(cpu_set) and before != expected and n == after == expected
