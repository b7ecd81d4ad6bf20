"""Bad input at every ingress route is answered in the dialect's own error shape.

The SDKs read these answers: Lunary's per-event ``results``, LLMonitor's bare array,
HoneyHive's JSON 401, Voker's ``{"detail": {"type": ...}}``. One in-process app
(memory store, nothing forwarded) with a keyed tenant and small body limits; each case
is one request and the answer the vendor's server gives (or, where the vendor gives a
500, the 4xx a client should get).
"""
import gzip
from datetime import datetime
from typing import Any

import orjson
import pytest

from gateway.app import build_app
from gateway.config import Backend, Config, Limits, Tenant
from gateway.ingress.state import STATE

KEY = "key-acme"
AUTH = {"Authorization": f"Bearer {KEY}"}
MAX_BODY = 4096
MAX_INFLATED = 16384
STAMP = "2026-11-23T13:03:45.000Z"


def start(run_id: str = "run-1", **fields: Any) -> dict:
    return {"type": "llm", "event": "start", "runId": run_id, "name": "gpt-4o", "timestamp": STAMP,
            "input": [{"role": "user", "text": "Hi"}], **fields}


def hh_event(**fields: Any) -> dict:
    return {"event_type": "model", "event_name": "openai.chat", "session_id": "s-1",
            "start_time": 1700000000000, "duration": 5, **fields}


def vk_event(fingerprint_id: str, **fields: Any) -> dict:
    return {"event_name": "llm", "fingerprint_id": fingerprint_id, "session": "vk-s-1",
            "properties": {"api": "openai-chat-completions",
                           "inputs": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]},
                           "output": {"id": "c-1", "choices": [{"message": {"role": "assistant", "content": "Hey"}}]}},
            **fields}


@pytest.fixture
async def client(aiohttp_client, tmp_path):
    config = Config(
        tenants=[Tenant(name="acme", keys=[KEY], backends=["archive"])],
        backends=[Backend(name="archive", dialect="jsonl", path=str(tmp_path / "events.jsonl"))],
        limits=Limits(max_body_bytes=MAX_BODY, max_decompressed_bytes=MAX_INFLATED),
    )
    return await aiohttp_client(build_app(config, forward=False))


