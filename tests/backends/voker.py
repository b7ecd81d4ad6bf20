"""A Voker server: fingerprints, llm events, people, agents and agent versions.

Voker's API is FastAPI, so request bodies are validated here by pydantic models and a bad
one is a 422 ``{"detail": [{"type", "loc": ["body", ...], "msg", "input"}]}`` exactly as
FastAPI renders it; missing things are 404 ``{"detail": {"type": "<thing>-not-found"}}``,
the shape the SDK parses. The SDK loses every event when the fingerprint call fails and
parses every success body as JSON, so both answer JSON objects. Agents, agent versions
and people an event names are created on the fly, as the real API does.

Received, records: ``fingerprints`` (bodies), ``events`` (accepted event bodies as sent).
Objects: ``fingerprints`` (by id), ``people`` (by person_id), ``agents`` (by name),
``agent_versions`` (by "<agent>/<version>").
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler
from pydantic import BaseModel, StringConstraints, ValidationError

from .app import FAULTS, bearer_auth, json_response, new_app
from .faults import Faults
from .recorder import Received

Api = Literal[
    "openai-chat-completions",
    "openai-responses",
    "anthropic-messages",
    "anthropic-beta-messages",
    "gemini-models",
    "gemini-interactions",
]
M = TypeVar("M", bound=BaseModel)
NonEmpty = Annotated[str, StringConstraints(min_length=1)]


class FingerprintIn(BaseModel):
    language: str
    language_version: str
    system: str
    openai_sdk_version: str | None = None
    anthropic_sdk_version: str | None = None
    gemini_sdk_version: str | None = None
    voker_sdk_version: str | None = None
    all_packages: dict[str, Any] | None = None
    git_repository_url: str | None = None
    git_branch: str | None = None
    git_commit_hash: str | None = None
    git_commit_date: str | None = None


class LlmProperties(BaseModel):
    api: Api
    inputs: dict[str, Any]
    output: dict[str, Any]


class EventIn(BaseModel):
    event_name: Literal["llm"]
    fingerprint_id: uuid.UUID
    properties: LlmProperties
    session: NonEmpty | None = None
    agent: NonEmpty | None = None
    agent_version: NonEmpty | None = None
    person: NonEmpty | None = None


class PersonIn(BaseModel):
    person_id: NonEmpty
    properties: dict[str, Any] | None = None


class PersonUpdate(BaseModel):
    properties: dict[str, Any]


class AgentIn(BaseModel):
    agent_name: NonEmpty
    description: str | None = None


class AgentVersionIn(BaseModel):
    agent_version_name: NonEmpty
    description: str | None = None


class Unprocessable(Exception):
    """A body FastAPI would refuse with 422."""

    def __init__(self, detail: list[dict[str, Any]]) -> None:
        super().__init__(detail)
        self.detail = detail


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _not_found(thing: str) -> web.Response:
    return json_response({"detail": {"type": f"{thing}-not-found"}}, 404)


async def _parse(request: web.Request, model: type[M]) -> M:
    """The body as ``model``, or ``Unprocessable`` with FastAPI's rendering of the errors."""
    try:
        return model.model_validate_json(await request.read())
    except ValidationError as error:
        errors = orjson.loads(error.json(include_url=False))
        raise Unprocessable([{**e, "loc": ["body", *e["loc"]]} for e in errors]) from error


