"""The topology analyses registered for the `analyse` job kind return what the API returns."""

import pandas as pd
import torch

from nngeo_core.analyses import get_analysis
from nngeo_core.models import build
from nngeo_core.progress import Progress
from nngeo_core.topology import persistence_diagram, persistence_diagrams


def test_persistence_diagrams_analysis_matches_the_per_layer_diagrams():
    torch.manual_seed(0)
    model = build("mlp", widths=(7, 5))
    table = get_analysis("persistence_diagrams")(model, None, {"normalize": "layer"}, Progress())
    pd.testing.assert_frame_equal(table, persistence_diagrams(model, normalize="layer"))
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    for name, lin in zip(dict.fromkeys(table["layer"].astype(str)), linears, strict=False):
        rows = table[table["layer"].astype(str) == name]
        ref = persistence_diagram(lin.weight.detach().numpy())
        assert sorted(rows["death"].round(12)) == sorted(ref[:, 1].round(12))
