"""Lunary ``/v1/runs/ingest`` and the LLMonitor v0 ``/api/report`` route the Lunary server still serves."""
from aiohttp import web

from mappings import llmonitor, lunary
from mappings.errors import MappingError

from ..auth import bearer
from .common import HttpError, handler, json_response, read_json, submit
from .state import STATE


def _lunary_key(request: web.Request) -> str | None:
    return bearer(request.headers.get("Authorization")) or request.headers.get("X-API-Key")


@handler(lunary.error_body)
async def ingest(request: web.Request) -> web.Response:
    state = request.app[STATE]
    key = _lunary_key(request)
    if key is None and not state.auth.open:
        raise HttpError(402, "Incorrect project id format")
    tenant = state.auth.tenant("lunary", key)
    if tenant is None:
        raise HttpError(401, "Invalid API key")
    payload = await read_json(request, tenant)
    try:
        parsed = lunary.parse_ingest(payload)
    except MappingError as exc:
        raise HttpError(400, exc.problem) from None
    status, body = lunary.answer_ingest(parsed, await submit(request, tenant, parsed))
    return json_response(status, body)


@handler(llmonitor.error_body)
async def report(request: web.Request) -> web.Response:
    state = request.app[STATE]
    payload = await read_json(request)
    try:
        parsed = llmonitor.parse_report(payload)
    except MappingError as exc:
        raise HttpError(400, exc.problem) from None
    key = _lunary_key(request)
    if key is not None:
        tenant = state.auth.tenant("lunary", key)
        if tenant is None:
            raise HttpError(401, "Invalid API key")
    else:
        if not parsed.credential and not state.auth.open:
            raise HttpError(402, "Incorrect project id format")
        tenant = state.auth.tenant("llmonitor", parsed.credential)
        if tenant is None:
            raise HttpError(401, "This project does not exist")
    status, body = llmonitor.answer_report(parsed, await submit(request, tenant, parsed))
    return json_response(status, body)


def routes() -> list[web.RouteDef]:
    return [web.post("/v1/runs/ingest", ingest), web.post("/api/report", report)]
