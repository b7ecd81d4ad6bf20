"""The OTLP mapping: golden spans in, span trees out, and both ways round.

Golden cases live in ``tests/golden_otlp/<case>/``: ``input.json`` is an OTLP/JSON export
request, ``expected.json`` the events (``raw`` left out) or errors it maps to plus the
receiver's answer. ``ROSETTA_UPDATE_GOLDEN=1 pytest tests/test_otlp_mapping.py``
rewrites the expected files for review.
"""
import base64
import copy
import json
import os
from pathlib import Path

import orjson
import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from mappings import otlp, otlp_wire
from mappings.canonical import new_event, validate_event
from mappings.egress import OK, REJECT
from mappings.errors import MAX_DEPTH, MappingError

GOLDEN = Path(__file__).parent / "golden_otlp"
CASES = sorted(p.name for p in GOLDEN.iterdir() if (p / "input.json").exists())
REFERENCE = Path("/work/shared/reference/sdk-hh_tracer.jsonl")
UPDATE = os.environ.get("ROSETTA_UPDATE_GOLDEN") == "1"


def golden_input(case: str) -> bytes:
    return (GOLDEN / case / "input.json").read_bytes()


def reference_body() -> bytes:
    lines = (json.loads(line) for line in REFERENCE.read_text().splitlines() if line.strip())
    return orjson.dumps(next(r["body"] for r in lines if r["path"] == "/opentelemetry/v1/traces"))


def as_protobuf(body: bytes) -> bytes:
    """The protobuf form of an OTLP/JSON body, made by protobuf's own JSON parser."""

    def ids_to_base64(node):
        if isinstance(node, list):
            return [ids_to_base64(item) for item in node]
        if not isinstance(node, dict):
            return node
        return {k: base64.b64encode(bytes.fromhex(v)).decode() if k in otlp_wire.ID_KEYS and v else ids_to_base64(v)
                for k, v in node.items() if v is not None}

    return json_format.ParseDict(ids_to_base64(orjson.loads(body)), ExportTraceServiceRequest()).SerializeToString()


def parse_json(body: bytes):
    return otlp.parse_request(body, "application/json")


def without_raw(item):
    if isinstance(item, MappingError):
        return {"error": str(item)}
    return {k: v for k, v in item.items() if k != "raw"}


def by_run(parsed) -> dict[str, dict]:
    return {e["run_id"]: e for e in parsed.events}


# ---- golden ----------------------------------------------------------------------------

@pytest.mark.parametrize("case", CASES)
def test_golden(case: str) -> None:
    parsed = parse_json(golden_input(case))
    for event in parsed.events:
        validate_event(event)
    actual = {"items": [without_raw(i) for i in parsed.items], "answer": otlp.answer(parsed)[1]}
    expected_path = GOLDEN / case / "expected.json"
    if UPDATE:
        expected_path.write_bytes(orjson.dumps(actual, option=orjson.OPT_INDENT_2) + b"\n")
    assert orjson.loads(orjson.dumps(actual)) == orjson.loads(expected_path.read_bytes())


@pytest.mark.parametrize("case", [c for c in CASES if c != "malformed_spans"])
def test_protobuf_decodes_like_json(case: str) -> None:
    body = golden_input(case)
    as_json = otlp.decode_request(body, "application/json; charset=utf-8")
    assert otlp.decode_request(as_protobuf(body), "application/x-protobuf") == as_json


def test_span_built_with_proto_classes_decodes_like_its_json_form() -> None:
    span = Span(trace_id=bytes(range(1, 17)), span_id=bytes(range(1, 9)), name="s", kind=Span.SPAN_KIND_CLIENT,
                start_time_unix_nano=5, end_time_unix_nano=9, status=Status(code=Status.STATUS_CODE_ERROR, message="x"))
    span.attributes.extend([
        KeyValue(key="b", value=AnyValue(bytes_value=b"\x00\xff")),
        KeyValue(key="big", value=AnyValue(int_value=2**62)),
        KeyValue(key="list", value=AnyValue(array_value={"values": [AnyValue(bool_value=True), AnyValue(double_value=1.5)]})),
        KeyValue(key="obj", value=AnyValue(kvlist_value={"values": [KeyValue(key="k", value=AnyValue(string_value="v"))]})),
        KeyValue(key="none", value=AnyValue()),
    ])
    span.events.add(name="e", time_unix_nano=7)
    request = ExportTraceServiceRequest()
    request.resource_spans.add().scope_spans.add().spans.append(span)
    as_json = {"resourceSpans": [{"scopeSpans": [{"spans": [{
        "traceId": bytes(range(1, 17)).hex(), "spanId": bytes(range(1, 9)).hex(), "parentSpanId": None,
        "name": "s", "kind": "SPAN_KIND_CLIENT", "startTimeUnixNano": "5", "endTimeUnixNano": 9,
        "attributes": [
            {"key": "b", "value": {"bytesValue": "AP8="}},
            {"key": "big", "value": {"intValue": str(2**62)}},
            {"key": "list", "value": {"arrayValue": {"values": [{"boolValue": True}, {"doubleValue": 1.5}]}}},
            {"key": "obj", "value": {"kvlistValue": {"values": [{"key": "k", "value": {"stringValue": "v"}}]}}},
            {"key": "none", "value": {}},
        ],
        "events": [{"name": "e", "timeUnixNano": "7"}],
        "status": {"code": 2, "message": "x"},
    }]}]}]}
    decoded = otlp.decode_request(request.SerializeToString(), "application/x-protobuf")
    assert decoded == otlp.decode_request(orjson.dumps(as_json), "application/json")
    assert decoded[0]["attributes"] == {"b": "AP8=", "big": 2**62, "list": [True, 1.5], "obj": {"k": "v"}, "none": None}
    assert decoded[0]["parent_span_id"] is None and decoded[0]["status"] == {"code": "STATUS_CODE_ERROR", "message": "x"}


