import pytest
import torch

from nngeo_core.data import load
from nngeo_core.defaults import default_train
from nngeo_core.errors import NNGeoError
from nngeo_core.progress import Cancelled, Progress
from nngeo_core.runs import load_run, snapshot_epochs, train_run
from nngeo_core.specs import DataSpec, ModelSpec, RunSpec, TrainSpec
from nngeo_core.store import Store
from nngeo_core.train import build_for, evaluate, fit, train


def _tiny(epochs=3, seed=0, **kw):
    return RunSpec(
        data=DataSpec("xor", params={"n_train": 200, "n_test": 200}),
        model=ModelSpec("mlp", {"widths": (8,)}),
        train=TrainSpec(epochs=epochs, seed=seed, lr=0.01, **kw),
    )


def test_mlp_learns_xor():
    spec = RunSpec(data=DataSpec("xor"), model=ModelSpec("mlp"), train=default_train("mlp", "xor"))
    result = train(spec)
    assert result.test_accuracy >= 0.95
    # the history's last accuracy is the model's real accuracy, recomputed
    ds = load(spec.data)
    assert evaluate(result.model, ds.x_test, ds.y_test)[1] == pytest.approx(result.test_accuracy)


def test_fcn_mnist_learns_digits_at_28x28():
    spec = RunSpec(
        data=DataSpec("digits", params={"resize": 28}),
        model=ModelSpec("fcn_mnist"),
        train=default_train("fcn_mnist", "digits"),
    )
    assert train(spec).test_accuracy >= 0.90


def test_training_is_deterministic_on_cpu():
    a, b = train(_tiny()), train(_tiny())
    for (ka, va), (kb, vb) in zip(a.model.state_dict().items(), b.model.state_dict().items(), strict=False):
        assert ka == kb and torch.equal(va, vb)
    c = train(_tiny(seed=1))
    assert not all(
        torch.equal(x, y) for x, y in zip(a.model.state_dict().values(), c.model.state_dict().values(), strict=False)
    )


def test_snapshots_are_the_weights_at_those_epochs():
    spec = _tiny(epochs=4, snapshots=(0, 2, 4))
    r = train(spec)
    assert sorted(r.snapshots) == [0, 2, 4]
    init = build_for(spec, load(spec.data)).state_dict()
    assert all(torch.equal(init[k], r.snapshots[0][k]) for k in init)
    final = r.model.state_dict()
    assert all(torch.equal(final[k], r.snapshots[4][k]) for k in final)
    assert not all(torch.equal(init[k], r.snapshots[2][k]) for k in init)


def test_progress_reports_and_cancel_stops():
    seen = []
    train(_tiny(epochs=2), progress=Progress(lambda f, ph, m: seen.append((f, ph, m)), min_interval=0))
    assert seen and seen[-1][0] == pytest.approx(1.0) and "test_accuracy" in seen[-1][2]
    with pytest.raises(Cancelled):
        train(_tiny(epochs=50), progress=Progress(is_cancelled=lambda: True))


def test_masked_weights_stay_zero_while_training():
    spec = _tiny(epochs=2)
    ds = load(spec.data)
    model = build_for(spec, ds)
    w = model[1].weight if hasattr(model, "__getitem__") else next(model.parameters())
    name = [n for n, m in model.named_modules() if getattr(m, "weight", None) is w][0]
    mask = torch.rand(w.shape, generator=torch.Generator().manual_seed(0)) > 0.5
    fit(model, ds, spec.train, masks={name: mask})
    assert torch.all(w.detach()[~mask] == 0) and torch.any(w.detach()[mask] != 0)


@pytest.mark.parametrize(
    "bad",
    [
        dict(epochs=-1),
        dict(batch_size=0),
        dict(lr=0.0),
        dict(optimizer="lbfgs"),
        dict(schedule="wavy"),
        dict(snapshots=(99,)),
    ],
)
def test_bad_training_settings(bad):
    spec = _tiny(epochs=2)
    with pytest.raises(NNGeoError):
        train(spec.replace(train=spec.train.replace(**bad)))


def test_train_run_stores_once_and_loads_back(tmp_path):
    store = Store(tmp_path / "store")
    spec = _tiny(epochs=2, snapshots=(0, 2))
    key = train_run(spec, store=store)
    assert key == spec.hash and store.exists(key)
    entry = store.entry(key)
    assert entry["model"] == "mlp" and entry["data"] == "xor"
    mtime = store.fs.info(store.catalog_path(key))["mtime"]
    assert train_run(spec, store=store) == key  # cached: not trained again
    assert store.fs.info(store.catalog_path(key))["mtime"] == mtime
    ck = load_run(key, store=store)
    assert ck.run_spec == spec and len(ck.history) == 3
    assert snapshot_epochs(key, store=store) == [0, 2]
    ds = load(spec.data)
    assert evaluate(ck.model, ds.x_test, ds.y_test)[1] == pytest.approx(entry["metric"])
    with pytest.raises(NNGeoError, match="no snapshot"):
        load_run(key, store=store, epoch=1)