async def call(client, method: str, path: str, body: Any = None, headers: dict | None = None,
               raw: bytes | None = None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json", **(headers or {})}
    data = raw if raw is not None else (None if body is None else orjson.dumps(body))
    response = await client.request(method, path, data=data, headers=headers)
    assert response.content_type == "application/json", await response.text()
    return response.status, orjson.loads(await response.read())


def needs(field: str):
    """A check that the error message names the offending field."""
    return lambda body: field in orjson.dumps(body).decode()


# (case id, method, path, headers, body, status, expected body or a check of it)
CASES = [
    # Lunary /v1/runs/ingest
    ("lunary-malformed-json", "POST", "/v1/runs/ingest", AUTH, b'{"events":[', 400, needs("invalid JSON")),
    ("lunary-no-key", "POST", "/v1/runs/ingest", {}, {"events": [start()]}, 402,
     {"message": "Incorrect project id format"}),
    ("lunary-unknown-key", "POST", "/v1/runs/ingest", {"Authorization": "Bearer nope"}, {"events": []}, 401,
     {"message": "Invalid API key"}),
    ("lunary-unknown-x-api-key", "POST", "/v1/runs/ingest", {"X-API-Key": "nope"}, {"events": []}, 401,
     {"message": "Invalid API key"}),
    ("lunary-x-api-key", "POST", "/v1/runs/ingest", {"X-API-Key": KEY}, {"events": start()}, 200,
     {"results": [{"id": "run-1", "success": True}]}),
    ("lunary-empty-events", "POST", "/v1/runs/ingest", AUTH, {"events": []}, 200, {"results": []}),
    ("lunary-missing-events", "POST", "/v1/runs/ingest", AUTH, {"foo": 1}, 400,
     {"message": "Missing events payload."}),
    ("lunary-events-not-array", "POST", "/v1/runs/ingest", AUTH, {"events": "x"}, 400,
     {"message": "Missing events payload."}),
    ("lunary-bare-array-body", "POST", "/v1/runs/ingest", AUTH, [start()], 400,
     {"message": "Missing events payload."}),
    ("lunary-wrong-content-type", "POST", "/v1/runs/ingest", {**AUTH, "Content-Type": "text/plain"},
     {"events": []}, 415, needs("Content-Type")),
    ("lunary-bad-event-fails-alone", "POST", "/v1/runs/ingest", AUTH,
     {"events": [start("ok-1"), {"event": "start", "runId": "no-type"}, start("ok-2")]}, 200,
     {"results": [{"id": "ok-1", "success": True},
                  {"id": "no-type", "success": False, "error": "events[1].type: required on a start event"},
                  {"id": "ok-2", "success": True}]}),
    ("lunary-wrong-types", "POST", "/v1/runs/ingest", AUTH,
     {"events": [start({"not": "a string"}), start("r-2", tokensUsage={"prompt": -1}),
                 start("r-3", timestamp={"at": 1}), start("r-4", tags=[1]), 7]}, 200,
     lambda body: [(r["success"], r["error"].split(":")[0]) for r in body["results"]] == [
         (False, "events[0].runId"), (False, "events[1].tokensUsage.prompt"),
         (False, "events[2].timestamp"), (False, "events[3].tags"), (False, "events[4]")]),
    ("lunary-chat-without-message", "POST", "/v1/runs/ingest", AUTH,
     {"events": [{"type": "thread", "event": "chat", "runId": "m-1", "parentRunId": "t-1"}]}, 200,
     {"results": [{"id": "m-1", "success": False, "error": "events[0].message: required on a chat event"}]}),
    ("lunary-unknown-event", "POST", "/v1/runs/ingest", AUTH,
     {"events": [{"type": "tool", "event": "weird", "runId": "w-1"}]}, 200,
     {"results": [{"id": "w-1", "success": False, "error": "events[0].event: unknown event 'weird'"}]}),
    ("lunary-oversized", "POST", "/v1/runs/ingest", AUTH,
     {"events": [start(input="x" * MAX_BODY)]}, 413, needs("exceeds")),
    ("lunary-unknown-encoding", "POST", "/v1/runs/ingest", {**AUTH, "Content-Encoding": "br"},
     {"events": []}, 415, needs("Content-Encoding")),
    ("lunary-bad-gzip", "POST", "/v1/runs/ingest", {**AUTH, "Content-Encoding": "gzip"},
     b"not gzip at all", 400, needs("gzip")),
    ("lunary-gzip", "POST", "/v1/runs/ingest", {**AUTH, "Content-Encoding": "gzip"},
     gzip.compress(orjson.dumps({"events": [start("gz-1", input="y" * (MAX_BODY * 2))]})), 200,
     {"results": [{"id": "gz-1", "success": True}]}),
    ("lunary-gzip-bomb", "POST", "/v1/runs/ingest", {**AUTH, "Content-Encoding": "gzip"},
     gzip.compress(b'{"events": [' + b" " * 2_000_000 + b"]}"), 413, needs("decompressed")),
    # LLMonitor v0 /api/report: the app id rides in each event; answers are a bare array
    ("report-bare-array", "POST", "/api/report", {},
     {"events": [start("v0-1", app=KEY), {**start("v0-1", app=KEY), "event": "end"}]}, 200,
     [{"id": "v0-1", "success": True}, {"id": "v0-1", "success": True}]),
    ("report-missing-events", "POST", "/api/report", {}, {"foo": 1}, 400, {"message": "Missing events payload."}),
    ("report-empty-events", "POST", "/api/report", {}, {"events": []}, 400, {"message": "Missing events payload."}),
    ("report-single-object", "POST", "/api/report", {}, {"events": start(app=KEY)}, 400,
     {"message": "Missing events payload."}),
    ("report-unknown-app", "POST", "/api/report", {}, {"events": [start(app="nope")]}, 401,
     {"message": "This project does not exist"}),
    ("report-no-app", "POST", "/api/report", {}, {"events": [start()]}, 402,
     {"message": "Incorrect project id format"}),
    ("report-unknown-bearer", "POST", "/api/report", {"Authorization": "Bearer nope"},
     {"events": [start(app=KEY)]}, 401, {"message": "Invalid API key"}),
    ("report-bad-event-fails-alone", "POST", "/api/report", {},
     {"events": [start("v0-2", app=KEY), start("v0-3", app=KEY, userProps="nope")]}, 200,
     [{"id": "v0-2", "success": True},
      {"id": "v0-3", "success": False, "error": "events[1].userProps: expected an object, got str"}]),
    ("report-malformed-json", "POST", "/api/report", {}, b"{", 400, needs("invalid JSON")),
    # HoneyHive: JSON everywhere, 401 for a missing or unknown key
    ("hh-no-key", "POST", "/events", {}, {"event": hh_event()}, 401,
     {"success": False, "error": "Invalid API key"}),
    ("hh-unknown-key-session", "POST", "/session/start", {"Authorization": "Bearer nope"},
     {"session": {"session_name": "s"}}, 401, {"success": False, "error": "Invalid API key"}),
    ("hh-unknown-key-update", "PUT", "/events", {"Authorization": "Bearer nope"}, {"event_id": "e"}, 401,
     {"success": False, "error": "Invalid API key"}),
    ("hh-unknown-key-batch", "POST", "/events/batch", {"Authorization": "Token " + KEY}, {"events": []}, 401,
     {"success": False, "error": "Invalid API key"}),
    ("hh-malformed-json", "POST", "/events", AUTH, b"{]", 400, needs("invalid JSON")),
    ("hh-missing-event", "POST", "/events", AUTH, {"events": [hh_event()]}, 400,
     {"success": False, "error": "event: required: an object"}),
    ("hh-missing-event-name", "POST", "/events", AUTH, {"event": hh_event(event_name=None)}, 400,
     {"success": False, "error": "event.event_name: required"}),
    ("hh-bad-event-type", "POST", "/events", AUTH, {"event": hh_event(event_type="widget")}, 400,
     {"success": False, "error": "event.event_type: required: one of model, tool, chain, session"}),
    ("hh-wrong-time-type", "POST", "/events", AUTH, {"event": hh_event(start_time="yesterday")}, 400,
     {"success": False, "error": "event.start_time: expected epoch milliseconds (a number), got str"}),
    ("hh-wrong-inputs-type", "POST", "/events", AUTH, {"event": hh_event(inputs=["a"])}, 400,
     {"success": False, "error": "event.inputs: expected an object"}),
    ("hh-batch-bad-event", "POST", "/events/batch", AUTH,
     {"events": [hh_event(), hh_event(event_name=None)]}, 400,
     {"success": False, "error": "events[1].event_name: required"}),
    ("hh-batch-not-array", "POST", "/events/batch", AUTH, {"events": {}}, 400,
     {"success": False, "error": "events: required: an array of events"}),
    ("hh-session-missing", "POST", "/session/start", AUTH, {"session_name": "s"}, 400,
     {"success": False, "error": "session: required: an object"}),
    ("hh-update-missing-event-id", "PUT", "/events", AUTH, {"feedback": {"liked": True}}, 400,
     {"success": False, "error": "event_id: required: a string"}),
    ("hh-update-wrong-feedback", "PUT", "/events", AUTH, {"event_id": "e-1", "feedback": "good"}, 400,
     {"success": False, "error": "feedback: expected an object"}),
    ("hh-oversized", "POST", "/events", AUTH, {"event": hh_event(inputs={"q": "x" * MAX_BODY})}, 413,
     lambda body: body["success"] is False and "exceeds" in body["error"]),
    ("hh-wrong-content-type", "POST", "/events", {**AUTH, "Content-Type": "application/xml"},
     {"event": hh_event()}, 415, lambda body: body["success"] is False),
    # Voker: FastAPI shapes
    ("vk-no-key", "PUT", "/api/v1/fingerprints", {}, {"language": "python"}, 401,
     {"detail": "Invalid API key"}),
    ("vk-unknown-key-event", "POST", "/api/v1/events", {"Authorization": "Bearer nope"}, vk_event("f"), 401,
     {"detail": "Invalid API key"}),
    ("vk-fingerprint-missing-field", "PUT", "/api/v1/fingerprints", AUTH,
     {"language": "python", "language_version": "3.11"}, 422,
     {"detail": [{"loc": ["body", "system"], "msg": "required: a non-empty string", "type": "value_error"}]}),
    ("vk-unknown-fingerprint", "POST", "/api/v1/events", AUTH, vk_event("no-such-fingerprint"), 404,
     {"detail": {"type": "fingerprint-not-found"}}),
    ("vk-missing-properties", "POST", "/api/v1/events", AUTH, vk_event("f", properties=None), 422,
     {"detail": [{"loc": ["body", "properties"], "msg": "required: an object", "type": "value_error"}]}),
    ("vk-unknown-api", "POST", "/api/v1/events", AUTH,
     vk_event("f", properties={"api": "cohere", "inputs": {}, "output": {}}), 422,
     lambda body: body["detail"][0]["loc"] == ["body", "properties", "api"]),
    ("vk-person-missing-id", "PUT", "/api/v1/people", AUTH, {"properties": {}}, 422,
     {"detail": [{"loc": ["body", "person_id"], "msg": "required: a non-empty string", "type": "value_error"}]}),
    ("vk-agent-missing-name", "PUT", "/api/v1/agents", AUTH, {"description": "d"}, 422,
     lambda body: body["detail"][0]["loc"] == ["body", "agent_name"]),
    ("vk-unknown-person", "GET", "/api/v1/people/ghost", AUTH, None, 404, {"detail": {"type": "person-not-found"}}),
    ("vk-update-unknown-person", "PUT", "/api/v1/people/ghost", AUTH, {"properties": {}}, 404,
     {"detail": {"type": "person-not-found"}}),
    ("vk-unknown-agent", "GET", "/api/v1/agents/ghost", AUTH, None, 404, {"detail": {"type": "agent-not-found"}}),
    ("vk-version-of-unknown-agent", "PUT", "/api/v1/agents/ghost/agent-versions", AUTH,
     {"agent_version_name": "v1"}, 404, {"detail": {"type": "agent-not-found"}}),
    ("vk-get-version-of-unknown-agent", "GET", "/api/v1/agents/ghost/agent-versions/v1", AUTH, None, 404,
     {"detail": {"type": "agent-not-found"}}),
    ("vk-malformed-json", "PUT", "/api/v1/people", AUTH, b"{", 400, needs("invalid JSON")),
]


@pytest.mark.parametrize(("method", "path", "headers", "body", "status", "expected"),
                         [pytest.param(*case[1:], id=case[0]) for case in CASES])
async def test_bad_input_answered_in_dialect_shape(client, method, path, headers, body, status, expected):
    raw = body if isinstance(body, bytes) else None
    got_status, got = await call(client, method, path, None if raw else body, headers, raw)
    assert got_status == status, got
    if callable(expected):
        assert expected(got), got
    else:
        assert got == expected


async def test_refused_requests_queue_nothing(client):
    """A request refused as a whole leaves no event behind; a batch's bad event is the only one dropped."""
    pipeline = client.app[STATE].pipeline
    await call(client, "POST", "/events/batch", {"events": [hh_event(), hh_event(event_type=7)]}, AUTH)
    await call(client, "POST", "/api/report", {"events": [start("x", app="nope")]})
    assert pipeline.counters.accepted == 0
    await call(client, "POST", "/v1/runs/ingest", {"events": [start("a"), {"event": "start"}]}, AUTH)
    assert pipeline.counters.accepted == 1


async def test_a_full_queue_refuses_before_reading_the_body(aiohttp_client, tmp_path):
    """Once a backend every event goes to is full, each dialect answers its backpressure
    status at once: a body that would fail to parse is refused as full, not as malformed
    (it was never read). Room made by delivery lets requests in again."""
    config = Config(tenants=[Tenant(name="acme", keys=[KEY], backends=["archive"])],
                    backends=[Backend(name="archive", dialect="jsonl", path=str(tmp_path / "e.jsonl"), max_queue=2)])
    client = await aiohttp_client(build_app(config, forward=False))
    assert (await call(client, "POST", "/v1/runs/ingest", {"events": [start("a"), start("b")]}, AUTH))[0] == 200
    garbage = b'{"events": ['
    for path, status, check in (("/v1/runs/ingest", 429, needs("full")), ("/events/batch", 429, needs("full")),
                                ("/api/v1/events", 503, needs("full")), ("/v1/traces", 503, lambda b: b["code"] == 14)):
        response = await client.post(path, data=garbage, headers={"Content-Type": "application/json", **AUTH})
        body = orjson.loads(await response.read())
        assert response.status == status and check(body), (path, response.status, body)
        assert int(response.headers["Retry-After"]) >= 1
    store = client.app[STATE].store
    assert await store.depth("archive") == 2
    await store.ack("archive", await store.read("archive", "test", 10, 0.1, None))
    status, body = await call(client, "POST", "/v1/runs/ingest", raw=garbage, headers=AUTH)
    assert status == 400 and needs("invalid JSON")(body)
    assert (await call(client, "POST", "/v1/runs/ingest", {"events": [start("c")]}, AUTH))[0] == 200


async def test_llmonitor_requeued_batch_is_flattened_and_deduplicated(client):
    """The v0 SDK re-queues a failed batch as one element: ``{"events": [[e1, e2], e3]}``."""
    first, second, third = start("rq-1", app=KEY), {**start("rq-1", app=KEY), "event": "end"}, start("rq-2", app=KEY)
    status, body = await call(client, "POST", "/api/report", {"events": [first, second]})
    assert status == 200 and len(body) == 2
    status, body = await call(client, "POST", "/api/report", {"events": [[first, second], third]})
    assert status == 200
    assert body == [{"id": "rq-1", "success": True}, {"id": "rq-1", "success": True}, {"id": "rq-2", "success": True}]
    counters = client.app[STATE].pipeline.counters
    assert (counters.accepted, counters.duplicates) == (3, 2)


async def test_voker_empty_session_is_the_sdk_422(client):
    _, fingerprint = await call(client, "PUT", "/api/v1/fingerprints",
                                {"language": "python", "language_version": "3.11", "system": "Linux"}, AUTH)
    status, body = await call(client, "POST", "/api/v1/events", vk_event(fingerprint["fingerprint_id"], session=""), AUTH)
    assert (status, body) == (422, {"detail": {"type": "session-id-empty"}})
    status, body = await call(client, "POST", "/api/v1/events", vk_event(fingerprint["fingerprint_id"]), AUTH)
    assert status == 200 and body["success"] is True and body["event_id"]


def _iso(value: str) -> datetime:
    """As the Voker SDK parses ``created_at``/``deprecated_at``."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def test_voker_people_round_trip(client):
    status, created = await call(client, "PUT", "/api/v1/people", {"person_id": "p-1", "properties": {"plan": "pro"}}, AUTH)
    assert status == 200 and created["person_id"] == "p-1" and created["properties"] == {"plan": "pro"}
    _iso(created["created_at"])
    status, updated = await call(client, "PUT", "/api/v1/people/p-1", {"properties": {"plan": "team"}}, AUTH)
    assert status == 200 and updated == {**created, "properties": {"plan": "team"}}
    assert await call(client, "GET", "/api/v1/people/p-1", headers=AUTH) == (200, updated)
    status, body = await call(client, "PUT", "/api/v1/people/p-1", {"properties": "team"}, AUTH)
    assert status == 422 and body["detail"][0]["loc"] == ["body", "properties"]
    status, body = await call(client, "PUT", "/api/v1/people/p-1", {"props": {}}, AUTH)
    assert status == 422 and body["detail"][0]["loc"] == ["body", "properties"]


async def test_voker_agents_and_versions_round_trip(client):
    status, agent = await call(client, "PUT", "/api/v1/agents", {"agent_name": "weather", "description": "d"}, AUTH)
    assert status == 200
    assert (agent["agent_name"], agent["description"], agent["agent_number"], agent["deprecated_at"]) == ("weather", "d", 1, None)
    _iso(agent["created_at"])
    _, other = await call(client, "PUT", "/api/v1/agents", {"agent_name": "support"}, AUTH)
    assert other["agent_number"] == 2 and other["description"] is None
    status, again = await call(client, "PUT", "/api/v1/agents", {"agent_name": "weather", "description": "d2"}, AUTH)
    assert status == 200 and again == {**agent, "description": "d2"}
    assert await call(client, "GET", "/api/v1/agents/weather", headers=AUTH) == (200, again)

    path = "/api/v1/agents/weather/agent-versions"
    status, version = await call(client, "PUT", path, {"agent_version_name": "v1"}, AUTH)
    assert status == 200
    assert (version["agent_version_name"], version["agent_version_number"], version["deprecated_at"]) == ("v1", 1, None)
    _iso(version["created_at"])
    _, second = await call(client, "PUT", path, {"agent_version_name": "v2", "description": "next"}, AUTH)
    assert second["agent_version_number"] == 2
    assert await call(client, "GET", f"{path}/v1", headers=AUTH) == (200, version)
    assert await call(client, "GET", f"{path}/v9", headers=AUTH) == (404, {"detail": {"type": "agent-version-not-found"}})
    status, body = await call(client, "PUT", path, {"description": "no name"}, AUTH)
    assert status == 422 and body["detail"][0]["loc"] == ["body", "agent_version_name"]
    _, other_version = await call(client, "PUT", "/api/v1/agents/support/agent-versions", {"agent_version_name": "v1"}, AUTH)
    assert other_version["agent_version_number"] == 1


async def test_queued_events_count_as_their_share_of_the_body_as_read(client):
    """The memory store bounds a queue in bytes; ingress hands it the body's size after
    decompression, and the request's events share it."""
    body = orjson.dumps({"events": [start("a"), start("b"), start("c")]})
    status, _ = await call(client, "POST", "/v1/runs/ingest", raw=gzip.compress(body),
                           headers={**AUTH, "Content-Encoding": "gzip"})
    assert status == 200
    (entry,) = await client.app[STATE].store.read("archive", "test", 10, 0.1, None)
    assert len(entry.events) == 3 and entry.size == len(body) // 3 * 3
