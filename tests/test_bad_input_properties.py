"""Whatever arrives at an ingress route, the gateway answers in the dialect's own shape
and never with a 5xx, and keeps serving.

Hypothesis mutates a valid request per route (a field replaced by a value of the wrong
type, or removed; deep nesting; huge strings and arrays; invalid timestamps; invalid
UTF-8; random bytes) and sends it to one in-process app (memory store, nothing
forwarded) per route. A gzip bomb is refused with 413 everywhere, and a client that
trickles its body does not hold up anyone else.
"""
import asyncio
import gzip
import json
from typing import Any, Callable

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (ExportTraceServiceRequest,
                                                                       ExportTraceServiceResponse)

from gateway.app import build_app
from gateway.config import Backend, Config, Limits, Tenant
from mappings.otlp_wire import RpcStatus

KEY = "key-acme"
MAX_BODY = 64 * 1024
MAX_INFLATED = 256 * 1024
STAMP = "2026-11-23T13:03:45.000Z"
NANOS = 1763903025000000000
EXAMPLES = settings(max_examples=25, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.data_too_large])


# each dialect's answers ------------------------------------------------------------


def lunary_shape(status: int, body: Any) -> bool:
    if status == 200:
        return set(body) == {"results"} and all(isinstance(r.get("success"), bool) for r in body["results"])
    return set(body) == {"message"} and isinstance(body["message"], str)


def report_shape(status: int, body: Any) -> bool:
    if status == 200:
        return isinstance(body, list) and all(isinstance(r.get("success"), bool) for r in body)
    return set(body) == {"message"} and isinstance(body["message"], str)


def honeyhive_shape(status: int, body: Any) -> bool:
    if status == 200:
        return isinstance(body, dict) and body.get("success", True) is True and "error" not in body
    return body == {"success": False, "error": body.get("error")} and isinstance(body["error"], str)


def voker_shape(status: int, body: Any) -> bool:
    if status == 200:
        return isinstance(body, dict) and "detail" not in body
    return isinstance(body, dict) and set(body) == {"detail"}


def otlp_shape(status: int, body: Any) -> bool:
    if status == 200:
        return isinstance(body, dict) and set(body) <= {"partialSuccess"}
    return set(body) == {"code", "message"} and isinstance(body["code"], int)


# valid requests per route ----------------------------------------------------------


def lunary_events() -> dict:
    return {"events": [
        {"type": "llm", "event": "start", "runId": "run-1", "name": "gpt-4o", "timestamp": STAMP,
         "input": [{"role": "user", "content": "Hi"}], "tags": ["a"], "metadata": {"k": "v"}},
        {"type": "llm", "event": "end", "runId": "run-1", "timestamp": STAMP,
         "output": {"role": "assistant", "content": "Hey"}, "tokensUsage": {"prompt": 3, "completion": 2}}]}


def report_events() -> dict:
    return {"events": [{**e, "app": KEY} for e in lunary_events()["events"]]}


def hh_event() -> dict:
    return {"event_type": "model", "event_name": "openai.chat", "session_id": "s-1", "start_time": 1700000000000,
            "end_time": 1700000000005, "duration": 5, "inputs": {"chat_history": [{"role": "user", "content": "Hi"}]},
            "outputs": {"role": "assistant", "content": "Hey"}, "metadata": {"k": "v"}, "config": {"model": "gpt-4o"}}


def otlp_request() -> dict:
    span = {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174", "name": "chat gpt-4o",
            "kind": 3, "startTimeUnixNano": str(NANOS), "endTimeUnixNano": str(NANOS + 10**9),
            "attributes": [{"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}},
                           {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "3"}}],
            "status": {"code": 1}}
    return {"resourceSpans": [{"resource": {"attributes": [{"key": "service.name",
                                                            "value": {"stringValue": "svc"}}]},
                               "scopeSpans": [{"scope": {"name": "t"}, "spans": [span]}]}]}