# ---- ingress -----------------------------------------------------------------------------

def test_honeyhive_tracer_reference_payload() -> None:
    parsed = parse_json(reference_body())
    assert otlp.answer(parsed) == (200, {})
    llm, chain = parsed.items
    assert parsed.ids == ["5a27b7c7175009f3", "40f8e8c92cf76931"]
    assert {e["session_id"] for e in (llm, chain)} == {"5ae29131-72ba-4b8c-bc18-86aae9350a17"}
    assert (llm["kind"], chain["kind"]) == ("llm", "chain")
    assert (llm["phase"], llm["source"]) == ("complete", "otlp")
    assert (llm["parent_run_id"], chain["parent_run_id"]) == (chain["run_id"], None)
    assert (llm["name"], chain["name"]) == ("openai.chat", "__main__.pipeline")
    assert (llm["model"], llm["provider"], llm["params"]) == ("gpt-4o-mini", "openai", {"temperature": 0.2})
    assert llm["input"] == [{"role": "user", "content": "Hello"}], "the chat history, not the traced arguments"
    assert llm["output"] == {"role": "assistant", "content": "Hi!"}, "the returned result repeats the content"
    assert (llm["metrics"], llm["feedback"]) == ({"latency_ms": 12}, {"rating": 5})
    assert (llm["user_id"], llm["user_props"]) == ("u1", {"user_id": "u1"})
    assert llm["metadata"] == {"honeyhive_inputs.prompt": "Hello", "k": "v"} and chain["metadata"] == {}
    assert (chain["input"], chain["output"]) == ({"q": "Hello"}, {"result": "Hi!"})
    assert llm["extra"]["project"] == "demo-project" and llm["extra"]["source"] == "dev"
    assert llm["extra"]["trace_id"] == chain["extra"]["trace_id"] == "8ad9b74a673d8446df533475295f218c"
    assert llm["started_at"] == "2026-11-23T12:47:01.353Z" and chain["ended_at"] == "2026-11-23T12:47:01.355Z"
    assert not any(k.startswith("traceloop") for e in (llm, chain) for k in e["metadata"])
    assert otlp.parse_request(as_protobuf(reference_body()), "application/x-protobuf").items == parsed.items


def test_genai_agent_run() -> None:
    runs = by_run(parse_json(golden_input("genai_agent_json_messages")))
    agent, first, tool, second = (runs[i] for i in ("b7ad6b7169203331", "00f067aa0ba902b7", "53995c3f42cd8ad8",
                                                    "7a085853722dc6d2"))
    assert [e["kind"] for e in (agent, first, tool, second)] == ["agent", "llm", "tool", "llm"]
    assert {e["parent_run_id"] for e in (first, tool, second)} == {agent["run_id"]}
    assert first["name"] == "chat gpt-4o-mini" and tool["name"] == "execute_tool get_weather"
    assert first["usage"] == {"prompt_tokens": 41, "completion_tokens": 9, "cached_prompt_tokens": None,
                              "total_tokens": 50, "estimated": False}
    assert first["params"] == {"temperature": 0.2, "max_tokens": 256, "stop": ["\n\n"]}
    assert first["metadata"]["gen_ai.response.model"] == "gpt-4o-mini-2024-07-18"
    assert "gen_ai.system" not in first["metadata"] and "session.id" not in agent["metadata"]
    assert first["session_id"] == agent["session_id"] == "conv-1" and first["user_id"] == "user-otel"
    assert first["input"] == [{"role": "system", "content": "You are terse."},
                              {"role": "user", "content": "Weather in Paris?"}]
    assert first["output"]["tool_calls"] == [{"id": "call_1", "type": "function", "function": {
        "name": "get_weather", "arguments": '{"city":"Paris"}'}}]
    assert (tool["input"], tool["output"]) == ({"city": "Paris"}, {"temp_c": 21})
    assert second["feedback"] == {"name": "user_rating", "score": 1.0, "label": "thumbs_up", "explanation": "helpful"}
    assert second["input"][-1] == {"role": "tool", "tool_call_id": "call_1", "content": '{"temp_c":21}'}


def test_three_message_encodings_give_the_same_messages() -> None:
    found = [parse_json(golden_input(f"genai_messages_{c}")).items[0] for c in ("json", "indexed", "events")]
    assert found[0]["input"] == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temp_c":21}'},
    ]
    assert found[0]["output"] == {"role": "assistant", "content": "It is 21 C in Paris.", "finish_reason": "stop"}
    for event in found[1:]:
        assert (event["input"], event["output"]) == (found[0]["input"], found[0]["output"])
        assert (event["kind"], event["model"], event["provider"]) == ("llm", "gpt-4o-mini", "openai")
        assert (event["usage"]["prompt_tokens"], event["usage"]["completion_tokens"]) == (41, 9)
    assert found[2]["extra"].get("events") is None


