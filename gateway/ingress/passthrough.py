"""Passthrough: a dialect's non-ingest routes (Lunary template and dataset fetches,
HoneyHive reads…) are proxied to the tenant's backend of that dialect, with the
backend's credentials, bodies streamed both ways. With no such backend the client
gets a clear 501 in the dialect's shape. The client's own credential is never sent on.
"""
import logging

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from mappings import honeyhive, lunary, voker

from ..auth import bearer
from .common import json_response
from .state import STATE

_HOP = {"host", "authorization", "x-api-key", "connection", "keep-alive", "transfer-encoding", "te",
        "trailer", "upgrade", "proxy-authorization", "content-length"}
log = logging.getLogger("rosetta.passthrough")
SESSION = web.AppKey("rosetta_proxy_session", aiohttp.ClientSession)


def _backend_for(state, tenant, dialect: str):
    names = list(tenant.backends) + [r.backend for r in tenant.routes]
    for name in names:
        backend = state.config.backend(name)
        if backend.dialect == dialect:
            return backend
    return None


def _proxy(dialect: str, error_body, credential):
    async def handle(request: web.Request) -> web.StreamResponse:
        state = request.app[STATE]
        tenant = state.auth.tenant(dialect, credential(request))
        if tenant is None:
            return json_response(401, error_body("Invalid API key"))
        backend = _backend_for(state, tenant, dialect)
        if backend is None:
            return json_response(501, error_body(
                f"{request.method} {request.path}: not an ingest route, and tenant {tenant.name!r} "
                f"has no {dialect} backend to pass it to"))
        headers = CIMultiDict((k, v) for k, v in request.headers.items() if k.lower() not in _HOP)
        secret = backend.secret()
        if secret:
            headers["Authorization"] = f"Bearer {secret}"
        url = backend.url.rstrip("/") + request.rel_url.path_qs
        body = request.content if request.body_exists else None
        # per read, not total: a large body may take longer than `timeout` to stream
        timeout = aiohttp.ClientTimeout(total=None, connect=backend.timeout, sock_read=backend.timeout)
        response = None
        try:
            async with request.app[SESSION].request(request.method, url, headers=headers, data=body,
                                                    timeout=timeout, allow_redirects=False) as upstream:
                # bodies pass through as they are (auto_decompress=False), Content-Encoding with them
                response = web.StreamResponse(status=upstream.status, reason=upstream.reason, headers=CIMultiDict(
                    (k, v) for k, v in upstream.headers.items() if k.lower() not in _HOP))
                await response.prepare(request)
                async for chunk in upstream.content.iter_chunked(64 * 1024):
                    await response.write(chunk)
                await response.write_eof()
                return response
        except (aiohttp.ClientError, TimeoutError) as exc:
            if response is not None and response.prepared:
                # the status is sent: drop the connection so the client sees a cut body, not a short one
                log.warning("passthrough %s %s: backend %s failed mid-answer: %s", request.method, request.path,
                            backend.name, type(exc).__name__)
                if request.transport is not None:
                    request.transport.close()
                return response
            return json_response(502, error_body(f"backend {backend.name!r} unreachable: {type(exc).__name__}"))

    return handle


def _lunary_key(request):
    return bearer(request.headers.get("Authorization")) or request.headers.get("X-API-Key")


def _bearer(request):
    return bearer(request.headers.get("Authorization"))


def routes() -> list[web.RouteDef]:
    """Catch-alls, registered after every ingest route so those take precedence."""
    return [
        web.route("*", "/v1/{tail:.*}", _proxy("lunary", lunary.error_body, _lunary_key)),
        web.route("*", "/api/v1/{tail:.*}", _proxy("voker", lambda m: voker.error_body(m), _bearer)),
        web.route("*", "/{tail:(session|events|datasets|datapoints|projects|configurations|metrics|tools|runs)(/.*)?}",
                  _proxy("honeyhive", honeyhive.error_body, _bearer)),
    ]


async def session_ctx(app: web.Application):
    app[SESSION] = aiohttp.ClientSession(auto_decompress=False)
    yield
    await app[SESSION].close()
