"""The vendor simulators answer as the vendors do, record what they accept, inject faults.

Each simulator runs as a real HTTP server on 127.0.0.1 and is driven with aiohttp's
client, so these tests also pin down the wire answers egress tests rely on.
"""

from __future__ import annotations

import asyncio
import gzip
import socket
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from tests.backends import Backend, run_backend
from tests.backends.lunary import server_run_id

LUNARY_KEY = "c9625a97-ec9f-47ad-8e22-8cc32a66c2f6"
OTHER_UUID = "99999999-9999-4999-8999-999999999999"
KEY = "test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
LUNARY_AUTH = {"Authorization": f"Bearer {LUNARY_KEY}"}
RUN = "11111111-1111-4111-8111-111111111111"
PARENT = "22222222-2222-4222-8222-222222222222"
THREAD = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
MS = 1_700_000_000_000
NOT_MS = "must be a number of milliseconds since the epoch"
JSON = {"Content-Type": "application/json"}
PROTOBUF = {"Content-Type": "application/x-protobuf"}
MISSING_EVENTS = {"message": "Missing events payload."}
NO_PROJECT = {"message": "Incorrect project id format"}
ROOT = Path(__file__).resolve().parent.parent

Serve = Callable[..., Awaitable[Backend]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    async with AsyncExitStack() as stack:

        async def start(dialect: str, **options: Any) -> Backend:
            return await stack.enter_async_context(run_backend(dialect, **options))

        yield start


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def call(
    http: aiohttp.ClientSession, method: str, url: str, body: Any = None, **kwargs: Any
) -> tuple[int, Any, aiohttp.ClientResponse]:
    """Status, body (parsed when JSON, else text; None when empty) and response of one request."""
    if body is not None:
        kwargs["data"] = orjson.dumps(body)
        kwargs["headers"] = {**kwargs.get("headers", {}), "Content-Type": "application/json"}
    async with http.request(method, url, **kwargs) as response:
        raw = await response.read()
        if not raw:
            return response.status, None, response
        is_json = response.content_type == "application/json"
        return response.status, orjson.loads(raw) if is_json else raw.decode(), response


def llm(event: str, run_id: str, ts: str, **fields: Any) -> dict[str, Any]:
    return {"type": "llm", "event": event, "runId": run_id, "timestamp": ts, **fields}


# Lunary ---------------------------------------------------------------------------


@pytest.fixture
async def lunary(serve: Serve) -> Backend:
    return await serve("lunary", key=LUNARY_KEY)


async def ingest(http: aiohttp.ClientSession, backend: Backend, *events: Any) -> list[Any]:
    status, body, _ = await call(
        http, "POST", f"{backend.url}/v1/runs/ingest", {"events": list(events)}, headers=LUNARY_AUTH
    )
    assert status == 200
    return body["results"]


async def test_lunary_accepts_a_run_and_merges_it(lunary: Backend, http: aiohttp.ClientSession) -> None:
    start = llm(
        "start",
        RUN,
        "2026-11-23T13:03:45.000Z",
        name="gpt-4o",
        input=[{"role": "user", "content": "Hi"}],
        tags=["t1"],
        extra={"temperature": 0.5},
        userId="user-42",
        metadata={"a": 1, "nested": {"x": 1}, "arr": [1, 2]},
    )
    end = llm(
        "end",
        RUN,
        "2026-11-23T13:03:45.900Z",
        output={"role": "assistant", "content": "Hello"},
        tokensUsage={"prompt": 3, "completion": 2},
    )
    feedback = {"event": "feedback", "runId": RUN, "timestamp": "2026-11-23T13:03:46Z",
                "feedback": {"thumb": "up"}}

    results = await ingest(http, lunary, start, end, feedback)

    assert results == [{"id": RUN, "success": True}] * 3
    assert lunary.received.records("events") == [start, end, feedback]
    run = lunary.received.get("runs", RUN)
    assert run["status"] == "success"
    assert run["projectId"] == LUNARY_KEY
    assert run["output"] == {"role": "assistant", "content": "Hello"}
    assert run["tokens"] == {"prompt": 3, "completion": 2, "cachedPrompt": None}
    assert run["metadata"] == {"a": 1, "arr": [1, 2]}
    assert run["params"] == {"temperature": 0.5}
    assert (run["userId"], run["tags"], run["feedback"]) == ("user-42", ["t1"], {"thumb": "up"})
    assert run["createdAt"] == "2026-11-23T13:03:45.000Z"
    assert lunary.received.count("orphans") == 0


@pytest.mark.parametrize(
    ("headers", "status", "body"),
    [
        ({}, 402, NO_PROJECT),
        ({"Authorization": f"Bearer {OTHER_UUID}"}, 401, {"message": "Invalid API key"}),
        ({"Authorization": "Bearer not-a-key"}, 401, {"message": "Invalid access token"}),
    ],
)
async def test_lunary_refuses_missing_or_unknown_keys(
    lunary: Backend, http: aiohttp.ClientSession, headers: dict[str, str], status: int, body: Any
) -> None:
    event = llm("start", RUN, "2026-11-23T13:03:45Z")
    answer = await call(http, "POST", f"{lunary.url}/v1/runs/ingest", {"events": [event]}, headers=headers)
    assert answer[:2] == (status, body)
    assert lunary.received.count("events") == 0


async def test_lunary_takes_x_api_key_and_a_single_event_object(
    lunary: Backend, http: aiohttp.ClientSession
) -> None:
    event = llm("start", RUN, "2026-11-23T13:03:45Z")
    status, body, _ = await call(
        http, "POST", f"{lunary.url}/v1/runs/ingest", {"events": event}, headers={"X-API-Key": LUNARY_KEY}
    )
    assert (status, body) == (200, {"results": [{"id": RUN, "success": True}]})


@pytest.mark.parametrize(
    ("payload", "status", "body"),
    [
        (b'{"events":[', 400, None),
        (b'{"foo":1}', 500, MISSING_EVENTS),
        (b"[]", 500, MISSING_EVENTS),
        (b'{"events":[]}', 200, {"results": []}),
    ],
)
async def test_lunary_body_errors(
    lunary: Backend, http: aiohttp.ClientSession, payload: bytes, status: int, body: Any
) -> None:
    answer = await call(http, "POST", f"{lunary.url}/v1/runs/ingest", data=payload, headers=LUNARY_AUTH)
    assert answer[0] == status
    if body is None:
        assert answer[1]["message"].startswith("JSON Parse error")
    else:
        assert answer[1] == body


async def test_lunary_duplicate_start_fails_inside_a_200(lunary: Backend, http: aiohttp.ClientSession) -> None:
    await ingest(http, lunary, llm("start", RUN, "2026-11-23T13:03:45Z", input="first"))
    results = await ingest(http, lunary, llm("start", RUN, "2026-11-23T13:03:46Z", input="again"))
    duplicate = "Run with this ID already exists in the database."
    assert results == [{"id": RUN, "success": False, "error": duplicate}]
    assert lunary.received.get("runs", RUN)["input"] == "first"
    assert lunary.received.count("rejected") == 1


async def test_lunary_per_event_validation(lunary: Backend, http: aiohttp.ClientSession) -> None:
    bad_uuid = "x" * 36
    results = await ingest(
        http,
        lunary,
        {"event": "start", "runId": RUN, "timestamp": "2026-11-23T13:03:45Z"},
        llm("start", bad_uuid, "2026-11-23T13:03:46Z"),
        {"type": "thread", "event": "chat", "runId": PARENT, "timestamp": "2026-11-23T13:03:47Z",
         "message": {"role": "user", "content": "hi"}},
    )
    assert results == [
        {"id": RUN, "success": False,
         "error": 'null value in column "type" of relation "run" violates not-null constraint'},
        {"id": bad_uuid, "success": False, "error": f'invalid input syntax for type uuid: "{bad_uuid}"'},
        {"id": PARENT, "success": False, "error": "No parent run ID provided"},
    ]
    assert lunary.received.objects("runs") == {}


async def test_lunary_hashes_non_uuid_ids_and_camelcases_keys(
    lunary: Backend, http: aiohttp.ClientSession
) -> None:
    results = await ingest(
        http,
        lunary,
        {"type": "chain", "event": "start", "run_id": "my-chain", "timestamp": "2026-11-23T13:03:45Z"},
        {"type": "tool", "event": "start", "runId": "my-tool", "parentRunId": "my-chain",
         "timestamp": "2026-11-23T13:03:46Z", "params": {"max_tokens": 5}},
    )
    assert results == [{"success": True}, {"id": "my-tool", "success": True}]
    chain, tool = server_run_id("my-chain"), server_run_id("my-tool")
    assert uuid.UUID(chain).version == 4
    assert lunary.received.get("runs", tool)["parentRunId"] == chain
    assert lunary.received.get("runs", tool)["params"] == {"maxTokens": 5}


async def test_lunary_counts_orphans_and_unknown_parents(lunary: Backend, http: aiohttp.ClientSession) -> None:
    orphan = llm("end", RUN, "2026-11-23T13:03:45Z", output="lost")
    child = {"type": "tool", "event": "start", "runId": PARENT, "parentRunId": OTHER_UUID,
             "timestamp": "2026-11-23T13:03:45Z"}
    results = await ingest(http, lunary, orphan, child)
    assert results == [{"id": RUN, "success": True}, {"id": PARENT, "success": True}]
    assert lunary.received.records("orphans") == [orphan]
    assert lunary.received.records("unknown_parents") == [child]
    assert lunary.received.get("runs", RUN) is None
    assert lunary.received.get("runs", PARENT)["parentRunId"] is None


async def test_lunary_orders_a_batch_by_timestamp(lunary: Backend, http: aiohttp.ClientSession) -> None:
    end = llm("end", RUN, "2026-11-23T13:03:46Z", output="ok")
    start = llm("start", RUN, "2026-11-23T13:03:45Z")
    await ingest(http, lunary, end, start)
    assert lunary.received.count("orphans") == 0
    assert lunary.received.records("events") == [start, end]
    assert lunary.received.get("runs", RUN)["status"] == "success"


async def test_lunary_thread_chat_opens_the_thread(lunary: Backend, http: aiohttp.ClientSession) -> None:
    def chat(role: str, ts: str) -> dict[str, Any]:
        return {"type": "thread", "event": "chat", "runId": RUN, "parentRunId": THREAD, "timestamp": ts,
                "threadTags": ["th"], "message": {"role": role, "content": role}}

    user, assistant = chat("user", "2026-11-23T13:03:45Z"), chat("assistant", "2026-11-23T13:03:46Z")
    results = await ingest(http, lunary, user, assistant)
    assert [r["success"] for r in results] == [True, True]
    thread, turn = lunary.received.get("runs", THREAD), lunary.received.get("runs", RUN)
    assert (thread["type"], thread["tags"]) == ("thread", ["th"])
    assert (turn["type"], turn["parentRunId"]) == ("chat", THREAD)
    assert turn["input"] == [{"role": "user", "content": "user"}]
    assert turn["output"] == [{"role": "assistant", "content": "assistant"}]


async def test_lunary_reject_fault_fails_every_event(lunary: Backend, http: aiohttp.ClientSession) -> None:
    lunary.faults.set(reject=True, times=1)
    rejected = await ingest(http, lunary, llm("start", RUN, "2026-11-23T13:03:45Z"))
    accepted = await ingest(http, lunary, llm("start", RUN, "2026-11-23T13:03:45Z"))
    assert rejected == [{"id": RUN, "success": False, "error": "Event rejected by the server."}]
    assert accepted == [{"id": RUN, "success": True}]
    assert (lunary.faults.requests, lunary.faults.faulted) == (2, 1)


@pytest.mark.parametrize("dialect", ["lunary", "llmonitor"])
async def test_report_route_answers_a_bare_array(
    serve: Serve, http: aiohttp.ClientSession, dialect: str
) -> None:
    backend = await serve(dialect, key=LUNARY_KEY)
    v0 = {"type": "agent", "runId": RUN, "app": LUNARY_KEY}
    events = [
        {**v0, "event": "start", "timestamp": "2026-11-23T13:03:45Z", "input": [{"role": "user", "text": "q"}]},
        {**v0, "event": "end", "timestamp": "2026-11-23T13:03:46Z", "output": {"role": "ai", "text": "a"}},
    ]
    status, body, _ = await call(http, "POST", f"{backend.url}/api/report", {"events": events})
    assert (status, body) == (200, [{"id": RUN, "success": True}] * 2)
    assert backend.received.get("runs", RUN)["output"] == {"role": "ai", "text": "a"}


@pytest.mark.parametrize(
    ("payload", "status", "body"),
    [
        ({"events": []}, 400, MISSING_EVENTS),
        ({"events": {"event": "start", "runId": RUN, "app": LUNARY_KEY}}, 400, MISSING_EVENTS),
        ({"events": [{"event": "start", "runId": RUN, "app": "nope"}]}, 402, NO_PROJECT),
        ({"events": [{"event": "start", "runId": RUN}]}, 402, NO_PROJECT),
        ({"events": [{"event": "start", "runId": RUN, "app": OTHER_UUID}]}, 401,
         {"message": "This project does not exist"}),
    ],
)
async def test_llmonitor_refuses_bad_reports(
    serve: Serve, http: aiohttp.ClientSession, payload: Any, status: int, body: Any
) -> None:
    backend = await serve("llmonitor", key=LUNARY_KEY)
    assert (await call(http, "POST", f"{backend.url}/api/report", payload))[:2] == (status, body)
    assert (await call(http, "POST", f"{backend.url}/v1/runs/ingest", payload))[0] == 404


# HoneyHive ------------------------------------------------------------------------


@pytest.fixture
async def honeyhive(serve: Serve) -> Backend:
    return await serve("honeyhive", key=KEY)


def hh_event(**fields: Any) -> dict[str, Any]:
    return {"event_type": "model", "event_name": "gpt", "start_time": MS, "end_time": MS + 500,
            "inputs": {"chat_history": [{"role": "user", "content": "hi"}]}, **fields}


async def test_honeyhive_session_and_events(honeyhive: Backend, http: aiohttp.ClientSession) -> None:
    session_id = str(uuid.uuid4())
    status, started, _ = await call(
        http, "POST", f"{honeyhive.url}/session/start",
        {"session": {"session_id": session_id, "session_name": "s", "project": "demo", "start_time": MS}},
        headers=AUTH,
    )
    assert status == 200
    assert started["session_id"] == started["event_id"] == session_id
    assert all(isinstance(started[k], str) for k in ("org_id", "workspace_id", "project_id"))

    event_id = str(uuid.uuid4())
    one = await call(http, "POST", f"{honeyhive.url}/events",
                     {"event": hh_event(event_id=event_id, session_id=session_id)}, headers=AUTH)
    assert one[:2] == (200, {"success": True, "event_id": event_id})

    status, batch, _ = await call(
        http, "POST", f"{honeyhive.url}/events/batch",
        {"events": [hh_event(event_type="tool", session_id=session_id), hh_event(event_type="chain")],
         "is_single_session": True, "session_properties": {"session_name": "batch"}},
        headers=AUTH,
    )
    assert status == 200 and batch["success"] is True and len(batch["event_ids"]) == 2

    status, logged, _ = await call(http, "POST", f"{honeyhive.url}/session/{session_id}/event",
                                   hh_event(event_name="via-path"), headers=AUTH)
    assert status == 200 and logged["success"] is True
    assert honeyhive.received.get("events", logged["event_id"])["session_id"] == session_id

    update = {"event_id": event_id, "metadata": {"a": 1}, "feedback": {"liked": True}, "end_time": MS + 900}
    assert (await call(http, "PUT", f"{honeyhive.url}/events", update, headers=AUTH))[:2] == (
        200, {"success": True})
    stored = honeyhive.received.get("events", event_id)
    assert (stored["metadata"], stored["feedback"], stored["end_time"]) == ({"a": 1}, {"liked": True}, MS + 900)
    assert honeyhive.received.count("events") == 4
    assert honeyhive.received.count("unknown_sessions") == 0
    assert honeyhive.received.get("sessions", session_id)["event_type"] == "session"


async def test_honeyhive_generates_a_session_id_and_counts_odd_deliveries(
    honeyhive: Backend, http: aiohttp.ClientSession
) -> None:
    _, started, _ = await call(http, "POST", f"{honeyhive.url}/session/start", {"session": {"project": "p"}},
                               headers=AUTH)
    assert uuid.UUID(started["session_id"]).version == 4
    event = hh_event(event_id=str(uuid.uuid4()), session_id=started["session_id"])
    for _ in range(2):
        await call(http, "POST", f"{honeyhive.url}/events", {"event": event}, headers=AUTH)
    await call(http, "PUT", f"{honeyhive.url}/events", {"event_id": str(uuid.uuid4()), "metrics": {"m": 1}},
               headers=AUTH)
    await call(http, "POST", f"{honeyhive.url}/events", {"event": hh_event(session_id="never-started")},
               headers=AUTH)
    received = honeyhive.received
    assert [received.count(k) for k in ("duplicates", "updates_unknown", "unknown_sessions")] == [1, 1, 1]


@pytest.mark.parametrize(
    ("event", "error"),
    [
        (hh_event(event_type="llm"), "event.event_type must be one of model, tool, chain, session"),
        ({**hh_event(), "event_name": None}, "event.event_name is required"),
        (hh_event(start_time=MS // 1000), f"event.start_time {NOT_MS}"),
        (hh_event(end_time="2026-11-23T13:03:45Z"), f"event.end_time {NOT_MS}"),
        (hh_event(inputs="hi"), "event.inputs must be an object"),
        (hh_event(metadata=[1]), "event.metadata must be an object"),
        (hh_event(session_id=5), "event.session_id must be a string"),
        (hh_event(event_id="not-a-uuid"), "event.event_id must be a UUID"),
    ],
)
async def test_honeyhive_refuses_malformed_events(
    honeyhive: Backend, http: aiohttp.ClientSession, event: dict[str, Any], error: str
) -> None:
    answer = await call(http, "POST", f"{honeyhive.url}/events", {"event": event}, headers=AUTH)
    assert answer[:2] == (400, {"success": False, "error": error})
    batch = await call(http, "POST", f"{honeyhive.url}/events/batch", {"events": [hh_event(), event]},
                       headers=AUTH)
    assert batch[:2] == (400, {"success": False, "error": error.replace("event.", "events[1].", 1)})
    assert honeyhive.received.count("events") == 0


async def test_honeyhive_refuses_bad_requests(honeyhive: Backend, http: aiohttp.ClientSession) -> None:
    url = f"{honeyhive.url}/events"
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        status, body, _ = await call(http, "POST", url, {"event": hh_event()}, headers=headers)
        assert status == 401 and body["success"] is False
    bad_update = await call(http, "PUT", url, {"metadata": {}}, headers=AUTH)
    assert bad_update[:2] == (400, {"success": False, "error": "event_id is required"})
    status, body, _ = await call(http, "POST", url, data=b"{", headers={**AUTH, **JSON})
    assert status == 400 and body["error"].startswith("invalid JSON")
    no_session = await call(http, "POST", f"{honeyhive.url}/session/start", {}, headers=AUTH)
    assert no_session[:2] == (400, {"success": False, "error": "session is required"})


# Voker ----------------------------------------------------------------------------


@pytest.fixture
async def voker(serve: Serve) -> Backend:
    return await serve("voker", key=KEY)


FINGERPRINT = {"language": "python", "language_version": "3.11.7", "system": "Linux",
               "voker_sdk_version": "0.0.15"}


def vk_event(fingerprint_id: str, **fields: Any) -> dict[str, Any]:
    properties = {"api": "openai-chat-completions",
                  "inputs": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]},
                  "output": {"id": "chatcmpl-1", "choices": [], "usage": {"prompt_tokens": 9}}}
    return {"event_name": "llm", "fingerprint_id": fingerprint_id, "properties": properties, **fields}


async def fingerprint(http: aiohttp.ClientSession, backend: Backend) -> str:
    url = f"{backend.url}/api/v1/fingerprints"
    status, body, _ = await call(http, "PUT", url, FINGERPRINT, headers=AUTH)
    assert status == 200
    return body["fingerprint_id"]


async def test_voker_fingerprint_then_event(voker: Backend, http: aiohttp.ClientSession) -> None:
    fingerprint_id = await fingerprint(http, voker)
    assert uuid.UUID(fingerprint_id).version == 4
    event = vk_event(fingerprint_id, session="sess-1", agent="support-bot", agent_version="v1", person="p-1")
    status, body, _ = await call(http, "POST", f"{voker.url}/api/v1/events", event, headers=AUTH)
    assert (status, body) == (200, {"success": True})
    assert voker.received.records("events") == [event]
    assert voker.received.records("fingerprints") == [FINGERPRINT]
    assert voker.received.get("agents", "support-bot")["agent_number"] == 1
    assert voker.received.get("agent_versions", "support-bot/v1")["agent_version_number"] == 1
    assert voker.received.get("people", "p-1")["person_id"] == "p-1"


async def test_voker_fingerprint_needs_its_fields(voker: Backend, http: aiohttp.ClientSession) -> None:
    status, body, _ = await call(http, "PUT", f"{voker.url}/api/v1/fingerprints", {"language": "python"},
                                 headers=AUTH)
    assert status == 422
    assert [(e["loc"], e["type"]) for e in body["detail"]] == [
        (["body", "language_version"], "missing"), (["body", "system"], "missing")]
    assert voker.received.count("fingerprints") == 0


async def test_voker_refuses_bad_events(voker: Backend, http: aiohttp.ClientSession) -> None:
    fingerprint_id = await fingerprint(http, voker)
    url = f"{voker.url}/api/v1/events"
    unknown = await call(http, "POST", url, vk_event(str(uuid.uuid4())), headers=AUTH)
    assert unknown[:2] == (404, {"detail": {"type": "fingerprint-not-found"}})

    valid = vk_event(fingerprint_id)
    cases = {
        ("body", "session"): vk_event(fingerprint_id, session=""),
        ("body", "properties", "api"): {**valid, "properties": {**valid["properties"], "api": "cohere"}},
        ("body", "properties", "output"): {**valid, "properties": {"api": "anthropic-messages", "inputs": {}}},
        ("body", "fingerprint_id"): vk_event("nope"),
    }
    for loc, event in cases.items():
        status, body, _ = await call(http, "POST", url, event, headers=AUTH)
        assert status == 422
        assert [tuple(e["loc"]) for e in body["detail"]] == [loc]
    assert voker.received.count("events") == 0


async def test_voker_requires_its_key(voker: Backend, http: aiohttp.ClientSession) -> None:
    url = f"{voker.url}/api/v1/fingerprints"
    assert (await call(http, "PUT", url, FINGERPRINT))[:2] == (401, {"detail": "Not authenticated"})
    wrong = await call(http, "PUT", url, FINGERPRINT, headers={"Authorization": "Bearer nope"})
    assert wrong[:2] == (401, {"detail": "Invalid API key"})


async def test_voker_agents_and_people(voker: Backend, http: aiohttp.ClientSession) -> None:
    api = f"{voker.url}/api/v1"
    missing = await call(http, "GET", f"{api}/agents/bot", headers=AUTH)
    assert missing[:2] == (404, {"detail": {"type": "agent-not-found"}})
    no_agent = await call(http, "PUT", f"{api}/agents/bot/agent-versions", {"agent_version_name": "v1"},
                          headers=AUTH)
    assert no_agent[:2] == (404, {"detail": {"type": "agent-not-found"}})

    _, agent, _ = await call(http, "PUT", f"{api}/agents", {"agent_name": "bot", "description": "d"},
                             headers=AUTH)
    assert (agent["agent_name"], agent["agent_number"], agent["deprecated_at"]) == ("bot", 1, None)
    assert agent["created_at"].endswith("+00:00")
    assert (await call(http, "GET", f"{api}/agents/bot", headers=AUTH))[1] == agent
    _, version, _ = await call(http, "PUT", f"{api}/agents/bot/agent-versions", {"agent_version_name": "v1"},
                               headers=AUTH)
    assert version["agent_version_number"] == 1
    assert (await call(http, "GET", f"{api}/agents/bot/agent-versions/v1", headers=AUTH))[1] == version
    unknown_version = await call(http, "GET", f"{api}/agents/bot/agent-versions/v9", headers=AUTH)
    assert unknown_version[:2] == (404, {"detail": {"type": "agent-version-not-found"}})

    _, person, _ = await call(http, "PUT", f"{api}/people", {"person_id": "p1", "properties": {"plan": "pro"}},
                              headers=AUTH)
    assert person["properties"] == {"plan": "pro"}
    _, updated, _ = await call(http, "PUT", f"{api}/people/p1", {"properties": {"plan": "free"}},
                               headers=AUTH)
    assert (await call(http, "GET", f"{api}/people/p1", headers=AUTH))[1] == updated
    assert updated["properties"] == {"plan": "free"}
    assert (await call(http, "GET", f"{api}/people/p2", headers=AUTH))[:2] == (
        404, {"detail": {"type": "person-not-found"}})


# OTLP -----------------------------------------------------------------------------

TRACE_ID = bytes.fromhex("8ad9b74a673d8446df533475295f218c")
SPAN_ID = bytes.fromhex("5a27b7c7175009f3")
PARENT_SPAN_ID = bytes.fromhex("40f8e8c92cf76931")


def attribute(key: str, value: AnyValue) -> KeyValue:
    return KeyValue(key=key, value=value)


def export_request() -> ExportTraceServiceRequest:
    span = Span(
        trace_id=TRACE_ID,
        span_id=SPAN_ID,
        parent_span_id=PARENT_SPAN_ID,
        name="openai.chat",
        kind=Span.SPAN_KIND_CLIENT,
        start_time_unix_nano=1_795_438_021_353_211_393,
        end_time_unix_nano=1_795_438_021_353_861_431,
        attributes=[
            attribute("gen_ai.request.model", AnyValue(string_value="gpt-4o")),
            attribute("gen_ai.usage.input_tokens", AnyValue(int_value=9)),
            attribute("temperature", AnyValue(double_value=0.2)),
            attribute("stream", AnyValue(bool_value=False)),
            attribute("tags", AnyValue(array_value=ArrayValue(values=[AnyValue(string_value="a")]))),
            attribute("meta", AnyValue(kvlist_value=KeyValueList(values=[
                attribute("k", AnyValue(string_value="v"))]))),
        ],
        status=Status(code=Status.STATUS_CODE_ERROR, message="boom"),
        events=[Span.Event(name="exception", time_unix_nano=5, attributes=[
            attribute("exception.message", AnyValue(string_value="boom"))])],
    )
    resource_spans = ResourceSpans(scope_spans=[ScopeSpans(spans=[span])])
    resource_spans.resource.attributes.append(attribute("service.name", AnyValue(string_value="app")))
    resource_spans.scope_spans[0].scope.name = "rosetta"
    return ExportTraceServiceRequest(resource_spans=[resource_spans])


EXPECTED_SPAN = {
    "trace_id": TRACE_ID.hex(),
    "span_id": SPAN_ID.hex(),
    "parent_span_id": PARENT_SPAN_ID.hex(),
    "name": "openai.chat",
    "kind": "SPAN_KIND_CLIENT",
    "start_ns": 1_795_438_021_353_211_393,
    "end_ns": 1_795_438_021_353_861_431,
    "attributes": {"gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 9, "temperature": 0.2,
                   "stream": False, "tags": ["a"], "meta": {"k": "v"}},
    "status_code": "STATUS_CODE_ERROR",
    "status_message": "boom",
    "events": [{"name": "exception", "time_ns": 5, "attributes": {"exception.message": "boom"}}],
    "resource": {"service.name": "app"},
    "scope": "rosetta",
}


def otlp_json() -> bytes:
    """The OTLP/JSON form of ``export_request``: hex ids, string enums, int64 as strings."""
    body = {"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "app"}}]},
        "scopeSpans": [{"scope": {"name": "rosetta"}, "spans": [{
            "traceId": TRACE_ID.hex(), "spanId": SPAN_ID.hex(), "parentSpanId": PARENT_SPAN_ID.hex(),
            "name": "openai.chat", "kind": "SPAN_KIND_CLIENT",
            "startTimeUnixNano": "1795438021353211393", "endTimeUnixNano": "1795438021353861431",
            "attributes": [
                {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}},
                {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "9"}},
                {"key": "temperature", "value": {"doubleValue": 0.2}},
                {"key": "stream", "value": {"boolValue": False}},
                {"key": "tags", "value": {"arrayValue": {"values": [{"stringValue": "a"}]}}},
                {"key": "meta", "value": {"kvlistValue": {"values": [
                    {"key": "k", "value": {"stringValue": "v"}}]}}},
            ],
            "events": [{"name": "exception", "timeUnixNano": "5",
                        "attributes": [{"key": "exception.message", "value": {"stringValue": "boom"}}]}],
            "status": {"code": "STATUS_CODE_ERROR", "message": "boom"},
        }]}],
    }]}
    return orjson.dumps(body)