def test_exception_events_become_the_error() -> None:
    failed, retried = parse_json(golden_input("genai_error")).items
    assert failed["error"] == {
        "message": "429 Too Many Requests", "type": "RateLimitError", "exception.escaped": "False",
        "stack": 'Traceback (most recent call last):\n  File "app.py", line 3\nRuntimeError: 429 Too Many Requests'}
    assert "error.type" not in failed["metadata"] and "events" not in failed["extra"]
    assert retried["error"] == {"message": "read timed out", "type": "TimeoutError"}


def test_plain_span_keeps_everything() -> None:
    (event,) = parse_json(golden_input("plain_span")).items
    assert event["kind"] == "chain" and event["name"] == "GET /weather"
    assert event["metadata"] == {"http.request.method": "GET", "http.response.status_code": 200, "retry": False,
                                 "ratio": event["metadata"]["ratio"], "tags": ["a", "b"],
                                 "nested": {"k": "v", "n": 1}, "blob": "AAFyYXc=", "empty": None, "team": "search"}
    assert event["tags"] == ["beta"] and event["user_id"] == "user-9"
    extra = event["extra"]
    assert extra["events"] == [{"name": "cache.miss", "time_ns": 1795438021001000000, "attributes": {"key": "paris"}}]
    assert extra["links"][0]["span_id"] == "a3ce929d0e0e4736" and extra["trace_state"] == "vendor=1"
    assert extra["resource"] == {"service.name": "weather-api", "deployment.environment": "test"}
    assert (extra["span_kind"], extra["status"]) == ("SPAN_KIND_SERVER", "STATUS_CODE_OK")


def test_malformed_spans_fail_alone_naming_the_field() -> None:
    parsed = parse_json(golden_input("malformed_spans"))
    errors = {i: item.field for i, item in enumerate(parsed.items) if isinstance(item, MappingError)}
    base = "resourceSpans[0].scopeSpans[1].spans"
    assert errors == {
        1: f"{base}[0].traceId",
        3: f"{base}[2].startTimeUnixNano",
        4: f"{base}[3].attributes[0].value.intValue",
        5: f"{base}[4].attributes.honeyhive_event_type",
        6: f"{base}[5].kind",
        8: f"{base}[7].attributes.honeyhive_inputs.a.b",
        9: f"{base}[8]",
    }
    assert [e["run_id"] for e in parsed.events] == ["00f067aa0ba902b7", "b7ad6b7169203331", "2222222222222222"]
    assert parsed.events[2]["parent_run_id"] is None
    status, body = otlp.answer(parsed)
    assert status == 200 and body["partialSuccess"]["rejectedSpans"] == "7"
    assert body["partialSuccess"]["errorMessage"].startswith(f"{base}[0].traceId: invalid hex")
    status, raw = otlp.answer(parsed, protobuf=True)
    response = ExportTraceServiceResponse.FromString(raw)
    assert (status, response.partial_success.rejected_spans) == (200, 7)


def test_values_nested_past_the_limit_fail_their_span_alone() -> None:
    """Arrays and kvlists are read with their depth: one nested past ``MAX_DEPTH`` fails its
    span, naming where, instead of a walk over the whole document beforehand."""
    def nested(levels: int) -> dict:
        value = {"stringValue": "leaf"}
        for n in range(levels):
            value = {"arrayValue": {"values": [value]}} if n % 2 else {"kvlistValue": {"values": [{"key": "k", "value": value}]}}
        return value

    def span(n: int, levels: int) -> dict:
        return {"traceId": f"{n:032x}", "spanId": f"{n:016x}", "name": "s", "startTimeUnixNano": "1",
                "attributes": [{"key": "deep", "value": nested(levels)}]}

    body = orjson.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span(1, MAX_DEPTH), span(2, MAX_DEPTH + 1)]}]}]})
    parsed = parse_json(body)
    assert parsed.events[0]["metadata"]["deep"] is not None
    error = parsed.items[1]
    assert isinstance(error, MappingError) and error.problem == f"nested deeper than {MAX_DEPTH} levels"
    assert error.field.startswith("resourceSpans[0].scopeSpans[0].spans[1].attributes[0].value.")


@pytest.mark.parametrize("flat", [
    {"0.role": "user", "0.content": "hi", "1.role": "assistant", "1.content": "hello"},
    {"1.role": "assistant", "0.role": "user", "0.content": "hi"},
    {"0.role": "user", "00.role": "system"},
    {"0.0": "a", "0.1": "b"},
    {"0.role": "user", "0.meta": {"0": "x", "1": "y"}},
    {"0.role": "user", "2.role": "user"},
    {"0.role": "user", "0.tool_calls.0.id": "c1"},
    {"a": 1, "0.role": "user"},
])
def test_flattened_lists_read_alike_by_every_path(flat: dict) -> None:
    """The remembered shape of the commonest flattening gives what the general reading gives."""
    assert otlp._unflatten(flat, "f", otlp._row_shape(tuple(flat))) == otlp._unflatten_paths(flat, "f")


