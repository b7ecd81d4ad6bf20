"""OpenTelemetry in and out, end to end: real SDKs and real simulators around the real gateway.

One in-process gateway (served on a port, so the SDK drivers, which run in their own
venvs as subprocesses, reach it over HTTP) with three tenants: HoneyHive's tracer to a
Lunary server, the plain OpenTelemetry SDK to a JSONL archive, and Lunary's HTTP
dialect to two OTLP collectors (protobuf and JSON). Each test checks what the far side
holds: the span tree as runs, or the runs as a span tree, with nothing refused,
orphaned or dead-lettered; and the OTLP receiver's own answers to bad requests.
"""
import asyncio
import gzip
import json
import time
import uuid
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestServer

from gateway.app import build_app
from gateway.config import Backend, Config, Retry, Tenant
from gateway.ingress.state import STATE
from mappings import otlp, otlp_wire
from mappings.ids import as_uuid
from mappings.otlp_wire import RpcStatus
from tests.backends import run_backend
from tests.sdk.runner import run_driver

pytestmark = [pytest.mark.sdk, pytest.mark.asyncio(loop_scope="module")]

SIM_KEY = "sim-key"
KEYS = {"honeyhive": "key-hh", "otel": "key-otel", "lunary": "key-lunary"}
OTLP_ENCODINGS = ("protobuf", "json")
LUNARY_TROUBLE = ("rejected", "orphans", "unknown_parents")
HH_TYPES = {"model": "llm", "tool": "tool", "chain": "chain"}


class World:
    def __init__(self, app, server, client, sims, archive: Path):
        self.app, self.server, self.client, self.sims, self.archive = app, server, client, sims, archive

    @property
    def url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")

    def archived(self) -> list[dict]:
        if not self.archive.exists():
            return []
        return [json.loads(line) for line in self.archive.read_text().splitlines() if line]

    async def archived_runs(self, run_ids: set[str], timeout: float = 15) -> dict[str, dict]:
        """The archived event of each run, once all of them are there."""
        deadline = time.monotonic() + timeout
        while True:
            found = {e["run_id"]: e for e in self.archived() if e["run_id"] in run_ids}
            if found.keys() == run_ids:
                return found
            assert time.monotonic() < deadline, f"never archived: {sorted(run_ids - found.keys())}"
            await asyncio.sleep(0.05)

    async def dead_letters(self) -> int:
        store = self.app[STATE].store
        return sum([await store.dead_count(b.name) for b in self.app[STATE].config.backends])


def _config(sims: dict, archive: Path) -> Config:
    retry = Retry(initial_backoff=0.01, max_backoff=0.05)
    backends = [Backend(name="lunary", dialect="lunary", url=sims["lunary"].url, api_key=SIM_KEY, retry=retry),
                Backend(name="archive", dialect="jsonl", path=str(archive))]
    backends += [Backend(name=f"otlp-{e}", dialect="otlp", encoding=e, url=sims[e].url, api_key=SIM_KEY, retry=retry)
                 for e in OTLP_ENCODINGS]
    tenants = [Tenant(name="hh", keys=[KEYS["honeyhive"]], backends=["lunary"]),
               Tenant(name="otel", keys=[KEYS["otel"]], backends=["archive"]),
               Tenant(name="lunary-app", keys=[KEYS["lunary"]], backends=[f"otlp-{e}" for e in OTLP_ENCODINGS])]
    return Config(tenants=tenants, backends=backends)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory):
    archive = tmp_path_factory.mktemp("otlp-e2e") / "archive.jsonl"
    managers = {"lunary": run_backend("lunary", key=SIM_KEY),
                **{e: run_backend("otlp", key=SIM_KEY) for e in OTLP_ENCODINGS}}
    sims = {name: await manager.__aenter__() for name, manager in managers.items()}
    app = build_app(_config(sims, archive))
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    async with aiohttp.ClientSession() as client:
        yield World(app, server, client, sims, archive)
    await server.close()
    for manager in reversed(list(managers.values())):
        await manager.__aexit__(None, None, None)


# ---- (a) the HoneyHive tracer's spans reach a Lunary server as runs ------------------------

