import multiprocessing as mp
import os

import pandas as pd
import pyarrow.parquet as pq
import pytest

from nngeo_core.errors import NNGeoError
from nngeo_core.specs import AnalysisSpec
from nngeo_core.store import Store


def _table(i: int) -> pd.DataFrame:
    return pd.DataFrame({"i": [i] * 5, "x": [float(i) * k for k in range(5)], "name": [f"r{i}"] * 5})


def test_put_get_round_trip_and_metadata(tmp_path):
    store = Store(tmp_path / "s")
    spec = AnalysisSpec(run="00ff", method="persistence", params={"p": 2})
    key = store.put(
        "analyse",
        spec,
        _table(3),
        attrs={"model": "mlp", "method": "persistence", "seed": 1, "extra_thing": 7},
        artifacts={"blob.bin": b"\x00\x01"},
    )
    assert key == spec.hash and store.exists(key)
    pd.testing.assert_frame_equal(store.get(key), _table(3))
    meta = pq.read_schema(store.result_path("analyse", key)).metadata
    assert meta[b"nngeo.key"] == key.encode() and b"persistence" in meta[b"nngeo.spec"]
    assert store.read_artifact(key, "blob.bin") == b"\x00\x01"
    cat = store.catalog(method="persistence")
    assert list(cat["key"]) == [key] and cat.loc[0, "seed"] == 1 and '"extra_thing": 7' in cat.loc[0, "attrs"]
    assert store.resolve(key[:6]) == key
    assert store.spec(key)["method"] == "persistence"


def test_catalog_filters_and_delete(tmp_path):
    store = Store(tmp_path / "s")
    keys = [
        store.put("analyse", AnalysisSpec(run=f"{i:02x}"), _table(i), attrs={"model": f"m{i % 2}"}) for i in range(6)
    ]
    assert len(store.catalog()) == 6 and len(store.catalog(model="m1")) == 3
    assert len(store.catalog(model=["m0", "m1"])) == 6
    store.delete(keys[0])
    assert not store.exists(keys[0]) and len(store.catalog()) == 5
    with pytest.raises(NNGeoError):
        store.get(keys[0])
    with pytest.raises(NNGeoError):
        store.catalog(nonsense=1)


def test_export_csv_and_parquet(tmp_path):
    store = Store(tmp_path / "s")
    key = store.put("analyse", AnalysisSpec(run="aa"), _table(2))
    csv = store.export(key, "csv", str(tmp_path / "out.csv"))
    pd.testing.assert_frame_equal(pd.read_csv(csv), _table(2))
    par = store.export(key, "parquet", str(tmp_path / "out.parquet"))
    pd.testing.assert_frame_equal(pd.read_parquet(par), _table(2))
    with pytest.raises(NNGeoError):
        store.export(key, "xlsx")


def test_hostile_names_and_keys_are_refused(tmp_path):
    store = Store(tmp_path / "s")
    for bad in ("../x", "a/b", "", "..", ".tmp-x"):
        with pytest.raises(NNGeoError):
            store.artifact_path("abcd", bad)
    with pytest.raises(NNGeoError):
        store.resolve("../../etc")
    with pytest.raises(NNGeoError):
        store.resolve("ffff")  # not there


def test_fsspec_url_root(tmp_path):
    """Any fsspec URL works as a root; memory:// exercises the non-local code path."""
    store = Store("memory://nngeo-test-store")
    key = store.put("analyse", AnalysisSpec(run="ab"), _table(1), artifacts={"a": b"xyz"})
    pd.testing.assert_frame_equal(store.get(key), _table(1))
    assert store.read_artifact(key, "a") == b"xyz"
    assert list(store.catalog()["key"]) == [key]


def _writer(root: str, worker: int, n: int) -> None:
    store = Store(root)
    for j in range(n):
        i = worker * 1000 + j
        store.put(
            "analyse",
            AnalysisSpec(run=f"{i:06x}", method="concurrency"),
            _table(i),
            attrs={"seed": i, "method": "concurrency"},
            artifacts={"payload": os.urandom(64) + i.to_bytes(4, "big")},
        )


def test_concurrent_writers_lose_nothing(tmp_path):
    """4 processes write 200 results at once: every one is listed, readable and intact."""
    root = str(tmp_path / "s")
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(root, w, 50)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    store = Store(root)
    cat = store.catalog(method="concurrency")
    assert len(cat) == 200 and cat["key"].is_unique
    for _, row in cat.iterrows():
        i = int(row["seed"])
        pd.testing.assert_frame_equal(store.get(row["key"]), _table(i))
        assert store.read_artifact(row["key"], "payload")[-4:] == i.to_bytes(4, "big")
    assert store.temp_files() == []


def test_a_killed_writer_leaves_nothing_visible(tmp_path):
    """A temp file left by a crash is ignored by readers and removed by clean_temp."""
    store = Store(tmp_path / "s")
    key = store.put("analyse", AnalysisSpec(run="01"), _table(1))
    folder = os.path.dirname(store.catalog_path(key))
    with open(os.path.join(folder, ".tmp-deadbeef"), "wb") as fh:
        fh.write(b"PAR1 half written")
    assert list(store.catalog()["key"]) == [key]
    assert store.clean_temp(older_than=0) == 1 and store.temp_files() == []