@pytest.fixture
async def collector(serve: Serve) -> Backend:
    return await serve("otlp", key=None)


async def test_otlp_protobuf_round_trip(collector: Backend, http: aiohttp.ClientSession) -> None:
    body = gzip.compress(export_request().SerializeToString())
    headers = {**PROTOBUF, "Content-Encoding": "gzip"}
    async with http.post(f"{collector.url}/v1/traces", data=body, headers=headers) as response:
        assert response.status == 200
        assert response.content_type == "application/x-protobuf"
        ExportTraceServiceResponse().ParseFromString(await response.read())
    assert collector.received.records("spans") == [EXPECTED_SPAN]
    assert collector.received.records("exports") == [{"encoding": "protobuf", "spans": 1}]


async def test_otlp_json_round_trip(collector: Backend, http: aiohttp.ClientSession) -> None:
    answer = await call(http, "POST", f"{collector.url}/v1/traces", data=otlp_json(),
                        headers=JSON)
    assert answer[:2] == (200, {})
    assert collector.received.records("spans") == [EXPECTED_SPAN]


async def test_otlp_refuses_what_does_not_decode(collector: Backend, http: aiohttp.ClientSession) -> None:
    url = f"{collector.url}/v1/traces"
    bad_json = await call(http, "POST", url, data=b'{"resourceSpans": 5}', headers=JSON)
    assert bad_json[0] == 400 and bad_json[1]["code"] == 3
    bad_hex = otlp_json().replace(TRACE_ID.hex().encode(), b"zz")
    assert (await call(http, "POST", url, data=bad_hex, headers=JSON))[0] == 400
    bad_proto = await call(http, "POST", url, data=b"\xff\xff", headers=PROTOBUF)
    assert bad_proto[0] == 400
    assert (await call(http, "POST", url, data=b"x", headers={"Content-Type": "text/plain"}))[0] == 415
    assert collector.received.count("spans") == 0