def vk_event(fingerprint: str) -> dict:
    return {"event_name": "llm", "fingerprint_id": fingerprint, "session": "vk-s-1", "user_id": "p-1",
            "properties": {"api": "openai-chat-completions",
                           "inputs": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]},
                           "output": {"id": "c-1", "choices": [{"message": {"role": "assistant", "content": "Hey"}}],
                                      "usage": {"prompt_tokens": 3}}}}


# (id, method, path, shape, valid body given the voker fingerprint)
ROUTES: list[tuple[str, str, str, Callable, Callable[[str], Any]]] = [
    ("lunary-ingest", "POST", "/v1/runs/ingest", lunary_shape, lambda f: lunary_events()),
    ("llmonitor-report", "POST", "/api/report", report_shape, lambda f: report_events()),
    ("hh-session-start", "POST", "/session/start", honeyhive_shape,
     lambda f: {"session": {"session_name": "s", "source": "dev", "session_id": "6f1c3b2a-1d1e-4c9f-9a43-0c2d5e1b7a10",
                            "inputs": {"q": "Hi"}, "metadata": {"k": "v"}}}),
    ("hh-event", "POST", "/events", honeyhive_shape, lambda f: {"event": hh_event()}),
    ("hh-update", "PUT", "/events", honeyhive_shape,
     lambda f: {"event_id": "e-1", "feedback": {"liked": True}, "metadata": {"k": "v"}, "outputs": {"a": 1}}),
    ("hh-batch", "POST", "/events/batch", honeyhive_shape,
     lambda f: {"events": [hh_event(), hh_event()], "is_single_session": True,
                "session_properties": {"session_name": "s", "source": "dev"}}),
    ("hh-session-event", "POST", "/session/s-1/event", honeyhive_shape, lambda f: {"event": hh_event()}),
    ("vk-event", "POST", "/api/v1/events", voker_shape, vk_event),
    ("vk-fingerprint", "PUT", "/api/v1/fingerprints", voker_shape,
     lambda f: {"language": "python", "language_version": "3.11", "system": "Linux"}),
    ("vk-person", "PUT", "/api/v1/people", voker_shape, lambda f: {"person_id": "p-1", "properties": {"plan": "pro"}}),
    ("vk-person-update", "PUT", "/api/v1/people/p-1", voker_shape, lambda f: {"properties": {"plan": "team"}}),
    ("vk-agent", "PUT", "/api/v1/agents", voker_shape, lambda f: {"agent_name": "weather", "description": "d"}),
    ("vk-version", "PUT", "/api/v1/agents/weather/agent-versions", voker_shape,
     lambda f: {"agent_version_name": "v1", "description": "d"}),
    ("otlp-json", "POST", "/v1/traces", otlp_shape, lambda f: otlp_request()),
]


@pytest.fixture
async def client(aiohttp_client, tmp_path):
    config = Config(
        tenants=[Tenant(name="acme", keys=[KEY], backends=["archive"])],
        backends=[Backend(name="archive", dialect="jsonl", path=str(tmp_path / "events.jsonl"))],
        limits=Limits(max_body_bytes=MAX_BODY, max_decompressed_bytes=MAX_INFLATED, body_timeout=1.0),
    )
    return await aiohttp_client(build_app(config, forward=False))


async def send(client, method: str, path: str, data: bytes, content_type: str = "application/json",
               encoding: str | None = None):
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": content_type}
    if encoding:
        headers["Content-Encoding"] = encoding
    async with client.request(method, path, data=data, headers=headers) as response:
        return response.status, response.content_type, await response.read()


@pytest.fixture
async def fingerprint(client) -> str:
    """A fingerprint, a person and an agent, so the Voker routes reach their parsing."""
    _, _, body = await send(client, "PUT", "/api/v1/fingerprints",
                            orjson.dumps({"language": "python", "language_version": "3.11", "system": "Linux"}))
    for path, payload in (("/api/v1/people", {"person_id": "p-1"}), ("/api/v1/agents", {"agent_name": "weather"})):
        assert (await send(client, "PUT", path, orjson.dumps(payload)))[0] == 200
    return orjson.loads(body)["fingerprint_id"]


