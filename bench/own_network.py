"""Your own network, end to end, from the command line: the wall time of each stage of the loop

    nngeo data add -> nngeo upload -> nngeo analyse -> nngeo prune --run -> nngeo export

on a torchvision resnet18 (num_classes=10, random init, saved as a plain state_dict) and a small
.npz image set (N×3×32×32 uint8, 10 classes). Every stage is a real ``python -m nngeo_core``
subprocess in a fresh nngeo home (``settings.home_env``), so each pays interpreter and import
start-up as a user would. Reference for the upload stage: building torchvision's resnet18 and
``load_state_dict`` in-process (what a user who knows the architecture would do).

timp is opt-in (``--timp``) and swept in its own ``nngeo prune`` call, timed on its own line. On an
upload its rounds retrain for the sweep's fine-tune epochs (0 here: they only prune, and the masks
are selected once per level): about 34 s on 2 loaded cores, where retraining every round for a
run's default epochs took 403 s (Dec 2026); ``--timp-param round_epochs=N`` retrains N epochs a round.

    python bench/own_network.py [--n 200] [--threads 2] [--timp [--timp-param K=V ...]]

A failing stage prints its one-line error in the table; stages that need its output are skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torchvision

from nngeo_core.settings import home_env

ROOT = Path(__file__).resolve().parent.parent
CLASSES = 10
SHAPE = (3, 32, 32)
ANALYSES = ("persistence", "critical_compression", "mst_overlap")
LEVELS = "0.5,0.9"
EXPORT_LEVEL = "0.9"


class Stage:
    def __init__(self, name: str, seconds: float, note: str = "") -> None:
        self.name, self.seconds, self.note = name, seconds, note


def make_inputs(tmp: Path, n: int) -> tuple[Path, Path]:
    """The checkpoint and the dataset (not timed)."""
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=CLASSES)
    ckpt = tmp / "model.pt"
    torch.save(dict(model.state_dict()), ckpt)
    rng = np.random.default_rng(0)
    y = np.arange(n) % CLASSES
    # class-dependent mean so the set is learnable in principle, plus noise
    x = np.clip(rng.normal(40 + 18 * y[:, None, None, None], 30, (n, *SHAPE)), 0, 255).astype(np.uint8)
    data = tmp / "images.npz"
    np.savez(data, x=x, y=y.astype(np.int64))
    return ckpt, data


def reference_load(ckpt: Path) -> float:
    """Plain torchvision: read the file, build resnet18, load_state_dict."""
    start = time.perf_counter()
    state = torch.load(ckpt, weights_only=True)
    model = torchvision.models.resnet18(num_classes=CLASSES)
    model.load_state_dict(state)
    return time.perf_counter() - start


def one_line(stderr: str, stdout: str, rc: int) -> str:
    lines = [ln.strip() for ln in (stderr.strip() or stdout.strip()).splitlines() if ln.strip()]
    return f"rc={rc}: {lines[-1] if lines else '(no output)'}"


def nngeo(env: dict[str, str], cwd: Path, timeout: float, *args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.perf_counter()
    cmd = [sys.executable, "-m", "nngeo_core", *args]
    try:
        proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        proc = subprocess.CompletedProcess(cmd, 124, "", f"timed out after {timeout:.0f} s")
    return time.perf_counter() - start, proc


def startup_reference(threads: int) -> float:
    """A bare interpreter importing torch and torchvision: the floor every CLI stage pays."""
    start = time.perf_counter()
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    subprocess.run([sys.executable, "-c", "import torch, torchvision"], env=env, check=True)
    return time.perf_counter() - start


def parse_json(text: str) -> object:
    text = text.strip()
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        # some commands print progress before the JSON document: take the last parseable line
        for line in reversed(text.splitlines()):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    raise ValueError(f"no JSON in output: {text[-200:]!r}")


def find_key(doc: object, *names: str) -> str | None:
    if isinstance(doc, dict):
        for name in names:
            if isinstance(doc.get(name), str):
                return str(doc[name])
    return None


def sweep_keys(rows: object) -> list[str]:
    """The sweep keys of `nngeo prune --json` (one row per level and seed, each naming its sweep),
    in order, without duplicates."""
    if not isinstance(rows, list):
        raise ValueError(f"expected a list of rows, got {type(rows).__name__}")
    return list(dict.fromkeys(str(r["sweep"]) for r in rows))


def run_loop(
    tmp: Path, n: int, threads: int, timp: bool, timeout: float, timp_params: tuple[str, ...] = ()
) -> list[Stage]:
    ckpt, data = make_inputs(tmp, n)
    env = {**os.environ, **home_env(tmp / "home"), "OMP_NUM_THREADS": str(threads)}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    stages: list[Stage] = []

    def step(name: str, *args: str) -> subprocess.CompletedProcess[str] | None:
        seconds, proc = nngeo(env, tmp, timeout, *args)
        if proc.returncode != 0:
            stages.append(Stage(name, seconds, "FAILED " + one_line(proc.stderr, proc.stdout, proc.returncode)))
            return None
        stages.append(Stage(name, seconds))
        return proc

    proc = step("data add", "data", "add", str(data), "--json")
    dataset = find_key(parse_json(proc.stdout), "name", "dataset") if proc else None
    if proc and not dataset:
        stages[-1].note = f"no dataset name in {proc.stdout.strip()[-120:]!r}"
    if not dataset:
        return stages
    stages[-1].note = dataset

    shape = ",".join(map(str, SHAPE))
    proc = step("upload", "upload", str(ckpt), "--input-shape", shape, "--data", dataset, "--json")
    key = find_key(parse_json(proc.stdout), "key", "run") if proc else None
    if not key:
        return stages
    stages[-1].note = key[:12]

    for method in ANALYSES:
        step(f"analyse {method}", "analyse", key, "--method", method, "--quiet")

    common = ("--run", key, "--sparsity", LEVELS, "--seeds", "1", "--finetune-epochs", "0", "--json")
    sweeps: list[tuple[str, str]] = []
    extra = tuple(arg for kv in timp_params for arg in ("--strategy-param", f"timp.{kv}"))
    groups: list[tuple[str, tuple[str, ...]]] = [("magnitude,random", ())] + ([("timp", extra)] if timp else [])
    for label, flags in groups:
        proc = step(f"prune {label}", "prune", "--strategy", label, *common, *flags)
        if proc:
            keys = sweep_keys(parse_json(proc.stdout))
            stages[-1].note = f"sweeps {', '.join(k[:12] for k in keys)}"
            sweeps += [(label, k) for k in keys]

    for fmt in ("safetensors", "onnx"):
        if not sweeps:
            break
        label, sweep = sweeps[0]
        out = tmp / f"export.{fmt}"
        step(
            f"export {fmt} ({label.split(',')[0]} @{EXPORT_LEVEL})",
            "export",
            sweep,
            "--level",
            EXPORT_LEVEL,
            "--format",
            fmt,
            "-o",
            str(out),
        )
        if out.exists():
            stages[-1].note = f"{out.stat().st_size / 1e6:.1f} MB"
    return stages


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200, help="images in the dataset")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (in-process and children)")
    ap.add_argument("--timp", action="store_true", help="also sweep timp (minutes: it retrains per round)")
    ap.add_argument("--timp-param", action="append", default=[], metavar="K=V", help="timp parameter (repeatable)")
    ap.add_argument("--timeout", type=float, default=1200, help="seconds before a stage is stopped")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}   ({os.cpu_count()} cores)")
    with tempfile.TemporaryDirectory() as tmp:
        reference = reference_load(make_inputs(Path(tmp), a.n)[0])
    with tempfile.TemporaryDirectory() as tmp:
        stages = run_loop(Path(tmp), a.n, a.threads, timp=a.timp, timp_params=tuple(a.timp_param), timeout=a.timeout)
    startup = startup_reference(a.threads)
    width = max(len(s.name) for s in stages)
    print(f"{'stage':<{width}}  {'wall s':>8}  note")
    for s in stages:
        print(f"{s.name:<{width}}  {s.seconds:8.2f}  {s.note}")
    total = sum(s.seconds for s in stages)
    print(f"{'total':<{width}}  {total:8.2f}")
    upload = next((s.seconds for s in stages if s.name == "upload"), None)
    ratio = f"   (upload / reference {upload / reference:.1f}x)" if upload else ""
    print(f"reference: torchvision resnet18 build + load_state_dict in-process  {reference:.2f} s{ratio}")
    print(
        f"reference: a bare `python -c 'import torch, torchvision'` subprocess  {startup:.2f} s (paid by every stage)"
    )
    print(f"load average after:  {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
