"""One Redis connection that many tasks send commands through, each batch written at
once and its answers handed back in order (Redis answers in the order it was sent).

The accept of every request takes this path. Through redis-py's pooled pipeline
(a connection taken from the pool and given back, the pipeline built, an answer callback
per command) an accept cost the gateway about 340 µs of CPU, against about 270 µs here;
at half load, where accepts rarely share a round trip, redis-py was a sixth of the
gateway's time. Here a round trip costs writing the packed commands and parsing the
answers (hiredis).
"""
import asyncio
from collections import deque

from redis.asyncio import Redis
from redis.exceptions import ResponseError


def _pack(command: tuple) -> bytes:
    """A command in RESP, the protocol's array of bulk strings, in one join."""
    parts = [b"*%d\r\n" % len(command)]
    for arg in command:
        if not isinstance(arg, bytes):
            arg = str(arg).encode()
        parts += (b"$%d\r\n" % len(arg), arg, b"\r\n")
    return b"".join(parts)


def settle(future: asyncio.Future, answer) -> None:
    """Hand a caller its answer, or raise in it the error that the answer is; a caller
    that gave up (a cancelled future) is skipped."""
    if future.done():
        return
    if isinstance(answer, BaseException):
        future.set_exception(answer)
    else:
        future.set_result(answer)


class _Link:
    """A connection taken from the pool, the callers awaiting its answers, and its reader."""

    def __init__(self, connection):
        self.connection = connection
        self.waiting: deque[asyncio.Future] = deque()
        self.sending = asyncio.Lock()
        self.reader: asyncio.Task | None = None
        self.error: BaseException | None = None


class Channel:
    def __init__(self, redis: Redis):
        self._pool = redis.connection_pool
        self._link: _Link | None = None
        self._connecting = asyncio.Lock()
        self._closing: set[asyncio.Task] = set()

    async def execute(self, commands: list[tuple]) -> list:
        """Each command's answer, or the error it met: its ResponseError, or the
        connection's failure for every command whose answer did not arrive."""
        link = await self._connected()
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in commands]
        async with link.sending:  # the order of `waiting` is the order on the wire
            if link.error is not None:
                raise link.error
            link.waiting.extend(futures)
            try:
                await link.connection.send_packed_command(b"".join(map(_pack, commands)), check_health=False)
            except Exception as exc:
                self._break(link, exc)
        return await asyncio.gather(*futures, return_exceptions=True)

    async def _connected(self) -> _Link:
        link = self._link
        if link is not None:
            return link
        async with self._connecting:
            if self._link is None:
                connection = await self._pool.get_connection()
                link = _Link(connection)
                link.reader = asyncio.create_task(self._read(link), name="redis-channel-reader")
                self._link = link
            return self._link

    async def _read(self, link: _Link) -> None:
        try:
            while True:
                try:
                    answer = await link.connection.read_response()
                except ResponseError as exc:
                    answer = exc
                if not link.waiting:
                    raise ConnectionError(f"Redis sent an answer nobody asked for: {answer!r:.100}")
                settle(link.waiting.popleft(), answer)
        except asyncio.CancelledError:
            self._break(link, ConnectionError("Redis channel closed"))
            raise
        except Exception as exc:
            self._break(link, exc)

    def _break(self, link: _Link, exc: BaseException) -> None:
        """Fail every caller still waiting on this link and give its connection back; the
        next call connects afresh."""
        if link.error is not None:
            return
        link.error = exc
        if self._link is link:
            self._link = None
        while link.waiting:
            future = link.waiting.popleft()
            if not future.done():
                future.set_exception(exc)
        task = asyncio.ensure_future(self._release(link))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _release(self, link: _Link) -> None:
        link.reader.cancel()  # a reader that broke the link has finished already
        await link.connection.disconnect(nowait=True)
        await self._pool.release(link.connection)

    async def close(self) -> None:
        link = self._link
        if link is not None:
            self._break(link, ConnectionError("Redis channel closed"))
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