def golden_spans() -> list[dict]:
    return [span for case in CASES for span in otlp.decode_request(golden_input(case), "application/json")
            if not isinstance(span, MappingError)]


@pytest.mark.parametrize("readers, planned", [(otlp.INPUT_READERS, "inputs"), (otlp.OUTPUT_READERS, "outputs")])
def test_readers_left_out_by_the_plan_would_find_nothing(readers, planned: str) -> None:
    """Skipping the readers whose attributes a span lacks gives what trying them all gives."""
    for span in golden_spans():
        every, skipping = otlp._Reading(span, otlp._plan_of(span)), otlp._Reading(span, otlp._plan_of(span))
        assert otlp._first([read for read, _ in readers], every) == otlp._first(getattr(skipping.plan, planned), skipping)
        assert (every.used, every.used_events) == (skipping.used, skipping.used_events)


def _attribute(key: str, value) -> dict:
    kind = {str: "stringValue", int: "intValue", float: "doubleValue", bool: "boolValue"}.get(type(value))
    return {"key": key, "value": {kind: value} if kind else value}


def _plain_span(n: int, *extra: tuple, status: dict | None = None, events: list | None = None) -> dict:
    """A span of the GenAI conventions' plainest kind, ``extra`` attributes added."""
    attributes = [("gen_ai.operation.name", "chat"), ("gen_ai.request.model", "gpt-4o"), ("gen_ai.request.temperature", 0.5),
                  ("gen_ai.usage.input_tokens", 12), ("gen_ai.usage.output_tokens", 3), ("gen_ai.prompt.0.role", "system"),
                  ("gen_ai.prompt.0.content", "Be brief."), ("gen_ai.prompt.1.role", "user"),
                  ("gen_ai.prompt.1.content", "Hi"), ("gen_ai.completion.0.role", "assistant"),
                  ("gen_ai.completion.0.content", "Hello"), ("service.tier", "gold"), *extra]
    span = {"traceId": f"{n + 1:032x}", "spanId": f"{n + 1:016x}", "name": "chat gpt-4o", "kind": 3,
            "startTimeUnixNano": "1767607200000000000", "endTimeUnixNano": "1767607201250000000",
            "attributes": [_attribute(k, v) for k, v in attributes]}
    if status is not None:
        span["status"] = status
    if events is not None:
        span["events"] = events
    return span


def _without(span: dict, *keys: str) -> dict:
    return {**span, "attributes": [a for a in span["attributes"] if a["key"] not in keys]}


PLAIN_VARIANTS = [
    _plain_span(0), _plain_span(1, ("user.id", "u-1"), ("gen_ai.request.max_tokens", 64)),
    _without(_plain_span(2), "gen_ai.operation.name"), _without(_plain_span(3), "gen_ai.operation.name", "gen_ai.request.model"),
    _without(_plain_span(4), "gen_ai.completion.0.role", "gen_ai.completion.0.content"),
    _plain_span(5, ("gen_ai.completion.1.role", "assistant"), ("gen_ai.completion.1.content", "Again")),
    _plain_span(6, ("gen_ai.prompt.2.role", "human"), ("gen_ai.prompt.2.content", {"arrayValue": {"values": [{"stringValue": "x"}]}})),
    _plain_span(7, ("gen_ai.prompt.2.role", "user"), ("gen_ai.prompt.2.name", "bob"), ("gen_ai.prompt.2.content", "hi")),
    _plain_span(8, ("honeyhive.project", "p"), ("honeyhive_duration_ms", 3.5)),
    # each of these takes the general reading a turn the plain one does not
    _plain_span(20, ("gen_ai.operation.name", "dance")), _plain_span(21, ("gen_ai.prompt.2.role", 5), ("gen_ai.prompt.2.content", "x")),
    _plain_span(22, ("gen_ai.prompt.2.role", "user"), ("gen_ai.prompt.2.content", {"kvlistValue": {"values": [
        {"key": "0", "value": {"intValue": 1}}]}})),
    _plain_span(23, ("gen_ai.usage.input_tokens", {})), _plain_span(24, ("gen_ai.request.model", {})),
    _plain_span(25, ("gen_ai.usage.input_tokens", -1)), _plain_span(26, ("gen_ai.usage.output_tokens", "3")),
    _plain_span(27, status={"code": 2, "message": "boom"}), _plain_span(28, status={"code": 1}),
    _plain_span(29, events=[{"name": "gen_ai.choice", "timeUnixNano": "1767607201250000000",
                             "attributes": [_attribute("message", '{"content": "x"}')]}]),
    _plain_span(30, ("gen_ai.response.model", "gpt-4o")), _plain_span(31, ("gen_ai.agent.name", "gpt-4o")),
    _plain_span(32, ("gen_ai.prompt.2.role", "user"), ("gen_ai.prompt.2.tool_calls", "[]")),
    _plain_span(33, ("gen_ai.prompt.3.role", "user")), _plain_span(34, ("error.type", "Timeout")),
    _plain_span(35, ("honeyhive_metadata.k", "v")), _plain_span(36, ("rosetta.metadata.k", "v")),
    _plain_span(37, ("gen_ai.operation.name", 3)), {**_plain_span(38), "startTimeUnixNano": str(10 ** 25)},
]


