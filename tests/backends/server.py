"""Run any simulator in-process, with a stop/start that keeps its port.

``run_backend("lunary")`` yields a ``Backend`` whose ``url`` a forwarder is pointed at;
``stop()`` makes the vendor vanish (listening socket closed, open connections cut, as in
a crash) and ``start()`` brings it back on the same port, so a test can check that a
forwarder retries through an outage and loses nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Collection
from contextlib import asynccontextmanager

from aiohttp import web

from . import honeyhive, llmonitor, lunary, otlp, voker
from .faults import Faults
from .recorder import Received

DEFAULT_KEY = "test-key"
HOST = "127.0.0.1"
# A client that gave up on a delayed answer must not hold the test's teardown.
SHUTDOWN_TIMEOUT = 0.5

MakeApp = Callable[..., web.Application]
SIMULATORS: dict[str, MakeApp] = {
    "lunary": lunary.make_app,
    "llmonitor": llmonitor.make_app,
    "honeyhive": honeyhive.make_app,
    "voker": voker.make_app,
    "otlp": otlp.make_app,
}

Keys = str | Collection[str] | None


def build_app(dialect: str, received: Received, faults: Faults, key: Keys) -> web.Application:
    """The simulator of ``dialect``; ``key`` is one key, several, or None for an open server."""
    if dialect not in SIMULATORS:
        raise ValueError(f"unknown dialect {dialect!r}; known: {', '.join(SIMULATORS)}")
    keys = frozenset([key] if isinstance(key, str) else key or ())
    return SIMULATORS[dialect](received, faults, keys=keys)


class Backend:
    """One running simulator: where it listens, what it received, which faults it injects."""

    def __init__(
        self,
        dialect: str,
        *,
        key: Keys = DEFAULT_KEY,
        port: int = 0,
        faults: Faults | None = None,
        received: Received | None = None,
    ) -> None:
        self.dialect = dialect
        self.received = received or Received()
        self.faults = faults or Faults()
        self.port = port
        self._runner = web.AppRunner(
            build_app(dialect, self.received, self.faults, key),
            access_log=None,
            handler_cancellation=True,
            shutdown_timeout=SHUTDOWN_TIMEOUT,
        )
        self._site: web.TCPSite | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def running(self) -> bool:
        return self._site is not None

    async def start(self) -> None:
        """Listen (again) on the same port; the first start picks a free one if port was 0."""
        if self._site is not None:
            return
        if self._runner.server is None:
            await self._runner.setup()
        self._site = web.TCPSite(self._runner, HOST, self.port, reuse_address=True)
        await self._site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        """Stop listening and cut every open connection, in-flight requests included."""
        if self._site is None:
            return
        await self._site.stop()
        self._site = None
        assert self._runner.server is not None
        for connection in list(self._runner.server.connections):
            connection.force_close()

    async def close(self) -> None:
        self._site = None
        await self._runner.cleanup()


@asynccontextmanager
async def run_backend(
    dialect: str,
    *,
    key: Keys = DEFAULT_KEY,
    port: int = 0,
    faults: Faults | None = None,
    received: Received | None = None,
) -> AsyncIterator[Backend]:
    backend = Backend(dialect, key=key, port=port, faults=faults, received=received)
    await backend.start()
    try:
        yield backend
    finally:
        await backend.close()
