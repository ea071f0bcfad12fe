"""Benchmark of recognising a torchvision architecture from a plain state_dict.

For each architecture (default: resnet50, ~100 MB of weights): a random-init torchvision model's
state_dict is saved with torch.save and read back with ``torch.load(weights_only=True)``, then

* reference: build the right builder directly and ``load_state_dict`` (what a user who knows the
  architecture would do);
* cold: ``nngeo_core.models.foreign.load_state_dict`` in a fresh nngeo home with no signature
  cache (in a subprocess, so nothing is cached in memory either): the representatives of every
  family and the matching families are built on the meta device;
* warm: the same call again in a new process that reads the disk cache, and in the same process
  (memory cache).

Prints each time and its ratio to the reference. Run with the thread count of the target machine:

    python bench/foreign_load.py [--arch resnet50,vgg16] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

CHILD = r"""
import json, sys, time, warnings
import torch
torch.set_num_threads(int(sys.argv[3]))
t0 = time.perf_counter()
from nngeo_core.models import foreign
import_s = time.perf_counter() - t0
state = torch.load(sys.argv[1], weights_only=True)
arch = sys.argv[2]
t = time.perf_counter()
model, spec = foreign.load_state_dict(state)
first = time.perf_counter() - t
assert spec["arch"] == arch, spec
t = time.perf_counter()
foreign.load_state_dict(state)
again = time.perf_counter() - t
import torchvision.models as tvm
t = time.perf_counter()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    ref = tvm.get_model(arch, weights=None, num_classes=spec["num_classes"])
ref.load_state_dict(state)
reference = time.perf_counter() - t
print(json.dumps({"import_s": import_s, "first_s": first, "again_s": again, "reference_s": reference}))
"""


def run_child(state_path: str, arch: str, home: str, threads: int) -> dict:
    env = {**os.environ, "NNGEO_HOME": home, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": ROOT}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, state_path, arch, str(threads)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", default="resnet50", help="comma-separated torchvision builders")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import torch
    import torchvision.models as tvm

    for arch in args.arch.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            torch.manual_seed(0)
            model = tvm.get_model(arch, weights=None)
            path = os.path.join(tmp, "state.pt")
            torch.save(model.state_dict(), path)
            size_mb = os.path.getsize(path) / 1e6
            home = os.path.join(tmp, "home")
            cold = run_child(path, arch, home, args.threads)  # no cache file yet
            warm = run_child(path, arch, home, args.threads)  # the cache file written by the cold run
            ref = min(cold["reference_s"], warm["reference_s"])
            print(f"{arch}: {size_mb:.0f} MB state_dict, {args.threads} threads")
            print(f"  reference (right builder + load_state_dict): {ref:.2f} s")
            for label, secs in (
                ("cold (no cache; families built on meta)", cold["first_s"]),
                ("warm (new process, disk cache)", warm["first_s"]),
                ("warm (same process, memory cache)", warm["again_s"]),
            ):
                print(f"  {label}: {secs:.2f} s  ratio {secs / ref:.2f}")
            print(f"  import of nngeo_core.models.foreign: {warm['import_s']:.2f} s")


if __name__ == "__main__":
    main()
