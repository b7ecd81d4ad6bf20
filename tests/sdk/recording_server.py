"""A stand-in for the vendors' servers, used to prove the SDK drivers really send.

It records every request and answers the way each vendor's server does (DIALECTS.md),
so the real SDKs accept the answers: LLMonitor ``/api/report`` a bare array, Lunary
``{"results": [...]}``, HoneyHive exactly 200 with JSON (``session/start`` carrying the
five ids the 1.7 client validates), Voker a ``fingerprint_id`` and JSON bodies, OTLP
``{}`` for JSON and an empty protobuf message for protobuf. ``answers`` overrides the
answer for a ``(method, path)`` so the drivers' error detection can be exercised.
OTLP protobuf bodies are decoded to the OTLP/JSON dict shape, so tests read spans the
same way whichever encoding the SDK used.

Run standalone (``python -m tests.sdk.recording_server --port 8931``) to watch an SDK's
traffic as JSON lines.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import sys
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

CREATED_AT = "2025-01-01T00:00:00Z"
ID_FIELDS = {"traceId", "spanId", "parentSpanId"}

BODY = web.RequestKey("recorded_body", object)  # the decoded body, for the handlers


@dataclass
class Recorded:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: Any


@dataclass
class Answer:
    status: int
    body: bytes = b""
    content_type: str = "application/json"


@dataclass
class RecordingServer:
    requests: list[Recorded] = field(default_factory=list)
    answers: dict[tuple[str, str], Answer] = field(default_factory=dict)

    def matching(self, method: str, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method and r.path == path]

    def make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._record])
        app.add_routes(
            [
                web.post("/api/report", _llmonitor_report),
                web.post("/v1/runs/ingest", _lunary_ingest),
                web.post("/session/start", _hh_session_start),
                web.post("/session/{session_id}/event", _hh_event),
                web.post("/events", _hh_event),
                web.put("/events", _hh_update),
                web.post("/events/batch", _hh_batch),
                web.post("/opentelemetry/v1/traces", _otlp),
                web.post("/v1/traces", _otlp),
                web.put("/api/v1/fingerprints", _vk_fingerprint),
                web.post("/api/v1/events", _vk_event),
                web.put("/api/v1/people", _vk_person),
                web.route("*", "/api/v1/people/{person_id}", _vk_person),
                web.put("/api/v1/agents", _vk_agent),
                web.get("/api/v1/agents/{agent_name}", _vk_agent),
                web.put("/api/v1/agents/{agent_name}/agent-versions", _vk_agent_version),
                web.get(
                    "/api/v1/agents/{agent_name}/agent-versions/{agent_version_name}",
                    _vk_agent_version,
                ),
            ]
        )
        return app

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        raw = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            raw = gzip.decompress(raw)
        body = _decode(raw, request.content_type)
        request[BODY] = body
        self.requests.append(
            Recorded(request.method, request.path, request.query_string, dict(request.headers),
                     body)
        )
        override = self.answers.get((request.method, request.path))
        if override is not None:
            return web.Response(
                status=override.status, body=override.body, content_type=override.content_type
            )
        return await handler(request)


def _decode(raw: bytes, content_type: str) -> Any:
    if content_type == "application/x-protobuf":
        message = ExportTraceServiceRequest()
        message.ParseFromString(raw)
        return _hex_ids(MessageToDict(message))
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


def _hex_ids(value: Any) -> Any:
    """OTLP/JSON writes trace and span ids in hex; ``MessageToDict`` writes bytes in base64."""
    if isinstance(value, list):
        return [_hex_ids(v) for v in value]
    if isinstance(value, dict):
        return {
            k: base64.b64decode(v).hex() if k in ID_FIELDS and isinstance(v, str) else _hex_ids(v)
            for k, v in value.items()
        }
    return value


def _new_id() -> str:
    return str(uuid.uuid4())


async def _llmonitor_report(request: web.Request) -> web.Response:
    events = (request[BODY] or {}).get("events")
    if not isinstance(events, list) or not events:
        return web.json_response({"message": "Missing events payload."}, status=400)
    return web.json_response([{"id": e.get("runId"), "success": True} for e in events])


async def _lunary_ingest(request: web.Request) -> web.Response:
    body = request[BODY]
    events = body.get("events", body) if isinstance(body, dict) else body
    if isinstance(events, dict):
        events = [events]
    return web.json_response({"results": [{"id": e.get("runId"), "success": True} for e in events]})


async def _hh_session_start(request: web.Request) -> web.Response:
    session_id = (request[BODY] or {}).get("session", {}).get("session_id") or _new_id()
    return web.json_response(
        {
            "session_id": session_id,
            "event_id": session_id,
            "org_id": "org-recorder",
            "workspace_id": "ws-recorder",
            "project_id": "project-recorder",
        }
    )


async def _hh_event(request: web.Request) -> web.Response:
    event = (request[BODY] or {}).get("event", {})
    return web.json_response({"success": True, "event_id": event.get("event_id") or _new_id()})


async def _hh_update(request: web.Request) -> web.Response:
    return web.json_response({"success": True})


async def _hh_batch(request: web.Request) -> web.Response:
    events = (request[BODY] or {}).get("events", [])
    return web.json_response(
        {"success": True, "event_ids": [e.get("event_id") or _new_id() for e in events]}
    )


async def _otlp(request: web.Request) -> web.Response:
    if request.content_type == "application/x-protobuf":
        return web.Response(
            body=ExportTraceServiceResponse().SerializeToString(),
            content_type="application/x-protobuf",
        )
    return web.json_response({})


async def _vk_fingerprint(request: web.Request) -> web.Response:
    return web.json_response({"fingerprint_id": _new_id()})


async def _vk_event(request: web.Request) -> web.Response:
    if not (request[BODY] or {}).get("session"):
        return web.json_response({"detail": {"type": "session-id-empty"}}, status=422)
    return web.json_response({"success": True})


async def _vk_person(request: web.Request) -> web.Response:
    body = request[BODY] or {}
    person_id = request.match_info.get("person_id") or body.get("person_id")
    return web.json_response(
        {"person_id": person_id, "properties": body.get("properties") or {},
         "created_at": CREATED_AT}
    )


async def _vk_agent(request: web.Request) -> web.Response:
    body = request[BODY] or {}
    return web.json_response(
        {
            "agent_name": request.match_info.get("agent_name") or body.get("agent_name"),
            "description": body.get("description"),
            "agent_number": 1,
            "created_at": CREATED_AT,
            "deprecated_at": None,
        }
    )


async def _vk_agent_version(request: web.Request) -> web.Response:
    body = request[BODY] or {}
    return web.json_response(
        {
            "agent_version_name": request.match_info.get("agent_version_name")
            or body.get("agent_version_name"),
            "description": body.get("description"),
            "agent_version_number": 1,
            "created_at": CREATED_AT,
            "deprecated_at": None,
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8931)
    args = parser.parse_args()
    server = RecordingServer()

    async def print_request(request: web.Request, response: web.StreamResponse) -> None:
        print(json.dumps(vars(server.requests[-1]), default=str), flush=True)

    app = server.make_app()
    app.on_response_prepare.append(print_request)
    print(f"recording on http://127.0.0.1:{args.port}", file=sys.stderr)
    web.run_app(app, host="127.0.0.1", port=args.port, print=None)


if __name__ == "__main__":
    main()
