"""A Lunary server: ``POST /v1/runs/ingest`` and the legacy LLMonitor ``POST /api/report``.

It checks and answers as the open-source Lunary server does (DIALECTS.md and
reference/lunary-server-observed-*.txt): 402/401 for a missing/unknown key, 400 for bad
JSON, 500 for a body without events, and per-event failures inside a 200. Within a batch
events are handled in timestamp order, keys are camelCased, non-UUID run ids become the
server's sha256-derived UUID, and nested metadata values are dropped.

The real server silently loses what arrives out of order: an ``end``/``error``/
``feedback``/``update`` for a run it does not hold is answered as success and dropped,
and a ``start`` whose parent it does not hold loses its parent. A forwarder must never
cause either, so both are recorded here for tests to assert zero of. Token counts are
only what the client reported (the real server also estimates missing ones).

Received, records: ``events`` (accepted raw events), ``rejected`` ({event, error} per
per-event failure), ``orphans`` (dropped events for unknown runs), ``unknown_parents``
(starts whose parent was unknown). Objects: ``runs`` (the merged run per server run id),
``thread_runs`` (thread id → its chat/custom-event run ids in order).
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from .app import FAULTS, RECEIVED, bad_request, bearer, json_response, new_app, read_json
from .faults import Faults
from .recorder import Received

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
CAMEL_RE = re.compile(r"[-_]([a-z])", re.I)
RUN_EXISTS = "Run with this ID already exists in the database."
MISSING_EVENTS = {"message": "Missing events payload."}
NO_PROJECT = {"message": "Incorrect project id format"}
REJECTED = "Event rejected by the server."
OUTPUT_ROLES = ("assistant", "tool", "bot")
INPUT_ROLES = ("user", "system")
SCALARS = (str, int, float, bool)
RUN_FIELDS = (
    "id", "projectId", "type", "name", "parentRunId", "createdAt", "endedAt", "status",
    "input", "output", "params", "metadata", "tags", "tokens", "error", "feedback",
    "userId", "userProps", "runtime", "templateVersionId",
)


class EventFailure(Exception):
    """A per-event failure, answered inside the 200 as ``success: false``."""


def server_run_id(value: Any) -> str | None:
    """The id the server stores a run under: UUIDs as is, other strings hashed."""
    if not isinstance(value, str):
        return None
    if value == "" or len(value) == 36:
        if not UUID_RE.match(value):
            raise EventFailure(f'invalid input syntax for type uuid: "{value}"')
        return value.lower()
    h = hashlib.sha256(value.encode()).hexdigest()
    return f"{h[0:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:32]}"


def to_camel(item: Any) -> Any:
    """Every key camelCased, recursively, as the server does to the whole event."""
    if isinstance(item, list):
        return [to_camel(element) for element in item]
    if isinstance(item, dict):
        return {CAMEL_RE.sub(lambda m: m.group(1).upper(), k): to_camel(v) for k, v in item.items()}
    return item


def _epoch_ms(value: Any) -> float | None:
    """What JavaScript's ``new Date(value)`` yields, in ms; None where it is invalid."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp() * 1000


def _iso(ms: float | None) -> str | None:
    if ms is None:
        return None
    try:
        moment = datetime.fromtimestamp(ms / 1000, UTC)
    except (OverflowError, ValueError, OSError):
        return None
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _by_time(a: dict[str, Any], b: dict[str, Any]) -> int:
    """The server's sort comparator: an invalid timestamp compares equal to anything."""
    ta, tb = (_epoch_ms(e.get("timestamp")) if isinstance(e, dict) else None for e in (a, b))
    if ta is None or tb is None:
        return 0
    return (ta > tb) - (ta < tb)


def _clean_metadata(metadata: Any) -> dict[str, Any] | None:
    """Only first-level scalars and arrays of scalars survive, as on the server."""
    if not isinstance(metadata, dict):
        return None
    return {
        key: value
        for key, value in metadata.items()
        if key == "enrichment"
        or isinstance(value, SCALARS)
        or (isinstance(value, list) and all(isinstance(v, SCALARS) for v in value))
    }