def _read(read, span: dict):
    try:
        return read(span)
    except MappingError as exc:
        return exc.field, exc.problem


def test_the_plain_reading_gives_what_the_general_reading_gives() -> None:
    """Every span the plain reading reads (and the errors it raises) matches the general
    reading; the spans it declines are read generally."""
    body = {"resourceSpans": [{"resource": {"attributes": [_attribute("service.name", "svc")]},
                               "scopeSpans": [{"scope": {"name": "s"}, "spans": PLAIN_VARIANTS}]}]}
    spans = [*golden_spans(), *otlp.decode_request(orjson.dumps(body), "application/json")]
    assert not [span for span in spans if isinstance(span, MappingError)]
    read_plainly = 0
    for span in spans:
        plain = otlp._plan_of(span).plain
        general = _read(lambda s: otlp._read_generally(s, otlp._plan_of(s)), span)
        if plain is not None and _read(plain.read, span) is not None:
            read_plainly += 1
            assert _read(plain.read, span) == general, span["span_id"]
        assert _read(otlp.span_to_canonical, span) == general, span["span_id"]
    assert read_plainly >= 12


ANY_VALUES = [
    {"stringValue": "hi"}, {"boolValue": True}, {"intValue": 7}, {"intValue": "-7"}, {"doubleValue": 0.5},
    {"doubleValue": "-Infinity"}, {"bytesValue": "AAE="}, {"arrayValue": {"values": [{"stringValue": "a"}, {}]}},
    {"kvlistValue": {"values": [{"key": "k", "value": {"intValue": 1}}]}}, {"stringValue": 5}, {"intValue": "x"},
    {"boolValue": "true"}, {"intValue": True}, {"intValue": 7.0}, {"bytesValue": "!"}, {"arrayValue": 3}, {"nope": 1},
]


def read_value(value: dict):
    try:
        return otlp_wire._json_value(value)
    except MappingError as exc:
        return exc.field, exc.problem


@pytest.mark.parametrize("value", ANY_VALUES)
def test_a_lone_value_member_reads_as_among_unknown_members(value: dict) -> None:
    """The one-member AnyValue read directly agrees with the general reading, which picks
    the value member out from members it ignores."""
    assert read_value(value) == read_value({**value, "exporterNote": "ignored"})


def test_attributes_read_each_value_as_the_value_reader_does() -> None:
    """String and integer values read inline in the attribute loop agree with `_json_value`."""
    values = [v for v in ANY_VALUES if not isinstance(read_value(v), tuple)]
    values += [{"stringValue": "x", "intValue": 1}, {"stringValue": "x", "note": 1}, {}, None]
    pairs = [{"key": f"k{i}", "value": value} for i, value in enumerate(values)]
    expected = {}
    for pair in pairs:
        try:
            expected[pair["key"]] = otlp_wire._json_value(pair["value"])
        except MappingError:
            with pytest.raises(MappingError):
                otlp_wire._json_attributes([pair])
    assert otlp_wire._json_attributes([p for p in pairs if p["key"] in expected]) == expected


def test_what_attribute_names_decide_is_remembered_within_a_bound() -> None:
    otlp._PLANS.clear()
    for n in range(otlp.MAX_REMEMBERED + 10):
        plan = otlp._remembered(otlp._PLANS, (f"gen_ai.prompt.{n}.role", "gen_ai.request.model"), otlp._Plan)
        assert plan.groups == {"gen_ai.prompt": {f"{n}.role": f"gen_ai.prompt.{n}.role"},
                               "gen_ai.request": {"model": "gen_ai.request.model"}}
        assert [(head, key, sources) for head, key, _, sources in plan.table] == [("model", "", ("gen_ai.request.model",))]
        assert plan.params == ()
        assert len(otlp._PLANS) <= otlp.MAX_REMEMBERED


def test_protobuf_span_with_bad_ids_fails_alone() -> None:
    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add().spans
    spans.add(trace_id=b"\x01" * 16, span_id=b"\x02" * 8, start_time_unix_nano=1)
    spans.add(trace_id=b"\x01" * 15, span_id=b"\x03" * 8, start_time_unix_nano=1)
    spans.add(trace_id=b"\x01" * 16, span_id=b"\x04" * 8, parent_span_id=b"\x05", start_time_unix_nano=1)
    parsed = otlp.parse_request(request.SerializeToString(), otlp.PROTOBUF)
    assert parsed.ids == ["0202020202020202", None, None]
    assert [i.field for i in parsed.items[1:]] == ["resourceSpans[0].scopeSpans[0].spans[1].traceId",
                                                   "resourceSpans[0].scopeSpans[0].spans[2].parentSpanId"]