async def test_otlp_key_and_honeyhive_route(serve: Serve, http: aiohttp.ClientSession) -> None:
    gated = await serve("otlp", key=KEY)
    denied = await call(http, "POST", f"{gated.url}/v1/traces", data=otlp_json(), headers=JSON)
    assert denied[:2] == (401, {"code": 16, "message": "Unauthenticated"})
    honeyhive = await serve("honeyhive", key=KEY)
    answer = await call(http, "POST", f"{honeyhive.url}/opentelemetry/v1/traces", data=otlp_json(),
                        headers={**JSON, **AUTH})
    assert answer[:2] == (200, {})
    assert honeyhive.received.records("spans") == [EXPECTED_SPAN]


# Faults ---------------------------------------------------------------------------


async def test_status_fault_for_n_requests_then_healthy(voker: Backend, http: aiohttp.ClientSession) -> None:
    voker.faults.set(status=503, times=2)
    url = f"{voker.url}/api/v1/fingerprints"
    statuses = [(await call(http, "PUT", url, FINGERPRINT, headers=AUTH))[0] for _ in range(3)]
    assert statuses == [503, 503, 200]
    assert (voker.faults.requests, voker.faults.faulted) == (3, 2)
    assert voker.received.count("fingerprints") == 1


async def test_retry_after_fault(honeyhive: Backend, http: aiohttp.ClientSession) -> None:
    honeyhive.faults.set(retry_after=7)
    status, _, response = await call(http, "POST", f"{honeyhive.url}/events", {"event": hh_event()},
                                     headers=AUTH)
    assert (status, response.headers["Retry-After"]) == (429, "7")
    assert honeyhive.received.count("events") == 0


