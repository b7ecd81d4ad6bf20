"""The application shell every simulator is built on.

Each dialect module only adds its routes; this shell adds what all of them share: the
fault middleware (so a dialect never handles ``down``/``status``/``delay`` itself), a
bearer-key middleware, and the control routes a test or a script in another process
uses to read what arrived (``GET /_received``), inject faults (``POST /_control``) and
start over (``POST /_reset``). Control routes are never faulted nor authenticated.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable, Collection
from http import HTTPStatus
from typing import Any

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from pydantic import ValidationError

from .faults import Faults
from .recorder import Received

RECEIVED = web.AppKey("received", Received)
FAULTS = web.AppKey("faults", Faults)
CONTROL_PREFIX = "/_"
MAX_BODY = 64 * 1024 * 1024


def _plain(value: Any) -> Any:
    """orjson fallback: bytes (OTLP bytes attributes) become base64, as in OTLP/JSON."""
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def json_response(
    body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=orjson.dumps(body, default=_plain),
        status=status,
        headers=headers,
        content_type="application/json",
    )


def bad_request(body: Any) -> web.HTTPBadRequest:
    """A 400 with a dialect's own JSON error body, to raise from deep in a handler."""
    return web.HTTPBadRequest(text=orjson.dumps(body).decode(), content_type="application/json")


async def read_json(request: web.Request) -> Any:
    """The parsed body; raises ``ValueError`` (orjson's error) when it is not JSON."""
    return orjson.loads(await request.read())


def bearer(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


def is_control(request: web.Request) -> bool:
    return request.path.startswith(CONTROL_PREFIX)


@web.middleware
async def inject_faults(request: web.Request, handler: Handler) -> web.StreamResponse:
    if is_control(request):
        return await handler(request)
    fault = request.app[FAULTS].take()
    if fault is None:
        return await handler(request)
    if fault.delay:
        await asyncio.sleep(fault.delay)
    if fault.down:
        # Closing the socket and cancelling the handler makes aiohttp write nothing at
        # all: the client sees the connection drop, as with a crashed server.
        request.protocol.force_close()
        raise asyncio.CancelledError
    if fault.status is None:
        return await handler(request)
    headers = {}
    if fault.retry_after is not None:
        headers["Retry-After"] = f"{fault.retry_after:g}"
    return json_response({"message": HTTPStatus(fault.status).phrase}, fault.status, headers)


def bearer_auth(
    keys: Collection[str], deny: Callable[[str | None], web.StreamResponse]
) -> Middleware:
    """Require ``Authorization: Bearer <one of keys>``; no keys means an open server."""

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        token = bearer(request)
        if keys and not is_control(request) and token not in keys:
            return deny(token)
        return await handler(request)

    return check


async def _received(request: web.Request) -> web.Response:
    with_records = request.query.get("records", "1") not in ("0", "false")
    body = request.app[RECEIVED].snapshot(with_records=with_records)
    body["faults"] = request.app[FAULTS].state()
    return json_response(body)


async def _control(request: web.Request) -> web.Response:
    faults = request.app[FAULTS]
    try:
        settings = await read_json(request)
        faults.set(**settings)
    except (ValueError, TypeError) as error:
        detail = error.errors(include_url=False) if isinstance(error, ValidationError) else str(error)
        return json_response({"error": detail}, 400)
    return json_response(faults.state())


async def _reset(request: web.Request) -> web.Response:
    request.app[RECEIVED].clear()
    request.app[FAULTS].reset()
    return json_response({"ok": True})


def new_app(
    received: Received, faults: Faults, *, middlewares: Collection[Middleware] = ()
) -> web.Application:
    app = web.Application(middlewares=[inject_faults, *middlewares], client_max_size=MAX_BODY)
    app[RECEIVED] = received
    app[FAULTS] = faults
    app.router.add_get("/_received", _received)
    app.router.add_post("/_control", _control)
    app.router.add_post("/_reset", _reset)
    return app