@pytest.mark.parametrize("scenario", ["tracer", "tracer_protobuf"])
async def test_honeyhive_tracer_session_reaches_lunary_as_a_run_tree(world: World, scenario: str):
    """A session with a model call, an agent (tool + model) and a failing tool: every span
    becomes a Lunary run of its type under its parent span, with model, messages, usage and
    the error; the session is a thread run with its feedback."""
    lunary = world.sims["lunary"].received
    trouble = {kind: lunary.count(kind) for kind in LUNARY_TROUBLE}
    dead = await world.dead_letters()
    result = await asyncio.to_thread(run_driver, "honeyhive", world.url, KEYS["honeyhive"], scenario)
    session, *spans = result["runs"]
    expected = {as_uuid(run["run_id"]): run for run in spans}

    def delivered(received) -> bool:
        runs = received.objects("runs")
        return all(runs.get(i, {}).get("status") in ("success", "error") for i in expected)

    await lunary.wait_until(delivered, timeout=20)
    runs = lunary.objects("runs")
    for run_id, run in expected.items():
        got = runs[run_id]
        assert got["type"] == HH_TYPES[run["kind"]], run
        assert got["parentRunId"] == (as_uuid(run["parent_run_id"]) if "parent_run_id" in run else None), run
        assert got["name"] == ("gpt-4o" if run["kind"] == "model" else run["name"]), "an llm run is named by its model"
        if "error" in run:
            assert got["status"] == "error" and run["error"] in got["error"]["message"]
            assert got["error"]["type"] == "RuntimeError" and got["error"]["stack"]
        else:
            assert got["status"] == "success" and got["error"] is None
        if run["kind"] == "model":
            assert got["input"][-1]["role"] == "user" and got["output"]["role"] == "assistant"
            assert set(got["output"]) == {"role", "content"}, "the traced return value is not part of the message"
            tokens = got["tokens"]
            assert (got["params"], tokens["prompt"], tokens["completion"]) == ({"temperature": 0.2}, 12, 3)
        if "feedback" in run:
            assert got["feedback"] == run["feedback"]
    turn1 = next(runs[i] for i, r in expected.items() if r.get("turn") == 1)
    assert (turn1["input"], turn1["output"]) == ([{"role": "user", "content": "Hi"}],
                                                 {"role": "assistant", "content": "Hello!"})
    tool = next(runs[i] for i, r in expected.items() if r["name"] == "get_weather")
    assert (tool["input"], tool["output"]) == ({"city": "Paris"}, {"result": {"city": "Paris", "tempC": 21}})
    thread = runs[session["session_id"]]
    assert (thread["type"], thread["name"], thread["feedback"]) == ("thread", f"conformance-{scenario}", {"rating": 5})
    assert {kind: lunary.count(kind) for kind in LUNARY_TROUBLE} == trouble
    assert await world.dead_letters() == dead


# ---- (b) the OpenTelemetry SDK with GenAI attributes reaches the archive -------------------

async def test_opentelemetry_sdk_genai_spans_are_archived_canonical(world: World):
    """Every span the SDK exported is one complete canonical run: kind from the operation,
    parent from the span tree, model, usage, messages (system instructions first), tool
    calls, the error, the evaluation as feedback, the user and the conversation."""
    result = await asyncio.to_thread(run_driver, "otel", world.url, KEYS["otel"])
    runs = {run["run_id"]: run for run in result["runs"]}
    events = await world.archived_runs(set(runs))
    for run_id, run in runs.items():
        event = events[run_id]
        assert (event["source"], event["phase"], event["tenant"]) == ("otlp", "complete", "otel")
        assert (event["kind"], event["name"]) == (run["kind"], run["name"])
        assert event["parent_run_id"] == run.get("parent_run_id")
        assert event["extra"]["trace_id"] == run["trace_id"]
        if run["kind"] == "llm":
            assert (event["model"], event["provider"]) == ("gpt-4o-mini", "openai")
            assert event["params"]["temperature"] == 0.2 and event["params"]["max_tokens"] == 256
            assert event["usage"] == {"prompt_tokens": 12, "completion_tokens": 3, "cached_prompt_tokens": None,
                                      "total_tokens": 15, "estimated": False}
            assert event["input"][0] == {"role": "system", "content": "You are terse."}
            assert event["metadata"]["gen_ai.response.id"] == run["response_id"]
        for field in ("user_id", "session_id"):
            if field in run:
                assert event[field] == run[field]
        if "error" in run:
            assert event["error"]["type"] == run["error"] and event["error"]["message"] == "429 Too Many Requests"
        if "feedback" in run:
            assert {k: event["feedback"][k] for k in run["feedback"]} == run["feedback"]
    llm = next(events[i] for i, r in runs.items() if r["scenario"] == "llm")
    assert llm["input"][1:] == [{"role": "user", "content": "Hi"}]
    assert llm["output"] == {"role": "assistant", "content": "Hello!", "finish_reason": "stop"}
    first, second = (events[i] for i, r in runs.items() if r["scenario"] == "agent" and r["kind"] == "llm")
    (call,) = first["output"]["tool_calls"]
    assert (call["id"], call["function"]["name"], json.loads(call["function"]["arguments"])) == (
        "call_weather_1", "get_weather", {"city": "Paris"})
    assert second["input"][-1] == {"role": "tool", "tool_call_id": "call_weather_1", "content": '{"temp_c":21}'}
    tool = next(events[i] for i, r in runs.items() if r["kind"] == "tool")
    assert (tool["input"], tool["output"]) == ({"city": "Paris"}, {"temp_c": 21})