@pytest.mark.parametrize("body, content_type, field", [
    (b"{", "application/json", ""),
    (b"[]", "application/json", ""),
    (b'{"resourceSpans": 5}', "application/json", "resourceSpans"),
    (b'{"resourceSpans": [{"scopeSpans": [{"spans": {}}]}]}', "application/json",
     "resourceSpans[0].scopeSpans[0].spans"),
    (b'{"resourceSpans": [{"resource": {"attributes": [{"key": 1}]}}]}', "application/json",
     "resourceSpans[0].resource.attributes[0].key"),
    (b'{"resourceSpans": [{"resource": {"attributes": [{"key": "a", "value": {}}, {"key": "a", "value": {}},'
     b' {"value": {}}]}}]}', "application/json", "resourceSpans[0].resource.attributes[2].key"),
    (b'{"resourceSpans": [{"resource": {"attributes": [{"key": "a", "value": {"intValue": "1"}},'
     b' {"key": "b", "value": {"intValue": "x"}}]}}]}', "application/json",
     "resourceSpans[0].resource.attributes[1].value.intValue"),
    (b"\xff\xff", "application/x-protobuf", ""),
    (b"{}", "text/plain", "Content-Type"),
])
def test_a_request_that_does_not_decode_fails_whole(body: bytes, content_type: str, field: str) -> None:
    with pytest.raises(MappingError) as caught:
        otlp.decode_request(body, content_type)
    assert caught.value.field == field


def test_empty_request_is_a_full_success() -> None:
    assert otlp.parse_request(b"{}", "application/json").items == []
    assert otlp.answer(otlp.parse_request(b"", otlp.PROTOBUF), protobuf=True) == (200, b"")


# ---- answers -------------------------------------------------------------------------------

def test_answers_in_both_encodings() -> None:
    assert otlp.encode_answer(0, "", protobuf=False) == b"{}"
    assert orjson.loads(otlp.encode_answer(2, "bad", protobuf=False)) == {
        "partialSuccess": {"rejectedSpans": "2", "errorMessage": "bad"}}
    response = ExportTraceServiceResponse.FromString(otlp.encode_answer(2, "bad", protobuf=True))
    assert (response.partial_success.rejected_spans, response.partial_success.error_message) == (2, "bad")
    assert orjson.loads(otlp.error_answer("cannot decode", protobuf=False)) == {"code": 3, "message": "cannot decode"}
    assert otlp.error_answer("bad", protobuf=True) == b"\x08\x03\x12\x03bad"  # google.rpc.Status{code: 3, message}
    assert otlp.error_body("bad") == {"code": 3, "message": "bad"}


@pytest.mark.parametrize("body, verdict", [
    ({}, OK), (b"", OK), (None, OK), (b"{}", OK),
    ({"partialSuccess": {"rejectedSpans": "1", "errorMessage": "too old"}}, REJECT),
    ({"partialSuccess": {"rejectedSpans": 0, "errorMessage": "a warning"}}, OK),
    (b'{"partialSuccess": {"rejectedSpans": 3}}', REJECT),
    (ExportTraceServiceResponse(partial_success={"rejected_spans": 2, "error_message": "no"}).SerializeToString(), REJECT),
    (ExportTraceServiceResponse().SerializeToString(), OK),
])
def test_reading_a_collectors_answer(body, verdict) -> None:
    events = [llm_event("r1"), llm_event("r2")]
    (request,) = otlp.encode(events, {})
    outcomes = request.read(body)
    assert [o.verdict for o in outcomes] == [verdict, verdict]
    if verdict == REJECT:
        assert "rejected" in outcomes[0].reason


# ---- egress --------------------------------------------------------------------------------

def llm_event(run_id: str, parent: str | None = None, session: str | None = None) -> dict:
    event = new_event("lunary", "llm", "complete", run_id, "2026-11-23T12:00:01.500Z")
    event.update(parent_run_id=parent, session_id=session, name="openai.chat", model="gpt-4o", provider="openai",
                 started_at="2026-11-23T12:00:01.000Z", ended_at="2026-11-23T12:00:01.500Z",
                 params={"temperature": 0.3, "max_tokens": 64, "stop": ["END"]},
                 input=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
                 output={"role": "assistant", "content": "Hello!"},
                 usage={"prompt_tokens": 12, "completion_tokens": 3, "cached_prompt_tokens": None,
                        "total_tokens": 15, "estimated": True},
                 user_id="user-1", user_props={"plan": "pro"}, tags=["beta"], metadata={"team": "search"})
    return event


def tree_events() -> list[dict]:
    agent = new_event("lunary", "agent", "complete", "run-agent", "2026-11-23T12:00:02.000Z")
    agent.update(name="planner", started_at="2026-11-23T12:00:00.000Z", ended_at="2026-11-23T12:00:02.000Z",
                 input="plan a trip", output="done")
    tool = new_event("lunary", "tool", "complete", "run-tool", "2026-11-23T12:00:01.800Z")
    tool.update(parent_run_id="run-agent", name="search", input={"q": "Paris"}, output=["a", "b"],
                started_at="2026-11-23T12:00:01.600Z", ended_at="2026-11-23T12:00:01.800Z",
                error={"message": "partial results", "stack": "Traceback ...", "type": "SearchError"})
    chain = new_event("llmonitor", "chain", "complete", "other-root", "2026-11-23T12:00:03.000Z")
    chain.update(name="other-root", started_at="2026-11-23T12:00:03.000Z", ended_at="2026-11-23T12:00:03.000Z")
    ignored = new_event("lunary", "llm", "start", "run-llm", "2026-11-23T12:00:01.000Z")
    return [agent, llm_event("run-llm", parent="run-agent"), tool, chain, ignored]