def assert_answer(shape, status: int, content_type: str, raw: bytes) -> None:
    assert status < 500, raw[:300]
    assert content_type == "application/json", raw[:300]
    body = orjson.loads(raw)
    assert shape(status, body), (status, body)


# what hypothesis draws --------------------------------------------------------------

scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-2**70, max_value=2**70),
                    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20))
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                            st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                           max_leaves=12)
bad_timestamps = st.sampled_from(["", "yesterday", "2025-13-45T99:00:00Z", "2025-01-01T00:00:00+25:00", "9999-99-99",
                                  "-0001-01-01T00:00:00Z", -1, 0, 1e300, -1e300, 2**63, 10**20, True, [], {},
                                  "1700000000000", "NaN"])


def paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every place in a JSON document (the root included) a mutation can touch."""
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += paths(child, prefix + (key,))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += paths(child, prefix + (index,))
    return found


def replace(doc: Any, path: tuple, new: Any, delete: bool = False) -> Any:
    if not path:
        return new
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = new
    return doc


def nested(depth: int, leaf: Any) -> Any:
    for n in range(depth):
        leaf = {"a": leaf} if n % 2 else [leaf]
    return leaf


@st.composite
def mutated(draw, valid: Any) -> bytes:
    """A valid document, changed in one place; or not JSON at all."""
    kind = draw(st.sampled_from(["wrong-type", "missing", "deep", "huge-string", "huge-array", "timestamp",
                                 "bad-utf8", "random-bytes"]))
    if kind == "random-bytes":
        return draw(st.binary(max_size=512))
    doc = json.loads(json.dumps(valid))
    places = paths(doc)
    path = draw(st.sampled_from(places))
    if kind == "missing" and path:
        doc = replace(doc, path, None, delete=True)
    elif kind == "deep":
        doc = replace(doc, path, nested(draw(st.integers(1, 600)), draw(scalars)))
    elif kind == "huge-string":
        doc = replace(doc, path, "x" * draw(st.integers(1000, 2 * MAX_BODY)))
    elif kind == "huge-array":
        doc = replace(doc, path, [draw(json_values)] * draw(st.integers(100, 20000)))
    elif kind == "timestamp":
        doc = replace(doc, path, draw(bad_timestamps))
    else:
        doc = replace(doc, path, draw(json_values))
    data = json.dumps(doc).encode()
    if kind == "bad-utf8":
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x80\x80"])) + data[at:]
    return data


# properties ------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "shape", "valid"), [pytest.param(*r[1:], id=r[0]) for r in ROUTES])
@EXAMPLES
@given(data=st.data())
async def test_any_body_is_answered_in_the_dialect_shape_without_a_5xx(client, fingerprint, method, path, shape,
                                                                        valid, data):
    body = data.draw(mutated(valid(fingerprint)))
    assert_answer(shape, *await send(client, method, path, body))
    assert_answer(shape, *await send(client, method, path, orjson.dumps(valid(fingerprint))))


def span_bytes(draw) -> bytes:
    """A protobuf request with its fields set from drawn values, or cut short, or random bytes."""
    kind = draw(st.sampled_from(["fields", "truncated", "random"]))
    if kind == "random":
        return draw(st.binary(max_size=512))
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id = draw(st.binary(min_size=0, max_size=20))
    span.span_id = draw(st.binary(min_size=0, max_size=10))
    span.name = draw(st.text(max_size=50))
    span.start_time_unix_nano = draw(st.integers(0, 2**64 - 1))
    span.end_time_unix_nano = draw(st.integers(0, 2**64 - 1))
    value = span.attributes.add()
    value.key = draw(st.sampled_from(["gen_ai.request.model", "gen_ai.usage.input_tokens", "gen_ai.prompt",
                                      "llm.input_messages", "honeyhive_inputs", "x"]))
    target = value.value
    for _ in range(draw(st.integers(0, 60))):
        target = target.kvlist_value.values.add().value
    choice = draw(st.sampled_from(["string", "int", "double", "bytes", "array"]))
    if choice == "string":
        target.string_value = draw(st.text(max_size=100))
    elif choice == "int":
        target.int_value = draw(st.integers(-2**63, 2**63 - 1))
    elif choice == "double":
        target.double_value = draw(st.floats())
    elif choice == "bytes":
        target.bytes_value = draw(st.binary(max_size=50))
    else:
        target.array_value.values.add().string_value = "a"
    data = request.SerializeToString()
    return data[:draw(st.integers(0, len(data)))] if kind == "truncated" else data


@EXAMPLES
@given(data=st.data())
async def test_any_protobuf_body_is_answered_as_an_otlp_receiver(client, data):
    raw = span_bytes(data.draw)
    status, content_type, answer = await send(client, "POST", "/v1/traces", raw, "application/x-protobuf")
    assert status < 500 and content_type == "application/x-protobuf", answer[:300]
    if status == 200:
        ExportTraceServiceResponse().ParseFromString(answer)
    else:
        assert RpcStatus.FromString(answer).code != 0


# bombs and slow clients ------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "shape"), [pytest.param(*r[1:4], id=r[0]) for r in ROUTES])
async def test_a_gzip_bomb_is_refused_with_413(client, fingerprint, method, path, shape):
    bomb = gzip.compress(b'{"events": [' + b" " * (64 * MAX_INFLATED) + b"]}")
    assert len(bomb) < MAX_BODY
    status, content_type, raw = await send(client, method, path, bomb, encoding="gzip")
    assert status == 413
    assert_answer(shape, status, content_type, raw)


async def test_a_protobuf_gzip_bomb_is_refused_with_413(client):
    bomb = gzip.compress(b"\x00" * (64 * MAX_INFLATED))
    status, _, raw = await send(client, "POST", "/v1/traces", bomb, "application/x-protobuf", "gzip")
    assert status == 413 and RpcStatus.FromString(raw).code != 0


async def test_a_client_trickling_its_body_is_cut_off_and_blocks_no_one(client):
    """Headers, then one byte at a time, slower than ``limits.body_timeout``: other
    requests are answered meanwhile, and the slow one gets 408 in its dialect's shape."""
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    writer.write(f"POST /v1/runs/ingest HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
                 f"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{".encode())
    await writer.drain()

    async def trickle():
        for _ in range(999):
            await asyncio.sleep(0.2)
            writer.write(b" ")
            await writer.drain()

    trickling = asyncio.create_task(trickle())
    try:
        for _ in range(5):
            status, content_type, raw = await send(client, "POST", "/v1/runs/ingest", orjson.dumps(lunary_events()))
            assert status == 200, raw
            assert not trickling.done()
        answer = await asyncio.wait_for(reader.read(4096), 30)
    finally:
        trickling.cancel()
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), head
    assert set(orjson.loads(body)) == {"message"}


@pytest.mark.parametrize(("method", "path", "shape", "valid"), [pytest.param(*r[1:], id=r[0]) for r in ROUTES])
async def test_nesting_deeper_than_the_store_can_encode_is_a_400(client, fingerprint, method, path, shape, valid):
    """Found by the property above: 300 levels under a field passed parsing, then the
    store's encoder (or the answer's) raised, and the client got a 500. OTLP reads only
    the members it knows, each with its type, so there the span holding it fails alone."""
    doc = valid(fingerprint)
    where = paths(doc)[-1]
    replace(doc, where, nested(300, "x"))
    status, content_type, raw = await send(client, method, path, json.dumps(doc).encode())
    assert_answer(shape, status, content_type, raw)
    if path == "/v1/traces":
        refused = orjson.loads(raw)["partialSuccess"]
        assert (status, refused["rejectedSpans"]) == (200, "1") and ".".join(map(str, where[-2:])) in refused["errorMessage"]
    else:
        assert status == 400
