"""Sends a dialect's `Request`s over HTTP and reads each answer into per-event outcomes.

One aiohttp ClientSession per process (shared by every forwarder). Connection
errors, timeouts, 408/425/429 and 5xx are transient; other 4xx are permanent; a 2xx
body is read by the dialect's own reader (Lunary's per-event results, for one).
"""
import asyncio
import platform
import sys

import aiohttp
import orjson

from mappings.egress import OK, RETRY, Outcome, Request, by_status

from ..config import Backend
from ..store import Store
from .policy import retry_after_seconds

USER_AGENT = "rosetta-gateway/0.1"


class Answer:
    __slots__ = ("outcomes", "retry_after", "status", "text", "body")

    def __init__(self, outcomes: list[Outcome], retry_after: float | None = None, status: int = 0, text: str = ""):
        self.outcomes = outcomes
        self.retry_after = retry_after
        self.status = status
        self.text = text
        self.body = None


class HttpSender:
    def __init__(self, backend: Backend, session: aiohttp.ClientSession, store: Store):
        self.backend = backend
        self.session = session
        self.store = store
        self.base = (backend.url or "").rstrip("/")
        self.headers = {"User-Agent": USER_AGENT}
        secret = backend.secret()
        if secret and backend.dialect != "llmonitor":
            self.headers["Authorization"] = f"Bearer {secret}"
        self.timeout = aiohttp.ClientTimeout(total=backend.timeout)

    async def options(self) -> dict:
        """Per-backend values the egress mapping needs (Voker's fingerprint is fetched once)."""
        options = {"app_id": self.backend.app_id, "project": self.backend.project, "encoding": self.backend.encoding}
        if self.backend.dialect == "voker":
            options["fingerprint_id"] = await self._fingerprint()
        return options

    async def _fingerprint(self) -> str:
        saved = await self.store.entity_get("egress-fingerprint", self.backend.name)
        if saved:
            return saved["fingerprint_id"]
        body = {"language": "python", "language_version": sys.version.split()[0], "system": platform.platform(),
                "voker_sdk_version": USER_AGENT}
        answer = await self.send(Request("PUT", "/api/v1/fingerprints", body, [0], None))
        if answer.outcomes[0].verdict != OK or not isinstance(answer.body, dict) or "fingerprint_id" not in answer.body:
            raise FingerprintUnavailable(answer.outcomes[0].reason or answer.text[:200])
        await self.store.entity_put("egress-fingerprint", self.backend.name, {"fingerprint_id": answer.body["fingerprint_id"]})
        return answer.body["fingerprint_id"]

    async def forget_fingerprint(self) -> None:
        await self.store.entity_put("egress-fingerprint", self.backend.name, {})

    async def send(self, request: Request) -> Answer:
        count = len(request.covers)
        headers = {**self.headers, **request.headers}
        if isinstance(request.body, (bytes, bytearray)):
            data = bytes(request.body)
        else:
            data = orjson.dumps(request.body)
            headers.setdefault("Content-Type", "application/json")
        try:
            async with self.session.request(request.method, self.base + request.path, data=data,
                                            headers=headers, timeout=self.timeout) as resp:
                raw = await resp.read()
                status = resp.status
                retry_after = retry_after_seconds(resp.headers.get("Retry-After"))
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            return Answer([Outcome(RETRY, f"{type(exc).__name__}: {exc}")] * count)
        text = raw[:2000].decode("utf-8", "replace")
        verdict = by_status(status, text)
        if verdict is not None:
            answer = Answer([verdict] * count, retry_after, status, text)
            answer.body = _json(raw)
            return answer
        body = _json(raw)
        if request.read is None:
            outcomes = [Outcome(OK)] * count
        else:
            outcomes = request.read(raw if body is _INVALID else body)
        answer = Answer(outcomes, retry_after, status, text)
        answer.body = body
        return answer


class FingerprintUnavailable(Exception):
    """Voker would not issue a fingerprint: every event must wait (transient)."""


_INVALID = object()


def _json(raw: bytes):
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _INVALID