def exported_spans(request) -> dict[str, Span]:
    message = ExportTraceServiceRequest.FromString(request.body)
    assert [kv.key for kv in message.resource_spans[0].resource.attributes] == ["service.name"]
    return {s.name: s for rs in message.resource_spans for ss in rs.scope_spans for s in ss.spans}


def attributes_of(span: Span) -> dict:
    return {kv.key: otlp_wire._proto_value(kv.value) for kv in span.attributes}


def test_egress_builds_the_span_tree_in_protobuf() -> None:
    events = tree_events()
    (request,) = otlp.encode(events, {"service_name": "gateway-test"})
    assert (request.method, request.path, request.covers) == ("POST", "/v1/traces", [0, 1, 2, 3])
    assert request.headers == {"Content-Type": "application/x-protobuf"}
    spans = exported_spans(request)
    assert set(spans) == {"invoke_agent planner", "chat gpt-4o", "execute_tool search", "other-root"}
    agent, llm, tool, other = (spans[n] for n in ("invoke_agent planner", "chat gpt-4o", "execute_tool search",
                                                  "other-root"))
    assert agent.trace_id == llm.trace_id == tool.trace_id != other.trace_id
    assert llm.parent_span_id == tool.parent_span_id == agent.span_id and not agent.parent_span_id
    assert len({s.span_id for s in spans.values()}) == 4 and len(agent.trace_id) == 16
    assert (llm.kind, agent.kind) == (Span.SPAN_KIND_CLIENT, Span.SPAN_KIND_INTERNAL)
    assert llm.start_time_unix_nano == 1795435201_000_000_000 and llm.end_time_unix_nano == 1795435201_500_000_000
    attrs = attributes_of(llm)
    assert {k: v for k, v in attrs.items() if not k.startswith(("gen_ai.input", "gen_ai.output"))} == {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
        "gen_ai.request.temperature": 0.3, "gen_ai.request.max_tokens": 64, "gen_ai.request.stop_sequences": ["END"],
        "gen_ai.usage.input_tokens": 12, "gen_ai.usage.output_tokens": 3, "rosetta.usage.estimated": True,
        "user.id": "user-1", "rosetta.tags": ["beta"], "rosetta.metadata.team": "search",
        "rosetta.user_props.plan": "pro", "rosetta.name": "openai.chat",
    }
    assert json.loads(attrs["gen_ai.input.messages"]) == [
        {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
        {"role": "user", "parts": [{"type": "text", "content": "Hi"}]}]
    assert json.loads(attrs["gen_ai.output.messages"]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "Hello!"}]}]
    assert attributes_of(agent)["gen_ai.agent.name"] == "planner"
    assert attributes_of(other)["rosetta.kind"] == "chain"
    tool_attrs = attributes_of(tool)
    assert (tool_attrs["gen_ai.tool.name"], tool_attrs["error.type"]) == ("search", "SearchError")
    assert json.loads(tool_attrs["gen_ai.tool.call.arguments"]) == {"q": "Paris"}
    assert (tool.status.code, tool.status.message) == (Status.STATUS_CODE_ERROR, "partial results")
    (exception,) = tool.events
    assert exception.name == "exception" and attributes_of(exception) == {
        "exception.type": "SearchError", "exception.message": "partial results", "exception.stacktrace": "Traceback ..."}
    assert otlp.encode(events, {"service_name": "gateway-test"})[0].body == request.body


def test_trace_ids_hold_across_batches() -> None:
    agent, llm, tool, *_ = tree_events()
    whole = exported_spans(otlp.encode([agent, llm, tool], {})[0])
    alone = exported_spans(otlp.encode([tool], {})[0])
    assert alone["execute_tool search"].trace_id == whole["invoke_agent planner"].trace_id
    assert alone["execute_tool search"].parent_span_id == whole["invoke_agent planner"].span_id
    first = llm_event("a", session="thread-1")
    later = llm_event("b", parent="unseen-parent", session="thread-1")
    traces = {s.trace_id for s in exported_spans(otlp.encode([first], {})[0]).values()}
    traces |= {s.trace_id for s in exported_spans(otlp.encode([later], {})[0]).values()}
    assert len(traces) == 1
    grandchild = llm_event("c", parent="run-tool")
    grandchild["extra"]["trace_root"] = "run-agent"
    (span,) = exported_spans(otlp.encode([grandchild], {})[0]).values()
    assert span.trace_id == whole["invoke_agent planner"].trace_id


def test_egress_json_encoding() -> None:
    (request,) = otlp.encode(tree_events(), {"encoding": "json"})
    assert request.headers == {"Content-Type": "application/json"}
    span = request.body["resourceSpans"][0]["scopeSpans"][0]["spans"][1]
    assert len(span["traceId"]) == 32 and len(span["spanId"]) == 16 and span["kind"] == 3
    assert request.body["resourceSpans"][0]["resource"]["attributes"][0]["value"] == {"stringValue": "rosetta"}
    decoded = otlp.decode_request(orjson.dumps(request.body), "application/json")
    assert decoded == otlp.decode_request(exported_request_bytes(tree_events()), otlp.PROTOBUF)


def exported_request_bytes(events: list[dict]) -> bytes:
    return otlp.encode(events, {})[0].body