# ---- (c) a Lunary trace reaches OTLP collectors as a span tree ------------------------------

def lunary_trace(ids: dict, tag: str) -> list[dict]:
    """An agent run with an llm call and a failing tool, as the Lunary SDK reports them."""
    at = "2025-01-01T00:00:0{}.{}00Z".format
    return [
        {"type": "agent", "event": "start", "runId": ids["agent"], "name": "support-agent", "timestamp": at(1, 0),
         "input": f"Weather in Paris? {tag}", "userId": "user-1", "tags": ["otlp"], "metadata": {"env": "test"}},
        {"type": "llm", "event": "start", "runId": ids["llm"], "parentRunId": ids["agent"], "name": "gpt-4o-mini",
         "timestamp": at(1, 1), "input": [{"role": "user", "content": f"Weather in Paris? {tag}"}],
         "params": {"temperature": 0}},
        {"type": "llm", "event": "end", "runId": ids["llm"], "timestamp": at(1, 2),
         "output": {"role": "assistant", "content": "Calling get_weather"},
         "tokensUsage": {"prompt": 20, "completion": 5}},
        {"type": "tool", "event": "start", "runId": ids["tool"], "parentRunId": ids["agent"], "name": "get_weather",
         "timestamp": at(1, 3), "input": {"city": "Paris"}},
        {"type": "tool", "event": "error", "runId": ids["tool"], "timestamp": at(1, 4),
         "error": {"message": "weather service down", "stack": "Traceback: ..."}},
        {"type": "agent", "event": "end", "runId": ids["agent"], "timestamp": at(1, 5), "output": "20 degrees"},
    ]


async def test_lunary_trace_reaches_otlp_collectors_as_one_span_tree(world: World):
    """Both encodings: one trace id, the llm and tool spans under the agent span, GenAI
    attributes for kind, model, usage and messages, the tool's failure as status ERROR
    with an exception event."""
    ids = {role: str(uuid.uuid4()) for role in ("agent", "llm", "tool")}
    tag = uuid.uuid4().hex[:8]
    async with world.client.post(world.server.make_url("/v1/runs/ingest"), json={"events": lunary_trace(ids, tag)},
                                 headers={"Authorization": f"Bearer {KEYS['lunary']}"}) as resp:
        assert resp.status == 200 and all(r["success"] for r in (await resp.json())["results"])
    span_ids = {role: otlp.span_id_of(run_id) for role, run_id in ids.items()}
    for encoding in OTLP_ENCODINGS:
        received = world.sims[encoding].received

        def spans_of_trace(received=received) -> dict:
            return {s["span_id"]: s for s in received.records("spans") if s["span_id"] in span_ids.values()}

        await received.wait_until(lambda r: len(spans_of_trace()) == 3, timeout=15)
        spans = spans_of_trace()
        agent, llm, tool = (spans[span_ids[role]] for role in ("agent", "llm", "tool"))
        assert len({s["trace_id"] for s in spans.values()}) == 1, "one trace"
        assert (agent["parent_span_id"], llm["parent_span_id"], tool["parent_span_id"]) == (
            "", agent["span_id"], agent["span_id"])
        assert {e["encoding"] for e in received.records("exports")} == {encoding}
        assert (agent["name"], agent["attributes"]["gen_ai.operation.name"]) == ("invoke_agent support-agent",
                                                                               "invoke_agent")
        assert agent["attributes"]["gen_ai.agent.name"] == "support-agent"
        assert agent["attributes"]["user.id"] == "user-1" and agent["attributes"]["rosetta.metadata.env"] == "test"
        assert (llm["name"], llm["kind"]) == ("chat gpt-4o-mini", "SPAN_KIND_CLIENT")
        attrs = llm["attributes"]
        assert (attrs["gen_ai.operation.name"], attrs["gen_ai.request.model"]) == ("chat", "gpt-4o-mini")
        assert (attrs["gen_ai.usage.input_tokens"], attrs["gen_ai.usage.output_tokens"]) == (20, 5)
        assert attrs["gen_ai.request.temperature"] == 0
        assert json.loads(attrs["gen_ai.input.messages"]) == [
            {"role": "user", "parts": [{"type": "text", "content": f"Weather in Paris? {tag}"}]}]
        assert json.loads(attrs["gen_ai.output.messages"]) == [
            {"role": "assistant", "parts": [{"type": "text", "content": "Calling get_weather"}]}]
        assert (tool["name"], tool["attributes"]["gen_ai.tool.name"]) == ("execute_tool get_weather", "get_weather")
        assert json.loads(tool["attributes"]["gen_ai.tool.call.arguments"]) == {"city": "Paris"}
        assert (tool["status_code"], tool["status_message"]) == ("STATUS_CODE_ERROR", "weather service down")
        (exception,) = tool["events"]
        assert exception["name"] == "exception"
        assert exception["attributes"]["exception.message"] == "weather service down"
        assert exception["attributes"]["exception.stacktrace"] == "Traceback: ..."
        assert agent["status_code"] == llm["status_code"] == "STATUS_CODE_UNSET"
        assert agent["start_ns"] < llm["start_ns"] < llm["end_ns"] < tool["end_ns"] <= agent["end_ns"]
    assert await world.dead_letters() == 0


