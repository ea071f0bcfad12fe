"""Start the dashboard as a real server on a free loopback port (for browser tests and benchmarks).

``serve(env)`` runs ``streamlit run app.py`` in a new process group with ``env`` added to the
environment, waits for ``/_stcore/health`` and yields the base URL; on exit it stops the server
(its exit handler stops the embedded worker) and kills it if it hangs.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path

from ..errors import NNGeoError

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(
    env: Mapping[str, str], *, log_path: str | os.PathLike, port: int | None = None, start_timeout: float = 60.0
) -> Iterator[str]:
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamlit",
                "run",
                "app.py",
                "--server.port",
                str(port),
                "--server.address",
                "127.0.0.1",
                "--server.headless",
                "true",
            ],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + start_timeout
            while True:
                try:
                    if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                        break
                except OSError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    tail = Path(log_path).read_text(errors="replace")[-1000:].replace("\n", " | ")
                    raise NNGeoError(f"the app did not start within {start_timeout:.0f} s: {tail}")
                time.sleep(0.3)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