async def test_delay_fault_outlasts_a_client_timeout(lunary: Backend, http: aiohttp.ClientSession) -> None:
    lunary.faults.set(delay=30, times=1)
    with pytest.raises(asyncio.TimeoutError):
        await ingest_with_timeout(http, lunary, 0.2)
    assert await ingest_with_timeout(http, lunary, 30) == 200
    assert lunary.faults.faulted == 1


async def ingest_with_timeout(http: aiohttp.ClientSession, backend: Backend, seconds: float) -> int:
    body = {"events": [llm("start", str(uuid.uuid4()), "2026-11-23T13:03:45Z")]}
    async with http.post(f"{backend.url}/v1/runs/ingest", json=body, headers=LUNARY_AUTH,
                         timeout=aiohttp.ClientTimeout(total=seconds)) as response:
        return response.status


async def test_down_fault_drops_the_connection(lunary: Backend, http: aiohttp.ClientSession) -> None:
    lunary.faults.set(down=True, times=1)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await ingest_with_timeout(http, lunary, 30)
    assert await ingest_with_timeout(http, lunary, 30) == 200


async def test_reject_fault_is_permanent_per_dialect(serve: Serve, http: aiohttp.ClientSession) -> None:
    honeyhive = await serve("honeyhive", key=KEY)
    honeyhive.faults.set(reject=True)
    rejected = await call(http, "POST", f"{honeyhive.url}/events", {"event": hh_event()}, headers=AUTH)
    assert rejected[:2] == (400, {"success": False, "error": "event rejected"})

    voker = await serve("voker", key=KEY)
    fingerprint_id = await fingerprint(http, voker)
    voker.faults.set(reject=True)
    status, body, _ = await call(http, "POST", f"{voker.url}/api/v1/events", vk_event(fingerprint_id),
                                 headers=AUTH)
    assert status == 422 and body["detail"][0]["msg"] == "Event rejected"

    collector = await serve("otlp", key=None)
    collector.faults.set(reject=True)
    refused = await call(http, "POST", f"{collector.url}/v1/traces", data=otlp_json(),
                         headers=JSON)
    assert refused[0] == 400
    delivered = ((honeyhive, "events"), (voker, "events"), (collector, "spans"))
    assert sum(backend.received.count(kind) for backend, kind in delivered) == 0