@web.middleware
async def _unprocessable(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except Unprocessable as error:
        return json_response({"detail": error.detail}, 422)


class Directory:
    """Fingerprints, people, agents and versions of one Voker server, in the recorder."""

    def __init__(self, received: Received) -> None:
        self.received = received

    def person(self, person_id: str, properties: dict[str, Any] | None) -> dict[str, Any]:
        person = self.received.get("people", person_id)
        if person is None:
            person = {"person_id": person_id, "properties": properties, "created_at": _now()}
            self.received.put("people", person_id, person)
        elif properties is not None:
            person["properties"] = properties
        return person

    def agent(self, name: str, description: str | None) -> dict[str, Any]:
        agent = self.received.get("agents", name)
        if agent is None:
            agent = {
                "agent_name": name,
                "description": description,
                "agent_number": len(self.received.objects("agents")) + 1,
                "created_at": _now(),
                "deprecated_at": None,
            }
            self.received.put("agents", name, agent)
        elif description is not None:
            agent["description"] = description
        return agent

    def version(self, agent: str, name: str, description: str | None) -> dict[str, Any]:
        key = f"{agent}/{name}"
        version = self.received.get("agent_versions", key)
        if version is None:
            number = sum(k.startswith(f"{agent}/") for k in self.received.objects("agent_versions"))
            version = {
                "agent_version_name": name,
                "description": description,
                "agent_version_number": number + 1,
                "created_at": _now(),
                "deprecated_at": None,
            }
            self.received.put("agent_versions", key, version)
        elif description is not None:
            version["description"] = description
        return version


def make_app(received: Received, faults: Faults, *, keys: Collection[str]) -> web.Application:
    directory = Directory(received)
    auth = bearer_auth(
        keys,
        lambda token: json_response(
            {"detail": "Not authenticated" if token is None else "Invalid API key"}, 401
        ),
    )
    app = new_app(received, faults, middlewares=[auth, _unprocessable])

    async def create_fingerprint(request: web.Request) -> web.Response:
        await _parse(request, FingerprintIn)
        fingerprint_id = str(uuid.uuid4())
        record = orjson.loads(await request.read())
        received.put("fingerprints", fingerprint_id, record)
        received.add("fingerprints", record)
        return json_response({"fingerprint_id": fingerprint_id})

    async def create_event(request: web.Request) -> web.Response:
        event = await _parse(request, EventIn)
        if received.get("fingerprints", str(event.fingerprint_id)) is None:
            return _not_found("fingerprint")
        if request.app[FAULTS].take_reject():
            rejected = {"type": "value_error", "loc": ["body"], "msg": "Event rejected", "input": None}
            raise Unprocessable([rejected])
        if event.agent is not None:
            directory.agent(event.agent, None)
            if event.agent_version is not None:
                directory.version(event.agent, event.agent_version, None)
        if event.person is not None:
            directory.person(event.person, None)
        received.add("events", orjson.loads(await request.read()))
        return json_response({"success": True})

    async def create_person(request: web.Request) -> web.Response:
        body = await _parse(request, PersonIn)
        return json_response(directory.person(body.person_id, body.properties))

    async def get_person(request: web.Request) -> web.Response:
        person = received.get("people", request.match_info["person_id"])
        return json_response(person) if person is not None else _not_found("person")

    async def update_person(request: web.Request) -> web.Response:
        body = await _parse(request, PersonUpdate)
        person = received.get("people", request.match_info["person_id"])
        if person is None:
            return _not_found("person")
        person["properties"] = body.properties
        return json_response(person)

    async def create_agent(request: web.Request) -> web.Response:
        body = await _parse(request, AgentIn)
        return json_response(directory.agent(body.agent_name, body.description))

    async def get_agent(request: web.Request) -> web.Response:
        agent = received.get("agents", request.match_info["agent"])
        return json_response(agent) if agent is not None else _not_found("agent")

    async def create_version(request: web.Request) -> web.Response:
        body = await _parse(request, AgentVersionIn)
        agent = request.match_info["agent"]
        if received.get("agents", agent) is None:
            return _not_found("agent")
        return json_response(directory.version(agent, body.agent_version_name, body.description))

    async def get_version(request: web.Request) -> web.Response:
        agent, name = request.match_info["agent"], request.match_info["version"]
        if received.get("agents", agent) is None:
            return _not_found("agent")
        version = received.get("agent_versions", f"{agent}/{name}")
        return json_response(version) if version is not None else _not_found("agent-version")

    app.router.add_put("/api/v1/fingerprints", create_fingerprint)
    app.router.add_post("/api/v1/events", create_event)
    app.router.add_put("/api/v1/people", create_person)
    app.router.add_get("/api/v1/people/{person_id}", get_person)
    app.router.add_put("/api/v1/people/{person_id}", update_person)
    app.router.add_put("/api/v1/agents", create_agent)
    app.router.add_get("/api/v1/agents/{agent}", get_agent)
    app.router.add_put("/api/v1/agents/{agent}/agent-versions", create_version)
    app.router.add_get("/api/v1/agents/{agent}/agent-versions/{version}", get_version)
    return app
