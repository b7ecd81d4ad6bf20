"""The drivers really drive the real SDKs: each run against the recording server.

For every driver, the requests the recorder saw must match the closing JSON line the
driver printed (paths, auth header, ids, kinds, parents), and the JSON line must account
for everything that was sent. The failure tests prove that the drivers' error capture
turns each SDK's own way of reporting a failed delivery into a non-zero exit — and pin
down the deliveries the SDKs lose without a word.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from .recording_server import Answer, Recorded, RecordingServer
from .runner import DriverError, driver_names, run_driver

pytestmark = pytest.mark.sdk

KEY = "key-conformance-123"
BEARER = f"Bearer {KEY}"
Recorder = tuple[RecordingServer, str]


@pytest.fixture
async def recorder(aiohttp_server: Any) -> Recorder:
    server = RecordingServer()
    http = await aiohttp_server(server.make_app(), host="127.0.0.1")
    return server, str(http.make_url("")).rstrip("/")


async def drive(name: str, url: str, scenario: str | None = None) -> dict[str, Any]:
    """Run a driver off the event loop, which keeps serving the recorder meanwhile."""
    return await asyncio.to_thread(run_driver, name, url, KEY, scenario)


def stream_events(requests: list[Recorded]) -> list[dict[str, Any]]:
    return [event for r in requests for event in r.body["events"]]


def assert_stream_runs(runs: list[dict[str, Any]], events: list[dict[str, Any]]) -> None:
    """LLMonitor/Lunary: each reported run was sent with its phases, kind and links."""
    assert {e["runId"] for e in events} == {run["run_id"] for run in runs}
    for run in runs:
        sent = [e for e in events if e["runId"] == run["run_id"]]
        assert [e["event"] for e in sent] == run["phases"], run
        first = sent[0]
        assert first["type"] == run["kind"], run
        assert first["parentRunId"] == run.get("parent_run_id"), run
        for field, key in [("name", "name"), ("user_id", "userId"), ("tags", "tags")]:
            if field in run:
                assert first[key] == run[field], (field, run)
        if "feedback" in run:
            assert sent[-1]["feedback"] == run["feedback"]
        if "role" in run:
            assert first["message"]["role"] == run["role"]


def otlp_spans(requests: list[Recorded]) -> dict[str, dict[str, Any]]:
    return {
        span["spanId"]: span
        for r in requests
        for resource in r.body["resourceSpans"]
        for scope in resource["scopeSpans"]
        for span in scope["spans"]
    }


def attributes(span: dict[str, Any]) -> dict[str, Any]:
    """Attribute values by key; an AnyValue with nothing set (protobuf ``None``) is None."""
    return {a["key"]: next(iter(a["value"].values()), None) for a in span.get("attributes", [])}


async def test_every_driver_is_covered() -> None:
    assert driver_names() == [
        "honeyhive", "honeyhive_logger", "llmonitor", "lunary", "otel", "voker"]


async def test_llmonitor(recorder: Recorder) -> None:
    server, url = recorder
    result = await drive("llmonitor", url)

    assert result["scenarios"] == ["llm", "agent", "error", "users"]
    reports = server.matching("POST", "/api/report")
    assert reports and len(reports) == len(server.requests)
    assert not any("Authorization" in r.headers for r in reports)
    events = stream_events(reports)
    assert {e["app"] for e in events} == {KEY}
    assert {e["runtime"] for e in events} == {"llmonitor-py"}
    assert_stream_runs(result["runs"], events)
    llm_start = next(e for e in events if e["type"] == "llm" and e["event"] == "start")
    assert llm_start["input"][1] == {"role": "user", "text": "Hi"}
    assert llm_start["userProps"] == {"name": "Ada", "plan": "pro"}
    llm_end = next(e for e in events if e["runId"] == llm_start["runId"] and e["event"] == "end")
    assert llm_end["output"] == {"role": "ai", "text": "Hello!"}
    assert llm_end["tokensUsage"] == {"prompt": 12, "completion": 3}


async def test_lunary(recorder: Recorder) -> None:
    server, url = recorder
    result = await drive("lunary", url)

    assert result["scenarios"] == ["llm", "agent", "error", "feedback", "thread", "users"]
    ingests = server.matching("POST", "/v1/runs/ingest")
    assert ingests and len(ingests) == len(server.requests)
    assert {r.headers["Authorization"] for r in ingests} == {BEARER}
    events = stream_events(ingests)
    assert {e["runtime"] for e in events} == {"lunary-py"}
    assert_stream_runs(result["runs"], events)
    feedback = next(e for e in events if e["event"] == "feedback")
    assert feedback["type"] is None
    chats = [e for e in events if e["type"] == "thread"]
    assert [e["message"]["role"] for e in chats] == ["user", "assistant", "user", "assistant"]
    assert {e["threadTags"][0] for e in chats} == {"support"}
    llm_start = next(e for e in events if e["type"] == "llm" and e["event"] == "start")
    assert llm_start["params"] == {"temperature": 0.2, "max_tokens": 64}
    assert llm_start["input"][1] == {"role": "user", "content": "Hi"}


async def test_honeyhive_client(recorder: Recorder) -> None:
    server, url = recorder
    result = await drive("honeyhive", url, "client")

    assert [(r.method, r.path) for r in server.requests] == [
        ("POST", "/session/start"), ("POST", "/events"), ("POST", "/events/batch"),
        ("POST", "/events"), ("PUT", "/events"), ("POST", "/events"), ("PUT", "/events"),
    ]
    assert {r.headers["Authorization"] for r in server.requests} == {BEARER}
    assert {r.headers["hh-client-version"] for r in server.requests} == {"1.7.0"}
    session_run, *event_runs = result["runs"]
    started = server.requests[0].body["session"]
    assert started["session_id"] == session_run["run_id"]
    assert started["user_properties"] == session_run["user_properties"]
    posted = [r.body["event"] for r in server.matching("POST", "/events")]
    sent = {e["event_id"]: e for e in posted}
    for batch in server.matching("POST", "/events/batch"):
        sent |= {e["event_id"]: e for e in batch.body["events"]}
    assert set(sent) == {run["run_id"] for run in event_runs}
    for run in event_runs:
        event = sent[run["run_id"]]
        assert event["event_type"] == run["kind"]
        assert event["session_id"] == session_run["session_id"]
        assert event["parent_id"] == run["parent_run_id"]
        assert event.get("error") == run.get("error")
    updates = {r.body["event_id"]: r.body for r in server.matching("PUT", "/events")}
    assert set(updates) == {run["run_id"] for run in result["runs"] if "update" in run["phases"]}
    feedback_run = next(run for run in event_runs if "feedback" in run)
    assert updates[feedback_run["run_id"]]["feedback"] == feedback_run["feedback"]


@pytest.mark.parametrize(
    ("scenario", "content_type"),
    [("tracer", "application/json"), ("tracer_protobuf", "application/x-protobuf")],
)
async def test_honeyhive_tracer(
    recorder: Recorder, scenario: str, content_type: str
) -> None:
    server, url = recorder
    result = await drive("honeyhive", url, scenario)

    session_run, *span_runs = result["runs"]
    session_id = session_run["session_id"]
    (start,) = server.matching("POST", "/session/start")
    assert start.body["session"]["session_name"] == f"conformance-{scenario}"
    (update,) = server.matching("PUT", "/events")
    assert update.body["event_id"] == session_id
    assert update.body["user_properties"] == session_run["user_properties"]
    assert update.body["feedback"] == session_run["feedback"]
    traces = server.matching("POST", "/opentelemetry/v1/traces")
    assert traces and {r.headers["Content-Type"] for r in traces} == {content_type}
    assert {r.headers["Authorization"] for r in server.requests} == {BEARER}
    spans = otlp_spans(traces)
    for run in span_runs:
        span = spans[run["run_id"]]
        attrs = attributes(span)
        assert span["name"] == run["name"]
        assert span["traceId"] == run["trace_id"]
        assert (span.get("parentSpanId") or None) == run.get("parent_run_id")
        assert attrs["honeyhive.session_id"] == session_id
        assert attrs["honeyhive_event_type"] == run["kind"]
        if run["kind"] == "model":
            assert attrs["honeyhive_config.model"] == "gpt-4o"
            assert attrs["honeyhive_inputs.chat_history.0.role"] == "user"
        if "error" in run:
            assert span["status"]["code"] == "STATUS_CODE_ERROR"
        if "feedback" in run:
            assert attrs["honeyhive_feedback.liked"] is True


async def test_honeyhive_logger(recorder: Recorder) -> None:
    server, url = recorder
    result = await drive("honeyhive_logger", url)

    assert result["scenarios"] == ["llm", "agent", "feedback", "thread"]
    assert {r.headers["Authorization"] for r in server.requests} == {BEARER}
    assert {r.headers["User-Agent"] for r in server.requests} == {"HoneyHive-Python-SDK"}
    sessions = [run for run in result["runs"] if run["kind"] == "session"]
    events = [run for run in result["runs"] if run["kind"] != "session"]
    starts = [r.body["session"] for r in server.matching("POST", "/session/start")]
    assert [s["session_id"] for s in starts] == [run["run_id"] for run in sessions]
    assert all(s["user_properties"] == {"user_id": "user-hhl", "plan": "pro"} for s in starts)
    logged = [r.body["event"] for r in server.matching("POST", "/events")]
    assert [(e["session_id"], e["event_type"], e["event_name"]) for e in logged] == [
        (run["session_id"], run["kind"], run["name"]) for run in events
    ]
    assert not any("event_id" in e for e in logged)
    updates = {r.body["event_id"]: r.body for r in server.matching("PUT", "/events")}
    assert set(updates) == {run["run_id"] for run in result["runs"] if "update" in run["phases"]}
    feedback_run = next(run for run in events if "feedback" in run)
    assert updates[feedback_run["run_id"]]["feedback"] == feedback_run["feedback"]


async def test_voker(recorder: Recorder) -> None:
    server, url = recorder
    result = await drive("voker", url)

    assert {r.headers["Authorization"] for r in server.requests} == {BEARER}
    fingerprint = server.requests[0]
    assert (fingerprint.method, fingerprint.path) == ("PUT", "/api/v1/fingerprints")
    assert fingerprint.body["voker_sdk_version"] == "0.0.15"
    events = [r.body for r in server.matching("POST", "/api/v1/events")]
    assert len({e["fingerprint_id"] for e in events}) == 1
    llm_runs = [run for run in result["runs"] if run["kind"] == "llm"]
    by_response = {e["properties"]["output"]["id"]: e for e in events}
    assert set(by_response) == {run["response_id"] for run in llm_runs}
    for run in llm_runs:
        event = by_response[run["response_id"]]
        assert event["event_name"] == "llm"
        assert event["session"] == run["session"]
        assert event["properties"]["api"] == run["api"]
        for field in ("agent", "agent_version", "person"):
            assert event.get(field) == run.get(field)
    (person_run,) = [run for run in result["runs"] if run["kind"] == "person"]
    (created,) = server.matching("PUT", "/api/v1/people")
    assert created.body["person_id"] == person_run["run_id"]
    (updated,) = server.matching("PUT", f"/api/v1/people/{person_run['run_id']}")
    assert updated.body["properties"] == person_run["properties"]
    assert server.matching("PUT", "/api/v1/agents/weather-agent/agent-versions")
    tool_turn = next(e for e in events if e["properties"]["inputs"].get("tools"))
    assert tool_turn["properties"]["output"]["choices"][0]["finish_reason"] == "tool_calls"


async def test_otel(recorder: Recorder) -> None:
    server, url = recorder
    result = await drive("otel", url)

    traces = server.matching("POST", "/v1/traces")
    assert traces and len(traces) == len(server.requests)
    assert {r.headers["Content-Type"] for r in traces} == {"application/x-protobuf"}
    assert {r.headers["Authorization"] for r in traces} == {BEARER}
    spans = otlp_spans(traces)
    assert set(spans) == {run["run_id"] for run in result["runs"]}
    for run in result["runs"]:
        span = spans[run["run_id"]]
        attrs = attributes(span)
        assert span["name"] == run["name"]
        assert span["traceId"] == run["trace_id"]
        assert span.get("parentSpanId") == run.get("parent_run_id")
        if run["kind"] == "llm":
            assert attrs["gen_ai.operation.name"] == "chat"
            assert attrs["gen_ai.response.id"] == run["response_id"]
        if "session_id" in run:
            assert attrs["gen_ai.conversation.id"] == run["session_id"]
        if "error" in run:
            assert span["status"]["code"] == "STATUS_CODE_ERROR"
            assert attrs["error.type"] == run["error"]
        if "feedback" in run:
            assert [e["name"] for e in span["events"]] == ["gen_ai.evaluation.result"]


FAILED_DELIVERIES = [
    ("llmonitor", "llm", ("POST", "/api/report"), "stdout: Error sending events"),
    ("lunary", "llm", ("POST", "/v1/runs/ingest"), "lunary.consumer ERROR: Error sending events."),
    ("honeyhive", "client", ("POST", "/session/start"),
     "startSessionLegacy failed with status code: 500"),
    ("honeyhive", "tracer", ("POST", "/opentelemetry/v1/traces"),
     "OTLP JSON export failed with status 500"),
    ("honeyhive", "tracer_protobuf", ("POST", "/opentelemetry/v1/traces"),
     "Failed to export spans batch code: 500"),
    ("honeyhive_logger", "llm", ("PUT", "/events"), "HoneyHive: Failed to update event"),
    ("voker", "llm", ("PUT", "/api/v1/fingerprints"), "exception in thread"),
    ("otel", "llm", ("POST", "/v1/traces"), "Failed to export spans batch code: 500"),
]


@pytest.mark.parametrize(("name", "scenario", "route", "reported"), FAILED_DELIVERIES)
async def test_driver_fails_when_the_sdk_reports_a_failed_delivery(
    recorder: Recorder, name: str, scenario: str, route: tuple[str, str],
    reported: str,
) -> None:
    server, url = recorder
    server.answers[route] = Answer(500, b'{"message": "recorder says no"}')
    with pytest.raises(DriverError) as failure:
        await drive(name, url, scenario)
    assert reported in str(failure.value)
    assert server.matching(*route)


async def test_honeyhive_logger_retries_error_answers(recorder: Recorder) -> None:
    server, url = recorder
    server.answers[("PUT", "/events")] = Answer(500, b"{}")
    with pytest.raises(DriverError):
        await drive("honeyhive_logger", url, "llm")
    assert len(server.matching("PUT", "/events")) == 4


async def test_honeyhive_tracer_session_answer_without_ids(recorder: Recorder) -> None:
    server, url = recorder
    server.answers[("POST", "/session/start")] = Answer(200, b'{"session_id": "only-this"}')
    with pytest.raises(DriverError, match="Session creation failed"):
        await drive("honeyhive", url, "tracer")


async def test_voker_needs_a_json_body_on_events(recorder: Recorder) -> None:
    server, url = recorder
    server.answers[("POST", "/api/v1/events")] = Answer(200, b"")
    with pytest.raises(DriverError, match="voker: failed to process event"):
        await drive("voker", url, "llm")


async def test_lunary_ignores_per_event_failures(recorder: Recorder) -> None:
    """A failure inside a 200 ``results`` array is invisible to the SDK: nothing to report."""
    server, url = recorder
    server.answers[("POST", "/v1/runs/ingest")] = Answer(
        200, b'{"results": [{"id": "x", "success": false, "error": "already exists"}]}'
    )
    result = await drive("lunary", url, "llm")
    assert result["runs"] and server.matching("POST", "/v1/runs/ingest")
