"""Analyses that cannot represent a network refuse it at once, with one line naming the reason;
the zoo's own models (residual ones included) are not refused."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from torchvision.models.mobilenetv3 import InvertedResidual
from torchvision.models.resnet import BasicBlock

from nngeo_core.curvature import analyses as curvature_analyses
from nngeo_core.data.base import Dataset
from nngeo_core.errors import NNGeoError
from nngeo_core.models import build
from nngeo_core.models.layers import residual_additions
from nngeo_core.progress import Progress

HEAVY = ("neural_curvature", "weight_only_curvature", "calibration_set", "fold_batchnorm")


def _tiny_images(n: int = 20) -> Dataset:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 3, 32, 32, generator=g)
    y = torch.arange(n) % 10
    return Dataset("synthetic", x, y, x.clone(), y.clone(), (3, 32, 32), 10)


def _expected_skips(model: torch.nn.Module) -> int:
    """Independent count: torchvision's residual blocks that add their input back."""
    blocks = [m for m in model.modules() if isinstance(m, BasicBlock)]
    blocks += [m for m in model.modules() if isinstance(m, InvertedResidual) and m.use_res_connect]
    return len(blocks)


@pytest.fixture
def no_heavy_work(monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("heavy work started before the refusal")

    for name in HEAVY:
        monkeypatch.setattr(curvature_analyses, name, boom)


@pytest.mark.parametrize("arch", ["resnet18", "mobilenet_v3_small"])
def test_residual_additions_match_the_blocks_that_add_their_input(arch):
    model = build("torchvision", arch=arch, input_shape=(3, 32, 32), num_classes=10)
    expected = _expected_skips(model)
    assert expected > 0
    assert residual_additions(model) == expected


def test_residual_additions_of_a_plain_mlp_is_zero():
    assert residual_additions(build("mlp")) == 0


@pytest.mark.parametrize("arch", ["resnet18", "mobilenet_v3_small"])
@pytest.mark.parametrize(
    ("analysis", "label", "needs_data"),
    [("curvature_analysis", "neural curvature", True), ("curvature_weights_analysis", "weight curvature", False)],
)
def test_torchvision_residual_net_is_refused_before_heavy_work(no_heavy_work, arch, analysis, label, needs_data):
    model = build("torchvision", arch=arch, input_shape=(3, 32, 32), num_classes=10)
    fn = getattr(curvature_analyses, analysis)
    with pytest.raises(NNGeoError) as info:
        fn(model, _tiny_images() if needs_data else None, {}, Progress())
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{label} does not model residual connections yet: {arch} adds")
    assert f"adds {_expected_skips(model)} skip connections" in message
    assert "persistence" in message


def test_zoo_residual_net_still_reaches_the_computation(monkeypatch):
    """resnet20 keeps the documented convention (size-linked chain): not refused."""
    reached = []

    def fake(model, **kwargs):
        reached.append(type(model).__name__)
        return pd.DataFrame({"layer": ["x"], "src": [0], "dst": [0], "weight": [1.0], "curvature": [0.0]})

    monkeypatch.setattr(curvature_analyses, "weight_only_curvature", fake)
    model = build("resnet20")
    assert residual_additions(model) > 0
    table = curvature_analyses.curvature_weights_analysis(model, None, {}, Progress())
    assert reached and len(table) >= 1


def test_zoo_mlp_neural_curvature_not_refused(monkeypatch):
    reached = []
    monkeypatch.setattr(curvature_analyses, "calibration_set", lambda model, dataset, k: reached.append(k) or "x")
    monkeypatch.setattr(curvature_analyses, "neural_curvature", lambda model, inputs, **kw: pd.DataFrame())
    model = build("mlp")
    g = torch.Generator().manual_seed(0)
    x = torch.rand(10, 2, generator=g)
    data = Dataset("toy", x, torch.arange(10) % 2, x, torch.arange(10) % 2, (2,), 2)
    curvature_analyses.curvature_analysis(model, data, {}, Progress())
    assert reached == [1]
