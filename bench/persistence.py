"""Benchmark: nngeo's neural persistence against gudhi's SimplexTree on the same layers.

Run: python bench/persistence.py   (uses 2 torch threads, like the target machine)

gudhi path (the fastest plain use of it): one SimplexTree, vertices at filtration 0 and every
nonzero edge at 1 - |w|/w_max inserted with insert_batch, compute_persistence, dimension-0 bars.
Each timing is the best of a few runs; diagrams are checked to agree to 1e-9.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nngeo_core.models import build, prunable_layers
from nngeo_core.topology import neural_persistence, persistence_diagram, persistence_diagrams


def gudhi_diagram(T: np.ndarray) -> np.ndarray:
    import gudhi

    a = np.abs(T).astype(np.float64)
    o, i = np.nonzero(a)
    n_out, n_in = T.shape
    st = gudhi.SimplexTree()
    st.insert_batch(np.arange(n_in + n_out)[None, :], np.zeros(n_in + n_out))
    st.insert_batch(np.vstack([i, n_in + o]), 1.0 - a[o, i] / a.max())
    st.compute_persistence()
    bars = np.asarray(st.persistence_intervals_in_dimension(0)).reshape(-1, 2)
    bars = bars[np.isfinite(bars[:, 1])]
    deaths = np.sort(1.0 - bars[:, 1])
    return np.column_stack([np.ones(deaths.size), deaths])


def best_time(fn, repeat: int):
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def compare(label: str, T: np.ndarray, ours_fn=None, repeat: int = 3) -> None:
    """Time nngeo (``ours_fn``, default persistence_diagram(T)) against gudhi on the matrix T."""
    ours_fn = ours_fn or (lambda: persistence_diagram(T))
    t_ours, ours = best_time(ours_fn, repeat)
    t_gudhi, ref = best_time(lambda: gudhi_diagram(T), repeat)
    assert ours.shape == ref.shape and np.abs(ours - ref).max() < 1e-9, f"{label}: diagrams differ"
    print(
        f"{label:<40} edges {np.count_nonzero(T):>9,d}  nngeo {t_ours * 1e3:9.1f} ms  "
        f"gudhi {t_gudhi * 1e3:9.1f} ms  speed-up x{t_gudhi / t_ours:6.1f}"
    )


def conv_diagram(conv: torch.nn.Conv2d, input_shape):
    """nngeo's exact (Toeplitz) diagram of one conv layer, straight from the conv weight."""
    model = torch.nn.Sequential(conv)
    model.input_shape = input_shape
    return lambda: persistence_diagrams(model)[["birth", "death"]].to_numpy()


def toeplitz(conv: torch.nn.Conv2d, input_size) -> np.ndarray:
    """Unrolled matrix of a conv (padded input positions as columns) by conv2d on one-hot inputs."""
    ph, pw = conv.padding
    hp, wp = input_size[0] + 2 * ph, input_size[1] + 2 * pw
    eye = torch.eye(conv.in_channels * hp * wp).reshape(-1, conv.in_channels, hp, wp)
    with torch.no_grad():
        out = torch.nn.functional.conv2d(
            eye, conv.weight, stride=conv.stride, dilation=conv.dilation, groups=conv.groups
        )
    return out.reshape(out.shape[0], -1).T.double().numpy()


def main() -> None:
    torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    print("single layers (nngeo persistence_diagram vs gudhi SimplexTree)")
    compare("dense 784x100 (fcn_mnist layer 1)", rng.normal(size=(100, 784)).astype(np.float32), repeat=5)
    compare("dense 2048x1024", rng.normal(size=(1024, 2048)).astype(np.float32), repeat=2)
    torch.manual_seed(0)
    lenet = build("lenet5")
    modules = dict(lenet.named_modules())
    for info in prunable_layers(lenet):
        if info.kind == "conv":
            conv = modules[info.name]
            compare(
                f"lenet5 conv {info.name} Toeplitz {info.weight_shape[1]}->{info.weight_shape[0]}",
                toeplitz(conv, info.input_size),
                conv_diagram(conv, (conv.in_channels, *info.input_size)),
            )

    print("\nwhole network, vgg11 at 32x32 (no gudhi: ~150 million Toeplitz edges)")
    torch.manual_seed(0)
    vgg = build("vgg11")
    for conv in ("toeplitz", "filter"):
        t, table = best_time(lambda conv=conv: neural_persistence(vgg, conv=conv), 1)
        print(
            f"vgg11 neural_persistence conv={conv:<9} {t:6.2f} s  layers {len(table)}  "
            f"edges {table['n_edges'].sum():>12,d}  network NP {table['np'].sum():.4f}"
        )


if __name__ == "__main__":
    main()