# ---- (d) the receiver's answers -----------------------------------------------------------

def json_span(span_id: str, **fields) -> dict:
    return {"traceId": uuid.uuid4().hex, "spanId": span_id, "name": "chat gpt-4o-mini",
            "startTimeUnixNano": "1735689601000000000", "endTimeUnixNano": "1735689601500000000",
            "attributes": [{"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                           {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o-mini"}}], **fields}


def export_request(*spans: dict) -> dict:
    return {"resourceSpans": [{"scopeSpans": [{"scope": {"name": "test"}, "spans": list(spans)}]}]}


def as_protobuf(request: dict) -> bytes:
    """An OTLP/JSON request as the same request in protobuf."""
    return otlp_wire.encode_request(otlp_wire.decode_request(json.dumps(request).encode(), otlp.JSON), protobuf=True)


async def post(world: World, body: bytes, content_type: str, key: str = KEYS["otel"], **headers):
    headers = {"Content-Type": content_type, "Authorization": f"Bearer {key}", **headers}
    async with world.client.post(world.server.make_url("/v1/traces"), data=body, headers=headers) as resp:
        return resp.status, resp.content_type, await resp.read()


@pytest.mark.parametrize("encoding", OTLP_ENCODINGS)
async def test_gzip_bodies_are_accepted(world: World, encoding: str):
    span_id = uuid.uuid4().hex[:16]
    request = export_request(json_span(span_id))
    if encoding == "json":
        body, content_type = json.dumps(request).encode(), otlp.JSON
    else:
        body, content_type = as_protobuf(request), otlp.PROTOBUF
    status, answered_type, _ = await post(world, gzip.compress(body), content_type, **{"Content-Encoding": "gzip"})
    assert (status, answered_type) == (200, content_type)
    event = (await world.archived_runs({span_id}))[span_id]
    assert (event["kind"], event["model"]) == ("llm", "gpt-4o-mini")


async def test_malformed_protobuf_is_refused_as_google_rpc_status(world: World):
    status, content_type, body = await post(world, b"\x0a\xff\xff\xff\x0f", otlp.PROTOBUF)
    assert (status, content_type) == (400, otlp.PROTOBUF)
    answer = RpcStatus.FromString(body)
    assert answer.code == 3 and "invalid protobuf" in answer.message


async def test_one_bad_span_is_rejected_alone(world: World):
    """The good span is taken; the bad one is counted in partialSuccess, named in the message."""
    good = uuid.uuid4().hex[:16]
    bad = json_span(uuid.uuid4().hex[:16], traceId="not-hex")
    status, _, body = await post(world, json.dumps(export_request(json_span(good), bad)).encode(), otlp.JSON)
    assert status == 200
    partial = json.loads(body)["partialSuccess"]
    assert partial["rejectedSpans"] == "1" and "spans[1].traceId" in partial["errorMessage"]
    await world.archived_runs({good})


async def test_wrong_content_type_is_415(world: World):
    status, _, body = await post(world, b"hello", "text/plain")
    assert status == 415 and json.loads(body)["code"] == 3


@pytest.mark.parametrize("encoding", OTLP_ENCODINGS)
async def test_unknown_key_is_401(world: World, encoding: str):
    content_type = otlp.PROTOBUF if encoding == "protobuf" else otlp.JSON
    body = as_protobuf(export_request(json_span("00f067aa0ba902b7"))) if encoding == "protobuf" else b"{}"
    status, answered_type, answer = await post(world, body, content_type, key="no-such-key")
    assert (status, answered_type) == (401, content_type)
    message = RpcStatus.FromString(answer).message if encoding == "protobuf" else json.loads(answer)["message"]
    assert message == "Invalid API key"
