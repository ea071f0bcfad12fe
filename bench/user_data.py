"""Registering an image folder of your own: ``data.user.add_dataset`` on N 32×32 PNGs (10 classes)
against a bare PIL loop (open, convert, to NumPy) over the same files. Goal: 10,000 images in ≤ 30 s
on 2 cores.

    python bench/user_data.py [--n 10000] [--threads 1,2]

The images are written first (not timed) to a temporary folder; each timed add runs in its own
nngeo home, so none finds the other's dataset already stored.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from nngeo_core.data.user import add_dataset
from nngeo_core.settings import home_env

GOAL_S = 30.0
CLASSES = 10


def write_images(root: Path, n: int, side: int = 32) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    # smooth images (a random gradient plus noise) compress as photos do, unlike pure noise
    yy, xx = np.mgrid[0:side, 0:side]
    for i in range(n):
        folder = root / f"class{i % CLASSES}"
        folder.mkdir(parents=True, exist_ok=True)
        a, b, c = rng.uniform(-4, 4, 3)
        base = (a * xx + b * yy + c * 20) % 256
        img = np.clip(base[..., None] + rng.normal(0, 12, (side, side, 3)), 0, 255).astype(np.uint8)
        path = folder / f"{i:05d}.png"
        Image.fromarray(img).save(path)
        paths.append(path)
    return paths


def pil_loop(paths: list[Path]) -> float:
    start = time.perf_counter()
    out = np.empty((len(paths), 32, 32, 3), dtype=np.uint8)
    for i, p in enumerate(paths):
        with Image.open(p) as im:
            out[i] = np.asarray(im.convert("RGB"))
    return time.perf_counter() - start


def timed_add(folder: Path, threads: int) -> float:
    with tempfile.TemporaryDirectory() as home:
        os.environ.update(home_env(home))
        start = time.perf_counter()
        result = add_dataset(folder, threads=threads)
        elapsed = time.perf_counter() - start
        assert result.created and sum(result.manifest["counts"].values()) == len(list(folder.rglob("*.png")))
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--threads", default="1,2", help="decoding threads to try, e.g. 1,2")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        t0 = time.perf_counter()
        paths = write_images(folder, a.n)
        print(f"wrote {a.n} 32×32 PNGs in {time.perf_counter() - t0:.1f} s (not timed)")
        reference = min(pil_loop(paths) for _ in range(2))
        print(f"reference: bare PIL open+convert loop   {reference:6.2f} s")
        for threads in (int(t) for t in a.threads.split(",")):
            elapsed = min(timed_add(folder, threads) for _ in range(2))
            verdict = "ok" if elapsed <= GOAL_S else "OVER GOAL"
            print(
                f"add_dataset, {threads} decoding thread(s)  {elapsed:6.2f} s   "
                f"ratio to reference {elapsed / reference:4.2f}   goal ≤{GOAL_S:.0f} s: {verdict}"
            )


if __name__ == "__main__":
    main()
