"""The Balwani & Krzyston MST-overlap claim at its test size: its rows are per-seed means over
layers of its own overlap table, its chance column is α/N of the layer shapes (a dense layer's MST
has n_in + n_out − 1 edges of n_in·n_out), and its epoch-0 overlap is that of the run's freshly
built net, recomputed here with scipy's spanning tree and a top-α cut."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import minimum_spanning_tree

from nngeo_core.data import load
from nngeo_core.figures.reproduce import BUILDERS
from nngeo_core.reproduce import CLAIMS
from nngeo_core.reproduce.balwani2022_overlap import NAME, NULL_KINDS
from nngeo_core.specs import DataSpec, ModelSpec, RunSpec, TrainSpec
from nngeo_core.train import build_for

MEASURED: dict[str, object] = {}


def measured():
    if "m" not in MEASURED:
        MEASURED["m"] = CLAIMS.get(NAME).run("test", 1)
    return MEASURED["m"]


def test_rows_are_layer_means_of_the_overlap_table():
    m = measured()
    table = m.tables["overlap"]
    end = int(table["epoch"].max())

    def layer_mean(model, epoch, column="overlap"):
        part = table[(table["model"] == model) & (table["epoch"] == epoch)]
        return part.groupby("null_seed")[column].mean().mean()

    rows = {r.name: r.values[0] for r in m.rows}
    trained = layer_mean("trained", end)
    assert rows["mean overlap over layers, trained, end"] == pytest.approx(trained)
    chance = layer_mean("trained", end, "chance")
    assert rows["mean overlap − chance α/N over layers, trained, end"] == pytest.approx(trained - chance)
    bound = layer_mean("trained", end, "bound")
    assert rows["mean overlap − lower bound over layers, trained, end"] == pytest.approx(trained - bound)
    for kind in NULL_KINDS:
        assert rows[f"mean overlap, trained − {kind} null, end"] == pytest.approx(trained - layer_mean(kind, end))
    assert rows["mean overlap over layers, at init (epoch 0)"] == pytest.approx(layer_mean("trained", 0))
    fig = BUILDERS[m.figures[0].builder](table)
    assert {t.name for t in fig.data} >= {"layer 1", "layer 3", *(f"{k} null" for k in NULL_KINDS)}


def test_chance_is_alpha_over_edges_of_the_layer_shapes():
    settings = CLAIMS.get(NAME).size("test").settings
    widths = [64, *settings["model_params"]["widths"], 10]  # 8×8 digits in, 10 classes out
    table = measured().tables["overlap"]
    for model, part in table.groupby("model"):
        got = part.groupby("layer", sort=False)["chance"].unique()
        assert len(got) == len(widths) - 1, model
        for (n_in, n_out), values in zip(zip(widths, widths[1:], strict=False), got, strict=True):
            assert values == pytest.approx([(n_in + n_out - 1) / (n_in * n_out)])


def brute_overlap(w: np.ndarray) -> float:
    """Maximum spanning tree of the bipartite |w| graph (scipy's minimum tree of −|w|) against the
    α largest |w|, α the tree's size."""
    n_out, n_in = w.shape
    a = np.abs(w)
    rows, cols = np.meshgrid(np.arange(n_in), n_in + np.arange(n_out), indexing="ij")
    graph = coo_matrix((-(a.T.ravel() + 1.0), (rows.ravel(), cols.ravel())), shape=(n_in + n_out,) * 2)
    tree = minimum_spanning_tree(graph).tocoo()
    edges = {(int(min(i, j)), int(max(i, j))) for i, j in zip(tree.row, tree.col, strict=True)}
    alpha = len(edges)
    order = np.argsort(-a.T.ravel(), kind="stable")[:alpha]
    top = {(int(k // n_out), int(n_in + k % n_out)) for k in order}
    return len(edges & top) / alpha


def test_epoch_zero_overlap_is_the_fresh_nets_recomputed():
    settings = CLAIMS.get(NAME).size("test").settings
    spec = RunSpec(
        data=DataSpec("digits", seed=0, params=dict(settings["data_params"])),
        model=ModelSpec("mlp", params=dict(settings["model_params"])),
        train=TrainSpec(epochs=settings["epochs"], batch_size=64, optimizer="adam", lr=1e-3, seed=0, device="cpu"),
    )
    model = build_for(spec, load(spec.data))
    linears = [mod for mod in model.modules() if isinstance(mod, torch.nn.Linear)]
    table = measured().tables["overlap"]
    init = table[(table["model"] == "trained") & (table["epoch"] == 0)]
    expect = [brute_overlap(lin.weight.detach().numpy()) for lin in linears]
    assert list(init["overlap"]) == pytest.approx(expect)
