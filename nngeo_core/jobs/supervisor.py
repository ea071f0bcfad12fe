"""`nngeo worker`: one consumer per visible GPU (each its own process with
``CUDA_VISIBLE_DEVICES`` set to one GPU) under a supervisor that restarts a consumer that dies
and stops them all on a signal, or one consumer in this process (one GPU, or the CPU). Each
consumer process gets its share of the cores for torch's threads (``nngeo_core.threads``).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import FrameType

from .. import threads
from ..errors import NNGeoError
from ..settings import get_settings
from .liveness import SHUTDOWN_WAIT_SECONDS
from .worker import Worker

log = logging.getLogger(__name__)


def plan_consumers(gpus: str, visible: str | None, device_count: int) -> list[str | None]:
    """The ``CUDA_VISIBLE_DEVICES`` value of each consumer process to start.

    ``[None]``: one consumer here, environment unchanged. ``[""]``: one CPU consumer. More than
    one entry: one child process per GPU. ``gpus`` is auto (every visible GPU), all, none/cpu, or a
    comma list of GPU ids."""
    choice = (gpus or "auto").strip().lower()
    if choice in ("none", "cpu"):
        return [""]
    if choice in ("auto", "all"):
        if visible is not None:
            found = [x.strip() for x in visible.split(",") if x.strip()]
        else:
            found = [str(i) for i in range(device_count)]
        return [None] if len(found) <= 1 else list(found)
    ids = [x.strip() for x in choice.split(",") if x.strip()]
    if not ids or any(not x.replace("-", "").isalnum() for x in ids):
        raise NNGeoError(f"--gpus takes auto, all, none or a list of GPU ids such as 0,1; got {gpus!r}")
    return list(ids)


def count_gpus() -> int:
    """NVIDIA GPUs on this machine, without initialising CUDA (the driver's /proc entries, or nvidia-smi)."""
    proc = Path("/proc/driver/nvidia/gpus")
    if proc.is_dir():
        return len(list(proc.iterdir()))
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20).stdout
            return sum(1 for line in out.splitlines() if line.startswith("GPU "))
        except (OSError, subprocess.SubprocessError):
            return 0
    return 0


def configure_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("huey").setLevel(logging.INFO if verbose else logging.WARNING)
    logging.getLogger("nngeo_core").setLevel(logging.INFO)
    logging.captureWarnings(True)


def run_worker_command(
    *,
    workers: int = 1,
    gpus: str = "auto",
    requeue_dead: bool | None = None,
    parent_pid: int | None = None,
    verbose: bool = False,
) -> int:
    configure_logging(verbose)
    if requeue_dead is None:
        requeue_dead = get_settings().requeue_dead
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    plan = plan_consumers(gpus, visible, count_gpus() if visible is None else 0)
    if len(plan) > 1:
        extra = (
            ["--workers", str(workers)]
            + (["--requeue-dead"] if requeue_dead else [])
            + (["--verbose"] if verbose else [])
            + (["--parent-pid", str(parent_pid)] if parent_pid else [])
        )
        gpu_ids = [gid for gid in plan if gid is not None]
        # the children share this machine's cores: each gets cores // (its threads x children)
        per_child = threads.for_consumers(len(gpu_ids) * workers, get_settings().worker_threads)
        return supervise(gpu_ids, extra, worker_threads=per_child)
    if plan[0] is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = plan[0]
    return Worker(workers=workers, requeue_dead=requeue_dead, parent_pid=parent_pid).run()


def supervise(gpu_ids: list[str], extra_args: list[str], worker_threads: int | None = None) -> int:
    """One child consumer per GPU; restarts a child that dies, stops them all on a signal.
    ``worker_threads``: each child's torch thread count (``NNGEO_WORKER_THREADS`` in its env)."""
    children: dict[str, subprocess.Popen[bytes]] = {}
    stopping = threading.Event()

    def spawn(gid: str) -> subprocess.Popen[bytes]:
        env = dict(os.environ, CUDA_VISIBLE_DEVICES=gid)
        if worker_threads is not None:
            env["NNGEO_WORKER_THREADS"] = str(worker_threads)
        log.info("starting consumer for GPU %s", gid)
        return subprocess.Popen([sys.executable, "-m", "nngeo_core", "worker", "--gpus", gid, *extra_args], env=env)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    for sig in (signal.SIGTERM, signal.SIGINT) + ((signal.SIGHUP,) if hasattr(signal, "SIGHUP") else ()):
        signal.signal(sig, on_signal)
    restarts: dict[str, list[float]] = {g: [] for g in gpu_ids}
    for gid in gpu_ids:
        children[gid] = spawn(gid)
    while not stopping.wait(1.0):
        for gid, child in list(children.items()):
            if child.poll() is None:
                continue
            recent = [t for t in restarts[gid] if time.time() - t < 300]
            if len(recent) >= 5:
                log.error("consumer for GPU %s keeps dying (status %s); not restarting it", gid, child.returncode)
                del children[gid]
                continue
            log.warning("consumer for GPU %s exited with status %s; restarting", gid, child.returncode)
            restarts[gid] = recent + [time.time()]
            children[gid] = spawn(gid)
        if not children:
            return 1
    for child in children.values():
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + SHUTDOWN_WAIT_SECONDS + 5
    for child in children.values():
        try:
            child.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
    return 0
