"""A HoneyHive server: sessions, events (single, batch, per session) and event updates.

The ``honeyhive`` client needs exactly 200 with a JSON body on every call, and
``session/start`` must carry the five ids its 1.7 client validates (DIALECTS.md), so
successful answers here have those shapes. Events are checked the way a forwarder most
easily gets wrong: ``event_type``/``event_name`` present, times as epoch *milliseconds*,
the free-form parts as objects, ``event_id`` a UUID. A bad event is a 400
``{"success": false, "error": "<field> ..."}``; a batch with one bad event is refused
whole. The OTLP route the ``honeyhive`` tracer uses is served too.

Received, records: ``sessions`` and ``events`` (as stored, ids filled in), ``updates``
(PUT bodies), ``duplicates`` (events whose ``event_id`` was already held: kept once),
``updates_unknown`` (updates for an event id the server does not hold),
``unknown_sessions`` (events naming a session never started), plus the ``otlp`` records.
Objects: ``events`` (by event_id, updates merged in, session roots included) and
``sessions`` (by session_id, the same dicts as their root events).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Collection
from typing import Any

from aiohttp import web

from . import otlp
from .app import FAULTS, bad_request, bearer_auth, json_response, new_app, read_json
from .faults import Faults
from .recorder import Received

EVENT_TYPES = ("model", "tool", "chain", "session")
OBJECT_FIELDS = ("inputs", "outputs", "config", "metadata", "metrics", "feedback", "user_properties")
TIME_FIELDS = ("start_time", "end_time")
STRING_FIELDS = ("session_id", "parent_id", "project", "source", "session_name")
EARLIEST_MS, LATEST_MS = 1e12, 1e13
ORG_ID = "65f0c0ffee00000000000001"
WORKSPACE_ID = "65f0c0ffee00000000000002"


def _bad(error: str, status: int = 400) -> web.Response:
    return json_response({"success": False, "error": error}, status)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_uuid(value: Any) -> bool:
    try:
        return isinstance(value, str) and str(uuid.UUID(value)) == value.lower()
    except ValueError:
        return False


def field_problem(obj: dict[str, Any], where: str) -> str | None:
    """The first optional field of an event, session or update with the wrong shape."""
    for name in OBJECT_FIELDS:
        if obj.get(name) is not None and not isinstance(obj[name], dict):
            return f"{where}.{name} must be an object"
    for name in TIME_FIELDS:
        value = obj.get(name)
        if value is not None and not (_is_number(value) and EARLIEST_MS <= value < LATEST_MS):
            return f"{where}.{name} must be a number of milliseconds since the epoch"
    duration = obj.get("duration")
    if duration is not None and not (_is_number(duration) and duration >= 0):
        return f"{where}.duration must be a non-negative number of milliseconds"
    for name in STRING_FIELDS:
        if obj.get(name) is not None and not isinstance(obj[name], str):
            return f"{where}.{name} must be a string"
    if obj.get("error") is not None and not isinstance(obj["error"], str):
        return f"{where}.error must be a string or null"
    children = obj.get("children_ids")
    if children is not None and not (
        isinstance(children, list) and all(isinstance(c, str) for c in children)
    ):
        return f"{where}.children_ids must be an array of strings"
    if obj.get("event_id") is not None and not _is_uuid(obj["event_id"]):
        return f"{where}.event_id must be a UUID"
    return None


def event_problem(event: Any, where: str) -> str | None:
    if not isinstance(event, dict):
        return f"{where} must be an object"
    if event.get("event_type") not in EVENT_TYPES:
        return f"{where}.event_type must be one of {', '.join(EVENT_TYPES)}"
    if not isinstance(event.get("event_name"), str) or not event["event_name"]:
        return f"{where}.event_name is required"
    return field_problem(event, where)


def _project_id(project: Any) -> str:
    return hashlib.sha1(str(project).encode()).hexdigest()[:24]


class Store:
    """Sessions and events of one HoneyHive server, kept in the shared recorder."""

    def __init__(self, received: Received) -> None:
        self.received = received

    def start_session(self, session: dict[str, Any]) -> str:
        session_id = session.get("session_id") or str(uuid.uuid4())
        root = {
            **session,
            "session_id": session_id,
            "event_id": session_id,
            "event_type": "session",
            "event_name": session.get("session_name") or "session",
        }
        if self.received.get("events", session_id) is not None:
            self.received.add("duplicates", root)
            return session_id
        self.received.put("events", session_id, root)
        self.received.put("sessions", session_id, root)
        self.received.add("sessions", root)
        return session_id

    def add_event(self, event: dict[str, Any], session_id: str | None = None) -> str:
        """Store one valid event; one without a session gets ``session_id`` or a new one."""
        event = {**event, "event_id": event.get("event_id") or str(uuid.uuid4())}
        event_id = event["event_id"]
        if self.received.get("events", event_id) is not None:
            self.received.add("duplicates", event)
            return event_id
        if event["event_type"] == "session":
            event["session_id"] = event.get("session_id") or event_id
            self.received.put("sessions", event["session_id"], event)
        elif not event.get("session_id"):
            event["session_id"] = session_id or self.start_session({"project": event.get("project")})
        elif self.received.get("sessions", event["session_id"]) is None:
            self.received.add("unknown_sessions", event)
        self.received.put("events", event_id, event)
        self.received.add("events", event)
        return event_id

    def update(self, update: dict[str, Any]) -> None:
        self.received.add("updates", update)
        event = self.received.get("events", update["event_id"])
        if event is None:
            self.received.add("updates_unknown", update)
            return
        for name, value in update.items():
            if name in OBJECT_FIELDS and value is not None:
                event[name] = {**(event.get(name) or {}), **value}
            elif name != "event_id":
                event[name] = value


def make_app(received: Received, faults: Faults, *, keys: Collection[str]) -> web.Application:
    store = Store(received)
    auth = bearer_auth(keys, lambda token: _bad("Unauthorized: invalid API key", 401))
    app = new_app(received, faults, middlewares=[auth])

    async def body_of(request: web.Request) -> dict[str, Any]:
        try:
            body = await read_json(request)
        except ValueError as error:
            raise bad_request({"success": False, "error": f"invalid JSON: {error}"}) from error
        if not isinstance(body, dict):
            raise bad_request({"success": False, "error": "body must be an object"})
        return body

    async def start_session(request: web.Request) -> web.Response:
        session = (await body_of(request)).get("session")
        if not isinstance(session, dict):
            return _bad("session is required")
        if problem := field_problem(session, "session"):
            return _bad(problem)
        if session.get("session_id") is not None and not _is_uuid(session["session_id"]):
            return _bad("session.session_id must be a UUID")
        session_id = store.start_session(session)
        return json_response(
            {
                "session_id": session_id,
                "event_id": session_id,
                "org_id": ORG_ID,
                "workspace_id": WORKSPACE_ID,
                "project_id": _project_id(session.get("project")),
            }
        )

    async def create_event(request: web.Request) -> web.Response:
        event = (await body_of(request)).get("event")
        if problem := event_problem(event, "event"):
            return _bad(problem)
        if request.app[FAULTS].take_reject():
            return _bad("event rejected")
        return json_response({"success": True, "event_id": store.add_event(event)})

    async def create_batch(request: web.Request) -> web.Response:
        body = await body_of(request)
        events = body.get("events")
        if not isinstance(events, list):
            return _bad("events must be an array")
        for index, event in enumerate(events):
            if problem := event_problem(event, f"events[{index}]"):
                return _bad(problem)
        properties = body.get("session_properties")
        if properties is not None and not isinstance(properties, dict):
            return _bad("session_properties must be an object")
        if request.app[FAULTS].take_reject():
            return _bad("events rejected")
        shared = None
        if body.get("is_single_session") and any(not e.get("session_id") for e in events):
            shared = store.start_session(dict(properties or {}))
        ids = [store.add_event(event, shared) for event in events]
        return json_response({"event_ids": ids, "success": True})

    async def create_session_event(request: web.Request) -> web.Response:
        event = {**(await body_of(request)), "session_id": request.match_info["session_id"]}
        if problem := event_problem(event, "event"):
            return _bad(problem)
        if request.app[FAULTS].take_reject():
            return _bad("event rejected")
        return json_response({"event_id": store.add_event(event), "success": True})

    async def update_event(request: web.Request) -> web.Response:
        update = await body_of(request)
        if not isinstance(update.get("event_id"), str) or not update["event_id"]:
            return _bad("event_id is required")
        if problem := field_problem({k: v for k, v in update.items() if k != "event_id"}, "update"):
            return _bad(problem)
        store.update(update)
        return json_response({"success": True})

    app.router.add_post("/session/start", start_session)
    app.router.add_post("/events", create_event)
    app.router.add_post("/events/batch", create_batch)
    app.router.add_put("/events", update_event)
    app.router.add_post("/session/{session_id}/event", create_session_event)
    app.router.add_post("/opentelemetry/v1/traces", otlp.export)
    return app
