"""Where nngeo keeps things. Every path or URL comes from here, read from the environment.

NNGEO_HOME      base folder (default ~/.nngeo)
NNGEO_STORE     result store root: a folder or any fsspec URL (default $NNGEO_HOME/store)
NNGEO_QUEUE     job queue: sqlite path/URL or redis://host:port/db (default sqlite $NNGEO_HOME/queue.db)
NNGEO_DATA_DIR  torchvision datasets (default $XDG_CACHE_HOME/nngeo/data, i.e. ~/.cache/nngeo/data)
NNGEO_DOWNLOAD  "1" allows dataset downloads (default "1"; failures still give a clear error)
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    home: Path
    store: str
    queue: str
    data_dir: Path
    download: bool

    @property
    def queue_is_redis(self) -> bool:
        return self.queue.startswith(("redis://", "rediss://", "unix://"))

    @property
    def queue_sqlite_path(self) -> Path:
        # "sqlite:///abs/path.db" or a bare path
        q = self.queue
        return Path(q[len("sqlite://"):]) if q.startswith("sqlite://") else Path(q)


def get_settings() -> Settings:
    """Read the settings afresh (cheap), so tests and workers can change the environment."""
    home = Path(os.environ.get("NNGEO_HOME") or Path.home() / ".nngeo").expanduser()
    store = os.environ.get("NNGEO_STORE") or str(home / "store")
    queue = os.environ.get("NNGEO_QUEUE") or str(home / "queue.db")
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    data_dir = Path(os.environ.get("NNGEO_DATA_DIR") or cache / "nngeo" / "data").expanduser()
    download = os.environ.get("NNGEO_DOWNLOAD", "1").lower() not in ("0", "false", "no", "")
    return Settings(home=home, store=store, queue=queue, data_dir=data_dir, download=download)


def home_env(home: str | os.PathLike) -> dict[str, str]:
    """The variables that put every nngeo location under ``home`` (store, queue, datasets), whatever
    the surrounding environment says: one self-contained nngeo for a test, benchmark or demo."""
    home = Path(home)
    return {"NNGEO_HOME": str(home), "NNGEO_STORE": str(home / "store"), "NNGEO_QUEUE": str(home / "queue.db"),
            "NNGEO_DATA_DIR": str(home / "data")}


def pick_device(requested: str = "auto") -> str:
    """'auto' picks CUDA when present, then Apple MPS, else CPU."""
    import torch

    if requested and requested != "auto":
        return requested
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def float64_device(requested: str = "auto") -> str:
    """``pick_device``, except that MPS (which has no float64) means CPU: the device for float64 work."""
    dev = pick_device(requested)
    return "cpu" if dev == "mps" else dev