async def test_stop_and_start_keep_the_port(lunary: Backend, http: aiohttp.ClientSession) -> None:
    url = lunary.url
    await lunary.stop()
    with pytest.raises(aiohttp.ClientConnectionError):
        await ingest_with_timeout(http, lunary, 30)
    await lunary.start()
    assert lunary.url == url
    assert await ingest_with_timeout(http, lunary, 30) == 200


async def test_control_routes(lunary: Backend, http: aiohttp.ClientSession) -> None:
    control = f"{lunary.url}/_control"
    assert (await call(http, "POST", control, {"stauts": 503}))[0] == 400
    status, state, _ = await call(http, "POST", control, {"status": 500, "times": 1})
    assert (status, state["status"], state["times_left"]) == (200, 500, 1)
    assert await ingest_with_timeout(http, lunary, 30) == 500
    assert await ingest_with_timeout(http, lunary, 30) == 200

    _, snapshot, _ = await call(http, "GET", f"{lunary.url}/_received")
    assert snapshot["counts"] == {"events": 1}
    assert len(snapshot["records"]["events"]) == 1 and len(snapshot["state"]["runs"]) == 1
    assert (snapshot["faults"]["requests"], snapshot["faults"]["faulted"]) == (2, 1)
    _, counts_only, _ = await call(http, "GET", f"{lunary.url}/_received?records=0")
    assert "records" not in counts_only

    assert (await call(http, "POST", f"{lunary.url}/_reset"))[0] == 200
    assert lunary.received.counts() == {} and lunary.faults.requests == 0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_serve_runs_a_simulator_as_a_process(http: aiohttp.ClientSession) -> None:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.backends.serve", "--dialect", "lunary", "--port", str(port),
        "--key", LUNARY_KEY, cwd=ROOT, stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        banner = await asyncio.wait_for(process.stdout.readline(), 30)
        assert f"http://127.0.0.1:{port}".encode() in banner
        url = f"http://127.0.0.1:{port}"
        body = {"events": [llm("start", RUN, "2026-11-23T13:03:45Z")]}
        results = await call(http, "POST", f"{url}/v1/runs/ingest", body, headers=LUNARY_AUTH)
        assert results[:2] == (200, {"results": [{"id": RUN, "success": True}]})
        _, snapshot, _ = await call(http, "GET", f"{url}/_received?records=0")
        assert snapshot["counts"] == {"events": 1}
    finally:
        process.terminate()
        await process.wait()
