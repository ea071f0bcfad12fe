"""Where nngeo keeps things and how it runs: every ``NNGEO_*`` variable is read here, and only here.

NNGEO_HOME             base folder (default ~/.nngeo)
NNGEO_STORE            result store root: a folder or any fsspec URL (default $NNGEO_HOME/store)
NNGEO_QUEUE            job queue: sqlite path/URL, redis://host:port/db or memory:// (default
                       sqlite $NNGEO_HOME/queue.db)
NNGEO_DATA_DIR         datasets read from disk (default $NNGEO_HOME/data)
NNGEO_DOWNLOAD         allow dataset downloads (default on; failures still give a clear error)
NNGEO_EMBEDDED_WORKER  the dashboard starts a worker of its own when none is alive (default on)
NNGEO_REQUEUE_DEAD     re-queue (once) a job whose worker died instead of failing it (default off)
NNGEO_WORKER_STALE_S   seconds without a heartbeat after which a worker counts as dead (default 30)
NNGEO_JOB_MODULES      comma-separated modules of your own that register job kinds
NNGEO_JOBS_KEEP_DAYS   the dashboard trims finished jobs older than this many days (default 30; 0 keeps all)
NNGEO_WORKER_THREADS   torch threads per worker consumer (default: the cores this process may use
                       divided by the consumers, at least 1)
NNGEO_POLL_S           seconds between the dashboard's reads of the job table while a job it shows is
                       active (default 2)
NNGEO_IDLE_POLL_S      seconds between those reads while nothing is active (default 30)

Flags take 1/true/yes/on or 0/false/no/off (any case); anything else is a one-line error.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import NNGeoError

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})


def parse_flag(name: str, value: str | None, default: bool) -> bool:
    """The one parser of true/false settings: unset or empty means ``default``."""
    if value is None or not value.strip():
        return default
    word = value.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise NNGeoError(f"{name}={value!r} is not a flag; use one of 1/true/yes/on or 0/false/no/off")


def parse_count(name: str, value: str | None, default: int | None, minimum: int = 0) -> int | None:
    """A whole number ≥ ``minimum``: unset or empty means ``default``."""
    if value is None or not value.strip():
        return default
    try:
        number = int(value)
    except ValueError:
        raise NNGeoError(f"{name}={value!r} is not a whole number") from None
    if number < minimum:
        raise NNGeoError(f"{name}={value!r} must be at least {minimum}")
    return number


def parse_seconds(name: str, value: str | None, default: float) -> float:
    if value is None or not value.strip():
        return default
    try:
        seconds = float(value)
    except ValueError:
        raise NNGeoError(f"{name}={value!r} is not a number of seconds") from None
    if not seconds > 0:
        raise NNGeoError(f"{name}={value!r} must be a positive number of seconds")
    return seconds


@dataclass(frozen=True)
class Settings:
    home: Path
    store: str
    queue: str
    data_dir: Path
    download: bool
    embedded_worker: bool = True
    requeue_dead: bool = False
    worker_stale_s: float = 30.0
    job_modules: tuple[str, ...] = ()
    jobs_keep_days: float = 30.0
    worker_threads: int | None = None
    poll_s: float = 2.0
    idle_poll_s: float = 30.0

    @property
    def queue_is_redis(self) -> bool:
        return self.queue.startswith(("redis://", "rediss://", "unix://"))

    @property
    def queue_sqlite_path(self) -> Path:
        # "sqlite:///abs/path.db" or a bare path
        q = self.queue
        return Path(q[len("sqlite://") :]) if q.startswith("sqlite://") else Path(q)


def get_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read the settings afresh (cheap), so tests and workers can change the environment."""
    env = os.environ if environ is None else environ
    home = Path(env.get("NNGEO_HOME") or Path.home() / ".nngeo").expanduser()
    store = env.get("NNGEO_STORE") or str(home / "store")
    queue = env.get("NNGEO_QUEUE") or str(home / "queue.db")
    data_dir = Path(env.get("NNGEO_DATA_DIR") or home / "data").expanduser()
    keep = env.get("NNGEO_JOBS_KEEP_DAYS")
    try:
        keep_days = 30.0 if keep is None or not keep.strip() else float(keep)
    except ValueError:
        raise NNGeoError(f"NNGEO_JOBS_KEEP_DAYS={keep!r} is not a number of days") from None
    if not keep_days >= 0:
        raise NNGeoError(f"NNGEO_JOBS_KEEP_DAYS={keep!r} must be 0 (keep all) or a positive number of days")
    return Settings(
        home=home,
        store=store,
        queue=queue,
        data_dir=data_dir,
        download=parse_flag("NNGEO_DOWNLOAD", env.get("NNGEO_DOWNLOAD"), True),
        embedded_worker=parse_flag("NNGEO_EMBEDDED_WORKER", env.get("NNGEO_EMBEDDED_WORKER"), True),
        requeue_dead=parse_flag("NNGEO_REQUEUE_DEAD", env.get("NNGEO_REQUEUE_DEAD"), False),
        worker_stale_s=parse_seconds("NNGEO_WORKER_STALE_S", env.get("NNGEO_WORKER_STALE_S"), 30.0),
        job_modules=tuple(m.strip() for m in env.get("NNGEO_JOB_MODULES", "").split(",") if m.strip()),
        jobs_keep_days=keep_days,
        worker_threads=parse_count("NNGEO_WORKER_THREADS", env.get("NNGEO_WORKER_THREADS"), None, minimum=1),
        poll_s=parse_seconds("NNGEO_POLL_S", env.get("NNGEO_POLL_S"), 2.0),
        idle_poll_s=parse_seconds("NNGEO_IDLE_POLL_S", env.get("NNGEO_IDLE_POLL_S"), 30.0),
    )


def home_env(home: str | os.PathLike[str]) -> dict[str, str]:
    """The variables that put every nngeo location under ``home`` (store, queue, datasets), whatever
    the surrounding environment says: one self-contained nngeo for a test, benchmark or demo."""
    home = Path(home)
    return {
        "NNGEO_HOME": str(home),
        "NNGEO_STORE": str(home / "store"),
        "NNGEO_QUEUE": str(home / "queue.db"),
        "NNGEO_DATA_DIR": str(home / "data"),
    }


def pick_device(requested: str = "auto") -> str:
    """'auto' picks CUDA when present, then Apple MPS, else CPU."""
    import torch  # lazy: settings are read by `nngeo --help`, which must not pay for torch

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
