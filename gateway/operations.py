"""What operators and orchestrators see: probes, /metrics, request ids and request logs, admin endpoints.

`install(app)` adds all of it to an app `build_app` made: the routes, one middleware
(request id, a JSON log line and metrics per request), the metrics and tap listeners
on the pipeline and every forwarder, and a once-a-second sync of forwarder stats.
"""
import asyncio
import logging
import time

from aiohttp import web

from . import admin, logs, metrics
from .ingress.common import SUMMARY
from .ingress.state import STATE

log = logging.getLogger("rosetta.http")
delivery_log = logging.getLogger("rosetta.delivery")
PROBE_TIMEOUT = 2.0
SYNC_INTERVAL = 1.0
_QUIET_ROUTES = ("/healthz", "/readyz", "/metrics")
REQUEST_ID = web.RequestKey("rosetta_request_id", str)


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process answers. Never looks at the store (a store outage is not a reason to restart)."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Readiness: 503 while the store is unreachable or the process is shutting down."""
    state = request.app[STATE]
    if state.extras.get("draining"):
        return web.json_response({"status": "shutting down", "store": "not checked"}, status=503)
    try:
        store_ok = await asyncio.wait_for(state.store.ping(), PROBE_TIMEOUT)
    except asyncio.TimeoutError:
        store_ok = False
    body = {"status": "ok" if store_ok else "unavailable", "store": "ok" if store_ok else "unreachable"}
    return web.json_response(body, status=200 if store_ok else 503)


async def metrics_endpoint(request: web.Request) -> web.Response:
    state = request.app[STATE]
    request.app[SYNC].sync()
    snapshot = await metrics.queue_snapshot(state.store, [b.name for b in state.config.backends])
    body, content_type = metrics.exposition(metrics.get(), snapshot)
    return web.Response(body=body, headers={"Content-Type": content_type})


def _route(request: web.Request) -> str:
    info = request.match_info
    if info.http_exception is not None or info.route.resource is None:
        return "unmatched"
    return info.route.resource.canonical


@web.middleware
async def observe(request: web.Request, handler) -> web.StreamResponse:
    """Request id in and out, one log line and the request metrics for every request."""
    request[REQUEST_ID] = rid = logs.request_id(request.headers.get("X-Request-Id"))
    token = logs.REQUEST_ID.set(rid)
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        seconds = time.perf_counter() - started
        route = _route(request)
        summary = request.get(SUMMARY)
        metrics.get().observe_request(request.method, request.path, route, status, seconds, summary)
        if route not in _QUIET_ROUTES and log.isEnabledFor(logging.INFO):
            log.info("request done", extra={"event": "request_done", "method": request.method, "route": route,
                                            "path": request.path, "status": status,
                                            "duration_ms": round(seconds * 1000, 2), **(summary or {})})
        logs.REQUEST_ID.reset(token)


async def _answer_request_id(request: web.Request, response: web.StreamResponse) -> None:
    if REQUEST_ID in request:
        response.headers["X-Request-Id"] = request[REQUEST_ID]


def _circuit_opened(forwarder) -> None:
    retry = forwarder.backend.retry
    delivery_log.warning("circuit open", extra={"event": "circuit_open", "backend": forwarder.name,
                                                "failures": forwarder.breaker.failures,
                                                "cooldown_s": retry.breaker_cooldown,
                                                "last_error": forwarder.stats.last_error[:300]})


SYNC = web.AppKey("rosetta_stats_sync", metrics.StatsSync)


def install(app: web.Application) -> None:
    state = app[STATE]
    state.extras["redact"] = logs.Redactor(logs.secrets_of(state.config))
    app.middlewares.append(observe)
    app.on_response_prepare.append(_answer_request_id)
    app.add_routes([web.get("/healthz", healthz), web.get("/readyz", readyz), web.get("/metrics", metrics_endpoint),
                    *admin.routes()])
    registry = metrics.get()
    hub = admin.TapHub(state.pipeline)
    app[admin.TAP_HUB] = hub
    app[SYNC] = metrics.StatsSync(registry, app[admin.FORWARDERS], _circuit_opened)
    state.pipeline.listeners.extend([registry.observe_submit, hub.on_submit])

    async def draining(app: web.Application) -> None:
        state.extras["draining"] = True
        hub.close()

    async def running(app: web.Application):
        app[admin.DELIVERY_LISTENERS].append(hub.on_delivery)
        task = asyncio.create_task(_sync_loop(app[SYNC]), name="metrics-sync")
        yield
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        app[SYNC].sync()
        metrics.mark_process_dead()

    app.on_shutdown.append(draining)
    app.cleanup_ctx.append(running)


async def _sync_loop(sync: metrics.StatsSync) -> None:
    while True:
        await asyncio.sleep(SYNC_INTERVAL)
        sync.sync()
