import dataclasses
import json
import subprocess
import sys

import pytest

from nngeo_core.errors import NNGeoError
from nngeo_core.specs import (
    AnalysisSpec,
    DataSpec,
    ModelSpec,
    RunSpec,
    TrainSpec,
    canonical_json,
    spec_from_dict,
    spec_hash,
    to_dict,
)


def _spec():
    return RunSpec(
        data=DataSpec("xor", seed=1, params={"n_train": 500, "noise": 0.2}),
        model=ModelSpec("mlp", {"widths": [16, 8], "activation": "tanh"}),
        train=TrainSpec(epochs=3, lr=0.01, snapshots=[0, 3]),
    )


def test_hash_is_stable_across_processes():
    """The hash must not depend on PYTHONHASHSEED or the process: compute it in fresh interpreters."""
    code = (
        "from nngeo_core.specs import *; "
        "print(RunSpec(data=DataSpec('xor', seed=1, params={'noise': 0.2, 'n_train': 500}), "
        "model=ModelSpec('mlp', {'activation': 'tanh', 'widths': (16, 8)}), "
        "train=TrainSpec(epochs=3, lr=0.01, snapshots=(0, 3))).hash)"
    )
    hashes = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": str(seed), "PATH": ""},
        ).stdout.strip()
        for seed in (0, 1, 12345)
    }
    assert hashes == {_spec().hash}


def test_hash_matches_sha256_of_canonical_json():
    import hashlib

    s = _spec()
    assert s.hash == hashlib.sha256(canonical_json(s).encode()).hexdigest()[:16]
    # canonical JSON is key-sorted and compact
    parsed = json.loads(canonical_json(s))
    assert list(parsed) == sorted(parsed)


def test_equal_requests_hash_equal_and_different_ones_differ():
    a, b = _spec(), _spec()
    assert a == b and a.hash == b.hash and hash(a) == hash(b)
    assert a.replace(train=a.train.replace(lr=0.02)).hash != a.hash
    assert a.replace(data=a.data.replace(seed=2)).hash != a.hash
    # list vs tuple, dict order and 1 vs 1.0 are the same request
    c = RunSpec(
        data=DataSpec("xor", seed=1, params={"noise": 0.2, "n_train": 500.0}),
        model=ModelSpec("mlp", {"activation": "tanh", "widths": (16, 8)}),
        train=TrainSpec(epochs=3, lr=0.01, snapshots=(0, 3)),
    )
    assert c.hash == a.hash


def test_device_does_not_change_the_hash():
    a = _spec()
    assert a.replace(train=a.train.replace(device="cuda")).hash == a.hash


def test_round_trip_through_json():
    s = _spec()
    back = spec_from_dict(json.loads(json.dumps(to_dict(s))))
    assert back == s and back.hash == s.hash
    an = AnalysisSpec(run="abc", method="persistence", params={"p": 2})
    assert spec_from_dict(an.to_json()) == an


def test_specs_are_frozen():
    s = _spec()
    with pytest.raises(TypeError):
        s.data.params["noise"] = 1.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.train = TrainSpec()


def test_non_finite_values_are_rejected():
    with pytest.raises(NNGeoError):
        spec_hash(TrainSpec(lr=float("nan")))