def test_nothing_complete_nothing_sent() -> None:
    assert otlp.encode([tree_events()[-1]], {}) == []


# ---- round trips -----------------------------------------------------------------------------

ROUND_TRIP_FIELDS = ("kind", "run_id", "parent_run_id", "session_id", "name", "model", "provider", "started_at",
                     "ended_at", "timestamp", "input", "output", "params", "usage", "error", "feedback", "metrics",
                     "user_id", "user_props", "tags", "metadata")


@pytest.mark.parametrize("case", ["hh_tracer", "genai_agent_json_messages", "genai_error", "plain_span"])
def test_otlp_in_otlp_out_forwards_the_spans_as_they_came(case: str) -> None:
    body = golden_input(case)
    parsed = parse_json(body)
    for encoding in ("protobuf", "json"):
        (request,) = otlp.encode(parsed.events, {"encoding": encoding})
        content_type = request.headers["Content-Type"]
        wire_body = request.body if encoding == "protobuf" else orjson.dumps(request.body)
        sent = otlp.decode_request(wire_body, content_type)
        received = otlp.decode_request(body, "application/json")
        strip = lambda spans: sorted(({k: v for k, v in s.items() if k != "path"} for s in spans),
                                     key=lambda s: s["span_id"])
        assert strip(sent) == strip(received)


@pytest.mark.parametrize("case", ["hh_tracer", "genai_agent_json_messages", "genai_messages_indexed", "genai_error",
                                  "plain_span"])
def test_canonical_survives_a_trip_through_otlp(case: str) -> None:
    parsed = parse_json(golden_input(case))
    rebuilt = [dict(copy.deepcopy(e), raw=None) for e in parsed.events]
    (request,) = otlp.encode(rebuilt, {})
    again = otlp.parse_request(request.body, otlp.PROTOBUF)
    assert [e["extra"]["trace_id"] for e in again.events] == [e["extra"]["trace_id"] for e in parsed.events]
    for before, after in zip(parsed.events, again.events):
        assert {f: after[f] for f in ROUND_TRIP_FIELDS} == {f: before[f] for f in ROUND_TRIP_FIELDS}


def test_other_dialects_survive_a_trip_through_otlp() -> None:
    events = tree_events()[:4]
    (request,) = otlp.encode(events, {})
    again = by_run(otlp.parse_request(request.body, otlp.PROTOBUF))
    for event in events:
        after = again[otlp.span_id_of(event["run_id"])]
        for field in ("kind", "name", "model", "provider", "input", "output", "params", "error", "user_id",
                      "user_props", "tags", "metadata", "started_at", "ended_at"):
            assert after[field] == event[field], (event["run_id"], field)
        assert after["usage"] == event["usage"]


def test_honeyhive_token_metrics_and_bad_values() -> None:
    def one_span(*pairs) -> dict:
        attributes = [{"key": k, "value": v} for k, v in pairs]
        body = {"resourceSpans": [{"scopeSpans": [{"spans": [{
            "traceId": "8ad9b74a673d8446df533475295f218c", "spanId": "5a27b7c7175009f3", "name": "openai.chat",
            "startTimeUnixNano": "1795438021353211393", "endTimeUnixNano": "1795438021353861431",
            "attributes": attributes}]}]}]}
        return parse_json(orjson.dumps(body)).items[0]

    event = one_span(("honeyhive_event_type", {"stringValue": "model"}),
                     ("honeyhive_metrics.prompt_tokens", {"intValue": "7"}),
                     ("honeyhive_metrics.completion_tokens", {"intValue": 2}))
    assert event["usage"]["total_tokens"] == 9 and event["metrics"] == {"prompt_tokens": 7, "completion_tokens": 2}
    bad = one_span(("gen_ai.usage.input_tokens", {"doubleValue": "Infinity"}))
    assert bad.field == "resourceSpans[0].scopeSpans[0].spans[0].attributes.gen_ai.usage.input_tokens"
    late = one_span(("gen_ai.request.model", {"stringValue": "m"}))
    assert late["kind"] == "llm" and late["ended_at"] == "2026-11-23T12:47:01.353Z"
    assert "expected a number" in str(one_span(("x", {"doubleValue": []})))
    for key in ("rosetta.kind", "gen_ai.operation.name"):
        listed = one_span((key, {"arrayValue": {"values": [{"stringValue": "llm"}]}}))
        assert listed["kind"] == "chain", "a list where a name belongs is kept, not a crash"
    assert "honeyhive_event_type" in str(one_span(("honeyhive_event_type", {"arrayValue": {"values": []}})))


def test_message_parts_survive_a_trip_through_otlp() -> None:
    event = llm_event("r1")
    event["input"] = [
        {"role": "user", "name": "ada", "content": [
            {"type": "text", "text": "Look:"}, {"type": "image", "url": "https://example.com/a.png"},
            {"type": "tool_result", "tool_call_id": "call_9", "content": "ok", "is_error": False}]},
        {"role": "assistant", "content": "Calling.", "tool_calls": [
            {"id": "call_10", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}}]},
        {"role": "tool", "tool_call_id": "call_10", "content": "done"},
    ]
    (request,) = otlp.encode([event], {})
    (again,) = otlp.parse_request(request.body, otlp.PROTOBUF).events
    assert again["input"] == event["input"]
