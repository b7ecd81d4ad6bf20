"""HoneyHive JSON endpoints: sessions, events, batches, updates. Every answer is exactly 200 JSON."""
from aiohttp import web

from mappings import honeyhive
from mappings.ids import derived_uuid

from ..auth import bearer
from .common import HttpError, handler, json_response, read_json, require_all, submit
from .state import STATE

SESSION = "hh-session"


async def _tenant(request: web.Request):
    tenant = request.app[STATE].auth.tenant("honeyhive", bearer(request.headers.get("Authorization")))
    if tenant is None:
        raise HttpError(401, "Invalid API key")
    return tenant


def _account_ids(tenant) -> dict:
    """The org/workspace/project ids the honeyhive client insists on, stable per tenant."""
    return {name: derived_uuid("honeyhive", name, tenant.name) for name in ("org_id", "workspace_id", "project_id")}


@handler(honeyhive.error_body)
async def session_start(request: web.Request) -> web.Response:
    tenant = await _tenant(request)
    parsed = honeyhive.parse_session_start(await read_json(request, tenant))
    await submit(request, tenant, parsed)
    session = parsed.items[0]
    await request.app[STATE].store.entity_put(SESSION, f"{tenant.name}:{session['run_id']}", {"name": session["name"]})
    return json_response(200, honeyhive.answer_session(parsed, _account_ids(tenant)))


@handler(honeyhive.error_body)
async def create_event(request: web.Request) -> web.Response:
    tenant = await _tenant(request)
    parsed = honeyhive.parse_event(await read_json(request, tenant))
    await submit(request, tenant, parsed)
    return json_response(200, {"success": True, "event_id": parsed.ids[0]})


@handler(honeyhive.error_body)
async def session_event(request: web.Request) -> web.Response:
    tenant = await _tenant(request)
    parsed = honeyhive.parse_session_event(await read_json(request, tenant), request.match_info["session_id"])
    await submit(request, tenant, parsed)
    return json_response(200, {"success": True, "event_id": parsed.ids[0]})


@handler(honeyhive.error_body)
async def batch(request: web.Request) -> web.Response:
    tenant = await _tenant(request)
    parsed = honeyhive.parse_batch(await read_json(request, tenant))
    require_all(parsed)
    session = parsed.context.get("session")
    if session is not None:
        parsed.items.insert(0, session)
        parsed.ids.insert(0, session["run_id"])
    await submit(request, tenant, parsed)
    ids = parsed.ids[1:] if session is not None else parsed.ids
    body = {"event_ids": ids, "success": True}
    if session is not None:
        body["session_id"] = session["run_id"]
    return json_response(200, body)


@handler(honeyhive.error_body)
async def update(request: web.Request) -> web.Response:
    tenant = await _tenant(request)
    payload = await read_json(request, tenant)
    event_id = payload.get("event_id") if isinstance(payload, dict) else None
    known = isinstance(event_id, str) and await request.app[STATE].store.entity_get(SESSION, f"{tenant.name}:{event_id}")
    parsed = honeyhive.parse_update(payload, kind="session" if known else "chain")
    await submit(request, tenant, parsed)
    return json_response(200, {"success": True})


def routes() -> list[web.RouteDef]:
    return [
        web.post("/session/start", session_start),
        web.post("/events", create_event),
        web.put("/events", update),
        web.post("/events/batch", batch),
        web.post("/session/{session_id}/event", session_event),
    ]