def _falsy(value: Any) -> bool:
    """JavaScript falsiness, which the server's ``||`` and ``!`` follow: [] and {} are truthy."""
    return value is None or (isinstance(value, str | int | float) and not value)


def _first(*values: Any) -> Any:
    """JavaScript's ``a || b || c``."""
    for value in values[:-1]:
        if not _falsy(value):
            return value
    return values[-1]


def _defined(**fields: Any) -> dict[str, Any]:
    """The fields that are set, as the server's ``clearUndefined`` keeps them."""
    return {name: value for name, value in fields.items() if value is not None}


def _merged(*parts: Any) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for part in parts:
        if isinstance(part, dict):
            merged.update(part)
    return merged


def _tokens(usage: Any) -> dict[str, Any] | None:
    if not isinstance(usage, dict):
        return None
    return {
        "prompt": usage.get("prompt"),
        "completion": usage.get("completion"),
        "cachedPrompt": usage.get("promptCached"),
    }


def _new_run(run_id: str, project: str, **fields: Any) -> dict[str, Any]:
    return {**dict.fromkeys(RUN_FIELDS), "id": run_id, "projectId": project, **fields}


@dataclass(frozen=True)
class Clean:
    """One event after the server's cleaning, with the ids it is stored under."""

    raw: dict[str, Any]
    event: dict[str, Any]
    project: str
    run_id: str | None
    parent_id: str | None
    timestamp: str | None
    metadata: dict[str, Any] | None
    tags: Any
    name: str | None

    @classmethod
    def of(cls, raw: dict[str, Any], project: str) -> Clean:
        event = to_camel(raw)
        metadata = _clean_metadata(event.get("metadata"))
        tags = event.get("tags")
        name = event.get("name")
        return cls(
            raw=raw,
            event=event,
            project=_first(event.get("appId"), project),
            run_id=server_run_id(event.get("runId")),
            parent_id=server_run_id(event.get("parentRunId")),
            timestamp=_iso(_epoch_ms(event.get("timestamp"))),
            metadata=metadata,
            tags=[tags] if isinstance(tags, str) else _first(tags, (metadata or {}).get("tags")),
            name=name.replace("models/", "", 1) if isinstance(name, str) else None,
        )


