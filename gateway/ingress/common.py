"""What every ingress handler shares: bounded body reading, errors in the dialect's
shape, and handing parsed events to the pipeline.

Permanent client errors (bad JSON, wrong types, unknown credential) are answered 4xx
and never retried by a well-behaved SDK; a full queue is transient: 429 or 503 with
Retry-After. That mapping lives here and nowhere else.
"""
import asyncio
import logging
import zlib
from dataclasses import dataclass
from typing import Any, Callable

import orjson
from aiohttp import web

from mappings.errors import MappingError, check_depth
from mappings.ingest import Parsed

from ..store import Backpressure
from .state import STATE

log = logging.getLogger("rosetta.ingress")
JSON_TYPES = ("application/json", "text/json")
BODY_BYTES = web.RequestKey("rosetta_body_bytes", int)  # the body as read, decompressed
SUMMARY = web.RequestKey("rosetta_submit", dict)  # what ingress made of the events, for the request metrics and log


@dataclass
class HttpError(Exception):
    status: int
    message: str
    headers: dict | None = None
    body: Any = None  # the answer, where the dialect's shape for this error is not its usual one


def json_response(status: int, body: Any, headers: dict | None = None) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json", headers=headers)


def _inflate(data: bytes, encoding: str, limit: int) -> bytes:
    wbits = 16 + zlib.MAX_WBITS if encoding in ("gzip", "x-gzip") else zlib.MAX_WBITS
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise HttpError(400, f"body: invalid {encoding} data ({exc})") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise HttpError(413, f"body: decompressed size exceeds {limit} bytes")
    return out


async def read_body(request: web.Request, tenant=None) -> bytes:
    """The body, bounded in size and time. Given the tenant its events are for, a full
    queue refuses the request before a byte of it is read."""
    state = request.app[STATE]
    if tenant is not None:
        state.pipeline.admit(tenant)
    limits = state.config.limits
    if request.content_length is not None and request.content_length > limits.max_body_bytes:
        raise HttpError(413, f"body: {request.content_length} bytes exceeds the limit of {limits.max_body_bytes}")
    try:
        if request.content.is_eof():  # all of it arrived with the headers: nothing to wait for
            data = await request.read()
        else:
            async with asyncio.timeout(limits.body_timeout):
                data = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise HttpError(413, f"body: exceeds the limit of {limits.max_body_bytes} bytes") from None
    except TimeoutError:
        raise HttpError(408, f"body: not received within {limits.body_timeout:g} s",
                        {"Connection": "close"}) from None
    encoding = request.headers.get("Content-Encoding", "identity").lower()
    if encoding in ("gzip", "x-gzip", "deflate"):
        data = _inflate(data, encoding, limits.max_decompressed_bytes)
    elif encoding not in ("identity", ""):
        raise HttpError(415, f"Content-Encoding: {encoding!r} is not supported (gzip, deflate)")
    request[BODY_BYTES] = len(data)
    return data


def _is_json(header: str) -> bool:
    if header == "application/json":  # what nearly every SDK sends: no parsing
        return True
    ctype = header.partition(";")[0].strip().lower()
    return ctype in JSON_TYPES or ctype.endswith("+json")


async def read_json(request: web.Request, tenant=None) -> Any:
    header = request.headers.get("Content-Type")
    if header and not _is_json(header):
        raise HttpError(415, f"Content-Type: expected application/json, got {request.content_type!r}")
    data = await read_body(request, tenant)
    try:
        payload = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise HttpError(400, f"body: invalid JSON ({exc})") from None
    try:
        check_depth(payload)
    except MappingError as exc:
        raise HttpError(400, f"body: {exc}") from None
    return payload


def handler(error_body: Callable[[str], Any], invalid_status: int = 400, backpressure_status: int = 429):
    """Wrap a dialect handler so every failure is answered in that dialect's error shape."""

    def wrap(fn):
        async def run(request: web.Request) -> web.StreamResponse:
            try:
                return await fn(request)
            except HttpError as exc:
                body = error_body(exc.message) if exc.body is None else exc.body
                return json_response(exc.status, body, exc.headers)
            except MappingError as exc:
                return json_response(invalid_status, error_body(str(exc)))
            except Backpressure as exc:
                return json_response(backpressure_status, error_body(str(exc)),
                                     {"Retry-After": str(exc.retry_after)})
        run.__name__ = fn.__name__
        return run

    return wrap


async def _rate_limit(request: web.Request, tenant, events: int) -> None:
    """Per-tenant requests/s and events/s, counted in the store (so shared across replicas)."""
    limit = tenant.rate_limit
    if limit is None:
        return
    store = request.app[STATE].store
    for key, amount, allowed in ((f"req:{tenant.name}", 1, limit.requests_per_second),
                                 (f"evt:{tenant.name}", events, limit.events_per_second)):
        if allowed is not None and await store.hit(key, amount, 1.0) > allowed:
            raise HttpError(429, f"rate limit exceeded for tenant {tenant.name!r}", {"Retry-After": "1"})


async def submit(request: web.Request, tenant, parsed: Parsed) -> list[str | None]:
    """Queue the parsed events; per item, None when accepted (new or duplicate) or its error."""
    errors = [str(i) if isinstance(i, MappingError) else None for i in parsed.items]
    events = parsed.events
    request[SUMMARY] = {"tenant": tenant.name, "dialect": events[0]["source"] if events else None,
                        "events": len(errors), "rejected": sum(e is not None for e in errors)}
    await _rate_limit(request, tenant, len(events))
    await request.app[STATE].pipeline.submit(tenant, events, request.get(BODY_BYTES, 0))
    return errors


def require_all(parsed: Parsed) -> None:
    """Dialects without per-event results fail the whole request on one bad event."""
    for item in parsed.items:
        if isinstance(item, MappingError):
            raise item
