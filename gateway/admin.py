"""Admin endpoints: `GET /_rosetta/status` (JSON) and `GET /_rosetta/tap` (NDJSON stream).

With `admin_token` set they need ``Authorization: Bearer <token>``; without it they
answer only callers on the loopback interface, since a tap shows prompt contents.
Each process serves its own tap: with several workers a tap sees the events of the
worker it is connected to.
"""
import asyncio
import hmac
import ipaddress
import logging
import time

import orjson
from aiohttp import web

from . import metrics
from .auth import bearer
from .ingress.state import STATE

log = logging.getLogger("rosetta.admin")
TAPS = web.AppKey("rosetta_taps", set)
TAP_QUEUE = 1000


class Tap:
    """One listener's bounded queue; when it falls behind, events are dropped and counted."""

    def __init__(self, tenant: str | None, backend: str | None):
        self.tenant = tenant
        self.backend = backend
        self.queue: asyncio.Queue = asyncio.Queue(TAP_QUEUE)
        self.dropped = 0

    def offer(self, line: dict | None) -> None:
        try:
            self.queue.put_nowait(line)
        except asyncio.QueueFull:
            self.dropped += 1


class TapHub:
    """Fans ingress (Pipeline.listeners) and delivery (Forwarder.listeners) out to taps."""

    def __init__(self, pipeline):
        self.pipeline = pipeline
        self.taps: set[Tap] = set()

    def on_submit(self, tenant, events: list[dict], new: list[bool]) -> None:
        if not self.taps:
            return
        at = time.time()
        for event, fresh in zip(events, new):
            backends = self.pipeline.routes(tenant, event)
            for tap in self.taps:
                if (tap.tenant in (None, tenant.name)) and (tap.backend is None or tap.backend in backends):
                    tap.offer({"type": "accepted" if fresh else "duplicate", "at": at, "tenant": tenant.name,
                               "backends": backends, "event": event})

    def on_delivery(self, backend: str, events: list[dict], outcomes: list) -> None:
        if not self.taps:
            return
        at = time.time()
        for event, outcome in zip(events, outcomes):
            for tap in self.taps:
                if (tap.tenant in (None, event.get("tenant"))) and tap.backend in (None, backend):
                    tap.offer({"type": "delivery", "at": at, "backend": backend, "tenant": event.get("tenant"),
                               "id": event.get("id"), "run_id": event.get("run_id"), "phase": event.get("phase"),
                               "verdict": outcome.verdict, "reason": outcome.reason})

    def close(self) -> None:
        for tap in self.taps:
            tap.offer(None)


def _allowed(request: web.Request) -> bool:
    token = request.app[STATE].config.admin_token
    if token:
        given = bearer(request.headers.get("Authorization")) or ""
        return hmac.compare_digest(given.encode(), token.encode())
    try:
        return ipaddress.ip_address(request.remote or "").is_loopback
    except ValueError:
        return False


def guarded(handler):
    async def run(request: web.Request) -> web.StreamResponse:
        if not _allowed(request):
            return web.json_response({"error": "admin endpoint: bad or missing admin token"}, status=401)
        return await handler(request)
    return run


async def status(request: web.Request) -> web.Response:
    state = request.app[STATE]
    forwarders = request.app[FORWARDERS]
    snapshot = await metrics.queue_snapshot(state.store, [b.name for b in state.config.backends])
    backends = []
    for backend in state.config.backends:
        row = {"name": backend.name, "dialect": backend.dialect, **snapshot[backend.name]}
        forwarder = forwarders.get(backend.name)
        if forwarder is not None:
            stats = forwarder.stats
            row.update(circuit=forwarder.breaker.state, consecutive_failures=forwarder.breaker.failures,
                       delivered=stats.delivered, retried=stats.retried, failed_attempts=stats.failed_attempts,
                       dead_lettered=stats.dead_lettered, last_error=state.extras["redact"](stats.last_error))
        backends.append(row)
    counters = state.pipeline.counters
    store_ok = await state.store.ping()
    return web.json_response({"ready": not state.extras.get("draining", False),
                              "store": "ok" if store_ok else "unreachable", "accepted": counters.accepted, "duplicates": counters.duplicates,
                              "backends": backends}, dumps=lambda o: orjson.dumps(o).decode())


async def tap(request: web.Request) -> web.StreamResponse:
    hub: TapHub = request.app[TAP_HUB]
    subscriber = Tap(request.query.get("tenant") or None, request.query.get("backend") or None)
    hub.taps.add(subscriber)
    try:
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson", "Cache-Control": "no-cache"})
        await response.prepare(request)
        await response.write(orjson.dumps({"type": "hello", "tenant": subscriber.tenant,
                                           "backend": subscriber.backend}) + b"\n")
        while (line := await subscriber.queue.get()) is not None:
            if subscriber.dropped:
                line = {**line, "dropped_before": subscriber.dropped}
                subscriber.dropped = 0
            await response.write(orjson.dumps(line, default=str) + b"\n")
        return response
    finally:
        hub.taps.discard(subscriber)


FORWARDERS = web.AppKey("rosetta_forwarders", dict)
DELIVERY_LISTENERS = web.AppKey("rosetta_delivery_listeners", list)  # shared by every forwarder
TAP_HUB = web.AppKey("rosetta_tap_hub", TapHub)


def routes() -> list[web.RouteDef]:
    return [web.get("/_rosetta/status", guarded(status)), web.get("/_rosetta/tap", guarded(tap))]