class Ingestion:
    """The run table of one Lunary server, kept in the shared recorder."""

    def __init__(self, received: Received) -> None:
        self.received = received

    def ingest(self, project: str, events: list[Any], *, reject: bool) -> list[dict[str, Any]]:
        ordered = sorted(events, key=functools.cmp_to_key(_by_time))
        return [self._one(project, raw, reject) for raw in ordered]

    def _one(self, project: str, raw: Any, reject: bool) -> dict[str, Any]:
        result: dict[str, Any] = {}
        if isinstance(raw, dict) and "runId" in raw:
            result["id"] = raw["runId"]
        try:
            if not isinstance(raw, dict):
                raise EventFailure("Invalid event")
            if reject:
                raise EventFailure(REJECTED)
            if self._register(Clean.of(raw, project)):
                self.received.add("events", raw)
        except EventFailure as failure:
            self.received.add("rejected", {"event": raw, "error": str(failure)})
            return {**result, "success": False, "error": str(failure)}
        return {**result, "success": True}

    def _register(self, clean: Clean) -> bool:
        """Apply one event; False when the server drops it for an unknown run."""
        kind = clean.event.get("event")
        if clean.event.get("type") == "log":
            raise EventFailure('relation "log" does not exist')
        if kind == "start":
            self._start(clean)
        elif kind == "chat":
            self._chat(clean)
        elif kind == "custom-event":
            self._custom_event(clean)
        elif kind in (updates := self._updates(clean)):
            run = self.received.get("runs", clean.run_id) if clean.run_id else None
            if run is None:
                self.received.add("orphans", clean.raw)
                return False
            updates[kind](clean, run)
        return True

    def _updates(self, clean: Clean) -> dict[str, Callable[[Clean, dict[str, Any]], None]]:
        """The events that change a run the server must already hold."""
        updates = {"end": self._end, "error": self._error, "feedback": self._feedback}
        if clean.event.get("type") == "llm":
            updates["update"] = self._update
        return updates

    def _start(self, clean: Clean) -> None:
        event = clean.event
        if clean.run_id is None or self.received.get("runs", clean.run_id) is not None:
            raise EventFailure(RUN_EXISTS)
        if not event.get("type"):
            raise EventFailure(
                'null value in column "type" of relation "run" violates not-null constraint'
            )
        template = _first(
            event.get("templateVersionId"),
            event.get("templateId"),
            (clean.metadata or {}).get("templateId"),
            (clean.metadata or {}).get("templateVersionId"),
        )
        if not _falsy(template) and not str(template).lstrip("-").isdigit():
            raise EventFailure(f'invalid input syntax for type integer: "{template}"')
        parent_id = clean.parent_id
        if parent_id and self.received.get("runs", parent_id) is None:
            self.received.add("unknown_parents", clean.raw)
            parent_id = None
        user_id = event.get("userId") if isinstance(event.get("userId"), str) else None
        run = _new_run(
            clean.run_id,
            clean.project,
            type=event["type"],
            name=clean.name,
            parentRunId=parent_id,
            createdAt=clean.timestamp,
            status="started",
            input=event.get("input"),
            params=_first(event.get("params"), event.get("extra")),
            metadata=clean.metadata,
            tags=clean.tags,
            userId=user_id,
            userProps=event.get("userProps") if user_id else None,
            runtime=event.get("runtime"),
            templateVersionId=template,
        )
        self.received.put("runs", clean.run_id, run)

    def _end(self, clean: Clean, run: dict[str, Any]) -> None:
        event = clean.event
        if clean.metadata is not None:
            run["metadata"] = _merged(run["metadata"], clean.metadata)
        if "output" in event:
            output = event["output"]
            run["output"] = ("true" if output else "false") if isinstance(output, bool) else output
        if not _falsy(event.get("input")):
            run["input"] = event["input"]
        if isinstance(event.get("tokensUsage"), dict):
            run["tokens"] = _tokens(event["tokensUsage"])
        run.update(endedAt=clean.timestamp, status="success")

    def _error(self, clean: Clean, run: dict[str, Any]) -> None:
        run.update(endedAt=clean.timestamp, status="error", error=clean.event.get("error"))

    def _feedback(self, clean: Clean, run: dict[str, Any]) -> None:
        run["feedback"] = _merged(run["feedback"], clean.event.get("feedback"), clean.event.get("extra"))

    def _update(self, clean: Clean, run: dict[str, Any]) -> None:
        run["metadata"] = clean.metadata or {}

    def _open_thread(self, clean: Clean, **fields: Any) -> list[str]:
        """Threads are opened implicitly by their first chat or custom event."""
        assert clean.parent_id is not None
        thread = self.received.get("runs", clean.parent_id)
        if thread is None:
            metadata = clean.event.get("threadMetadata")
            thread = _new_run(clean.parent_id, clean.project, type="thread", metadata=metadata)
            self.received.put("runs", clean.parent_id, thread)
        thread.update(tags=clean.event.get("threadTags"), **fields)
        turns = self.received.get("thread_runs", clean.parent_id)
        if turns is None:
            turns = []
            self.received.put("thread_runs", clean.parent_id, turns)
        return turns

    def _insert_child(self, clean: Clean, turns: list[str], **fields: Any) -> None:
        if clean.run_id is None or self.received.get("runs", clean.run_id) is not None:
            raise EventFailure('duplicate key value violates unique constraint "run_pkey"')
        run = _new_run(clean.run_id, clean.project, parentRunId=clean.parent_id, **fields)
        self.received.put("runs", clean.run_id, run)
        turns.append(clean.run_id)

    def _chat(self, clean: Clean) -> None:
        """One user→assistant exchange per chat run, as the server reconciles messages."""
        message = clean.event.get("message")
        if not isinstance(message, dict):
            raise EventFailure("Cannot destructure property 'role' of 'run.message' as it is undefined.")
        if clean.parent_id is None:
            raise EventFailure("No parent run ID provided")
        role = message.get("role")
        metadata = _first(message.get("metadata"), message.get("extra"))
        user_id = clean.event.get("userId")
        core = _defined(role=role, content=message.get("content"), metadata=metadata)
        turns = self._open_thread(clean, input=core, userId=user_id)
        shared = _defined(
            tags=message.get("tags"), metadata=metadata, userId=user_id, feedback=clean.event.get("feedback")
        )
        previous = self.received.get("runs", turns[-1]) if turns else None
        appends = previous is not None and previous["type"] != "custom-event" and (
            role in OUTPUT_ROLES or (role in INPUT_ROLES and not previous["output"])
        )
        if not appends:
            side = "output" if role in OUTPUT_ROLES else "input" if role in INPUT_ROLES else None
            placed = {side: [core]} if side else {}
            ts = clean.timestamp
            self._insert_child(clean, turns, type="chat", createdAt=ts, endedAt=ts, **shared, **placed)
            return
        assert previous is not None
        side = "output" if role in OUTPUT_ROLES else "input"
        previous.update(shared, endedAt=clean.timestamp)
        previous[side] = [*(previous[side] or []), core]
        if clean.run_id and clean.run_id != previous["id"]:
            self.received.pop("runs", previous["id"])
            previous["id"] = clean.run_id
            self.received.put("runs", clean.run_id, previous)
            turns[-1] = clean.run_id

    def _custom_event(self, clean: Clean) -> None:
        if clean.parent_id is None:
            raise EventFailure("No parent run ID provided")
        turns = self._open_thread(clean)
        self._insert_child(clean, turns, type="custom-event", name=clean.name, createdAt=clean.timestamp)


