"""Fixtures for integration tests: worker processes (stopped at teardown, their logs printed when
a test fails) and a throwaway redis-server on a free loopback port."""

from __future__ import annotations

import subprocess

import pytest
from worker_helpers import REDIS_SERVER, Workers, wait_until

from nngeo_core.dashboard.server import free_port


@pytest.fixture
def workers(tmp_path):
    pool = Workers(tmp_path)
    yield pool
    pool.stop_all()
    pool.dump()  # shown by pytest only when the test failed


@pytest.fixture
def redis_url(tmp_path):
    """A private redis-server on a free loopback port, without persistence."""
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed (Debian package: redis-server)")
    import redis

    port = free_port()
    proc = subprocess.Popen(
        [
            REDIS_SERVER,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"

    def up():
        assert proc.poll() is None, "redis-server exited"
        try:
            return redis.Redis.from_url(url).ping()
        except redis.ConnectionError:
            return False

    wait_until(up, 20, "redis-server")
    yield url
    proc.terminate()
    proc.wait(10)
