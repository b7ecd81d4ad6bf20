"""Voker: events, plus the fingerprints, people, agents and agent versions the SDK
creates and reads back. Those entities live in the store, per tenant."""
import uuid

from aiohttp import web

from mappings import times, voker
from mappings.errors import MappingError

from ..auth import bearer
from .common import HttpError, handler, json_response, read_json, submit
from .state import STATE


def _error(message: str) -> dict:
    field, _, problem = message.partition(": ")
    return voker.error_body(problem or message, field if problem else "")


async def _tenant(request: web.Request):
    tenant = request.app[STATE].auth.tenant("voker", bearer(request.headers.get("Authorization")))
    if tenant is None:
        raise HttpError(401, "Invalid API key", body={"detail": "Invalid API key"})
    return tenant


def _not_found(kind: str) -> web.Response:
    return json_response(404, voker.not_found(kind))


def _field(payload, key: str, required: bool = True):
    value = payload.get(key) if isinstance(payload, dict) else None
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise MappingError(key, "required: a non-empty string")
    return value


@handler(_error, invalid_status=422, backpressure_status=503)
async def fingerprint(request: web.Request) -> web.Response:
    tenant = await _tenant(request)
    payload = await read_json(request)
    for key in ("language", "language_version", "system"):
        _field(payload, key)
    fingerprint_id = str(uuid.uuid4())
    await request.app[STATE].store.entity_put("voker-fingerprint", f"{tenant.name}:{fingerprint_id}",
                                              {"created_at": times.now_iso()})
    return json_response(200, {"fingerprint_id": fingerprint_id})


@handler(_error, invalid_status=422, backpressure_status=503)
async def event(request: web.Request) -> web.Response:
    tenant = await _tenant(request)
    store = request.app[STATE].store
    payload = await read_json(request, tenant)
    if isinstance(payload, dict) and payload.get("session") == "":
        return json_response(422, voker.SESSION_EMPTY)
    parsed = voker.parse_event(payload)
    if await store.entity_get("voker-fingerprint", f"{tenant.name}:{payload['fingerprint_id']}") is None:
        return _not_found("fingerprint")
    item = parsed.items[0]
    if item["user_id"]:
        person = await store.entity_get("voker-person", f"{tenant.name}:{item['user_id']}")
        if person and person.get("properties"):
            item["user_props"] = person["properties"]
    await submit(request, tenant, parsed)
    return json_response(200, voker.answer_event(item["run_id"]))


async def _put_person(request, tenant, person_id: str, properties) -> web.Response:
    if properties is not None and not isinstance(properties, dict):
        raise MappingError("properties", "expected an object")
    store = request.app[STATE].store
    key = f"{tenant.name}:{person_id}"
    person = await store.entity_get("voker-person", key) or {"person_id": person_id, "created_at": times.now_iso()}
    person["properties"] = properties
    await store.entity_put("voker-person", key, person)
    return json_response(200, person)


@handler(_error, invalid_status=422)
async def create_person(request: web.Request) -> web.Response:
    tenant = await _tenant(request)
    payload = await read_json(request)
    return await _put_person(request, tenant, _field(payload, "person_id"), payload.get("properties"))


@handler(_error, invalid_status=422)
async def person(request: web.Request) -> web.Response:
    tenant = await _tenant(request)
    person_id = request.match_info["person_id"]
    found = await request.app[STATE].store.entity_get("voker-person", f"{tenant.name}:{person_id}")
    if found is None:
        return _not_found("person")
    if request.method == "GET":
        return json_response(200, found)
    payload = await read_json(request)
    if not isinstance(payload, dict) or "properties" not in payload:
        raise MappingError("properties", "required: an object")
    return await _put_person(request, tenant, person_id, payload["properties"])


async def _numbered(request, kind: str, key: str, scope: str, body: dict) -> dict:
    """The entity at ``key``, or a new one numbered after the others in ``scope``."""
    store = request.app[STATE].store
    existing = await store.entity_get(kind, key)
    if existing is not None:
        existing["description"] = body.get("description", existing.get("description"))
        await store.entity_put(kind, key, existing)
        return existing
    number = await store.hit(f"{kind}-number:{scope}", 1, 10**9)
    return {**body, "created_at": times.now_iso(), "deprecated_at": None, "number": number}


@handler(_error, invalid_status=422)
async def create_agent(request: web.Request) -> web.Response:
    tenant = await _tenant(request)
    payload = await read_json(request)
    name = _field(payload, "agent_name")
    key = f"{tenant.name}:{name}"
    agent = await _numbered(request, "voker-agent", key, tenant.name,
                            {"agent_name": name, "description": payload.get("description")})
    agent["agent_number"] = agent.pop("number", agent.get("agent_number"))
    await request.app[STATE].store.entity_put("voker-agent", key, agent)
    return json_response(200, agent)


@handler(_error, invalid_status=422)
async def agent(request: web.Request) -> web.Response:
    tenant = await _tenant(request)
    found = await request.app[STATE].store.entity_get("voker-agent", f"{tenant.name}:{request.match_info['agent']}")
    return json_response(200, found) if found else _not_found("agent")


@handler(_error, invalid_status=422)
async def create_version(request: web.Request) -> web.Response:
    tenant = await _tenant(request)
    store = request.app[STATE].store
    agent_name = request.match_info["agent"]
    if await store.entity_get("voker-agent", f"{tenant.name}:{agent_name}") is None:
        return _not_found("agent")
    payload = await read_json(request)
    name = _field(payload, "agent_version_name")
    key = f"{tenant.name}:{agent_name}/{name}"
    version = await _numbered(request, "voker-version", key, f"{tenant.name}:{agent_name}",
                              {"agent_version_name": name, "description": payload.get("description")})
    version["agent_version_number"] = version.pop("number", version.get("agent_version_number"))
    await store.entity_put("voker-version", key, version)
    return json_response(200, version)


@handler(_error, invalid_status=422)
async def version(request: web.Request) -> web.Response:
    tenant = await _tenant(request)
    store = request.app[STATE].store
    agent_name = request.match_info["agent"]
    if await store.entity_get("voker-agent", f"{tenant.name}:{agent_name}") is None:
        return _not_found("agent")
    found = await store.entity_get("voker-version", f"{tenant.name}:{agent_name}/{request.match_info['version']}")
    return json_response(200, found) if found else _not_found("agent-version")


def routes() -> list[web.RouteDef]:
    return [
        web.put("/api/v1/fingerprints", fingerprint),
        web.post("/api/v1/events", event),
        web.put("/api/v1/people", create_person),
        web.get("/api/v1/people/{person_id}", person),
        web.put("/api/v1/people/{person_id}", person),
        web.put("/api/v1/agents", create_agent),
        web.get("/api/v1/agents/{agent}", agent),
        web.put("/api/v1/agents/{agent}/agent-versions", create_version),
        web.get("/api/v1/agents/{agent}/agent-versions/{version}", version),
    ]