def api_key(request: web.Request) -> str | None:
    return bearer(request) or request.headers.get("X-API-Key") or None


async def _events(request: web.Request) -> Any:
    """The body's ``events``; bad JSON is the 400 of the server's body parser."""
    try:
        body = await read_json(request)
    except ValueError as error:
        raise bad_request({"message": f"JSON Parse error: {error}"}) from error
    return body.get("events") if isinstance(body, dict) else None


def add_ingest_route(app: web.Application, keys: Collection[str]) -> None:
    """``POST /v1/runs/ingest``: key in Bearer or X-API-Key, answer ``{"results": [...]}``."""
    ingestion = Ingestion(app[RECEIVED])

    async def ingest(request: web.Request) -> web.Response:
        events = await _events(request)
        key = api_key(request)
        if key is None:
            return json_response(NO_PROJECT, 402)
        if keys and key not in keys:
            message = "Invalid API key" if UUID_RE.match(key) else "Invalid access token"
            return json_response({"message": message}, 401)
        if _falsy(events):
            return json_response(MISSING_EVENTS, 500)
        batch = events if isinstance(events, list) else [events]
        reject = request.app[FAULTS].take_reject()
        return json_response({"results": ingestion.ingest(key, batch, reject=reject)})

    app.router.add_post("/v1/runs/ingest", ingest)


def add_report_route(app: web.Application, keys: Collection[str]) -> None:
    """``POST /api/report``: project from the first event's ``projectId``/``app``; bare array."""
    ingestion = Ingestion(app[RECEIVED])

    async def report(request: web.Request) -> web.Response:
        events = await _events(request)
        if not isinstance(events, list) or not events:
            return json_response(MISSING_EVENTS, 400)
        key = api_key(request)
        if key is not None and keys and key not in keys:
            return json_response({"message": "Invalid API key"}, 401)
        first = events[0] if isinstance(events[0], dict) else {}
        project = key or first.get("projectId") or first.get("app")
        if not isinstance(project, str) or not project:
            return json_response(NO_PROJECT, 402)
        if keys and project not in keys:
            if UUID_RE.match(project):
                return json_response({"message": "This project does not exist"}, 401)
            return json_response(NO_PROJECT, 402)
        reject = request.app[FAULTS].take_reject()
        return json_response(ingestion.ingest(project, events, reject=reject))

    app.router.add_post("/api/report", report)


def make_app(received: Received, faults: Faults, *, keys: Collection[str]) -> web.Application:
    """A Lunary server holding one project per key (public keys; app ids for v0)."""
    app = new_app(received, faults)
    add_ingest_route(app, keys)
    add_report_route(app, keys)
    return app
