"""The trickier pure pieces of the mappings, one behaviour per test.

The golden folders pin whole payloads; these tests pin the small converters they are
built from, the answers egress reads back, the round trips, and that no input, however
odd, makes a mapping raise anything but `MappingError`.
"""
import copy
import importlib
import json
import uuid
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mappings import fields, honeyhive, ids, llmonitor, lunary, messages, stream_events, times, voker
from mappings.canonical import validate_event
from mappings.egress import OK, REJECT, RETRY
from mappings.errors import MAX_DEPTH, MappingError, check_depth, depth

INGRESS = Path(__file__).parent / "golden" / "ingress"
T0 = "2026-11-23T13:03:45.000Z"


# ---- message normalization ------------------------------------------------------

@pytest.mark.parametrize("given, expected", [
    ({"role": "ai", "text": "hi"}, {"role": "assistant", "content": "hi"}),
    ({"role": "user", "text": "Hello v0"}, {"role": "user", "content": "Hello v0"}),
    ({"role": "human", "content": "q"}, {"role": "user", "content": "q"}),
    ({"role": "system", "text": "You are an assistant"}, {"role": "system", "content": "You are an assistant"}),
])
def test_v0_messages_become_openai_shaped(given, expected):
    assert messages.normalize(given) == expected


def test_openai_tool_calls_and_tool_messages_pass_through():
    history = [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "21C", "name": "get_weather"},
    ]
    assert messages.normalize(history) == history


def test_openai_legacy_function_call_becomes_a_tool_call():
    out = messages.normalize({"role": "assistant", "content": None, "function_call": {"name": "f", "arguments": "{}"}})
    assert out == {"role": "assistant", "content": None,
                   "tool_calls": [{"id": None, "type": "function", "function": {"name": "f", "arguments": "{}"}}]}


def test_anthropic_blocks_text_tool_use_and_tool_result():
    assistant = messages.normalize({"role": "assistant", "content": [
        {"type": "text", "text": "Let me look."},
        {"type": "tool_use", "id": "toolu_1", "name": "search", "input": {"q": "x", "n": 2}},
    ]})
    assert assistant == {"role": "assistant", "content": "Let me look.", "tool_calls": [
        {"id": "toolu_1", "type": "function", "function": {"name": "search", "arguments": "{\"q\":\"x\",\"n\":2}"}}]}
    user = messages.normalize({"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "found"}]},
        {"type": "image", "source": {"type": "base64", "data": "AAAA"}},
    ]})
    assert user == {"role": "user", "content": [
        {"type": "tool_result", "tool_call_id": "toolu_1", "content": [{"type": "text", "text": "found"}]},
        {"type": "image", "source": {"type": "base64", "data": "AAAA"}},
    ]}


def test_anthropic_tool_use_only_leaves_no_text():
    out = messages.normalize({"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]})
    assert out["content"] == [] and out["tool_calls"][0]["function"] == {"name": "f", "arguments": "{}"}


def test_gemini_parts_text_function_call_and_response():
    model = messages.normalize({"role": "model", "parts": [
        {"text": "Checking."}, {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]})
    assert model == {"role": "assistant", "content": "Checking.", "tool_calls": [
        {"id": None, "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]}
    user = messages.normalize({"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"t": 21}}}]})
    assert user == {"role": "user", "content": [{"type": "tool_result", "name": "get_weather", "content": {"t": 21}}]}


def test_odd_parts_are_kept_not_dropped():
    out = messages.normalize({"role": "user", "content": ["plain", 7, {"functionCall": "not an object"}, {"type": "input_text", "text": "t"}]})
    assert out["content"] == [{"type": "text", "text": "plain"}, {"type": "unknown", "value": 7},
                              {"functionCall": "not an object"}, {"type": "text", "text": "t"}]
    assert "tool_calls" not in out


@pytest.mark.parametrize("value", [
    "plain text", {"q": 1}, [{"role": "user", "content": "a"}, "not a message"], [],
    {"role": "user", "content": "x", "tool_calls": "not a list"}, {"role": 5, "content": "x"}, {"role": "user"},
])
def test_values_that_are_not_messages_are_kept_as_given(value):
    assert messages.normalize(value) == value


def test_extra_message_keys_are_kept():
    assert messages.normalize({"role": "assistant", "content": "x", "isRetry": True, "refusal": None}) == \
        {"role": "assistant", "content": "x", "isRetry": True, "refusal": None}


# ---- canonical messages to LLMonitor v0 ------------------------------------------

def test_to_v0_assistant_is_ai_and_content_is_text():
    assert messages.to_v0([{"role": "system", "content": "s"}, {"role": "assistant", "content": "a"}]) == \
        [{"role": "system", "text": "s"}, {"role": "ai", "text": "a"}]


def test_to_v0_joins_text_parts_and_keeps_tool_fields():
    message = {"role": "assistant", "content": [{"type": "text", "text": "a"}, {"type": "image", "url": "u"},
                                                 {"type": "text", "text": "b"}, {"type": "text", "text": 5}],
               "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}
    assert messages.to_v0(message) == {"role": "ai", "text": "ab", "tool_calls": message["tool_calls"]}
    assert messages.to_v0({"role": "tool", "content": None, "tool_call_id": "c", "name": "f"}) == \
        {"role": "tool", "text": "", "tool_call_id": "c", "name": "f"}


@pytest.mark.parametrize("value", ["text", {"a": 1}, [1, 2], [], None])
def test_to_v0_leaves_non_messages_alone(value):
    assert messages.to_v0(value) == value


# ---- timestamps --------------------------------------------------------------------

@pytest.mark.parametrize("given, expected", [
    ("2026-11-23T13:03:45.000Z", "2026-11-23T13:03:45.000Z"),
    ("2026-11-23T13:03:45Z", "2026-11-23T13:03:45.000Z"),
    ("2026-11-23T15:03:45.123456+02:00", "2026-11-23T13:03:45.123Z"),
    ("2026-11-23T13:03:45.5-00:30", "2026-11-23T13:33:45.500Z"),
    ("2026-11-23T13:03:45", "2026-11-23T13:03:45.000Z"),
    ("2026-11-23 13:03:45.000Z", "2026-11-23T13:03:45.000Z"),
    ("2026-11-23", "2026-11-23T00:00:00.000Z"),
    (1700000000123, "2023-11-14T22:13:20.123Z"),
    (1700000000123.9, "2023-11-14T22:13:20.123Z"),
    (0, "1970-01-01T00:00:00.000Z"),
])
def test_iso_time_reads_iso_and_epoch_ms(given, expected):
    assert times.iso_time(given) == expected


@pytest.mark.parametrize("given, problem", [
    (True, "boolean"),
    (None, "got NoneType"),
    ([2026], "got list"),
    ("garbage", "invalid ISO 8601 date"),
    ("2026-13-45T00:00:00Z", "invalid ISO 8601 date"),
    (-1, "out of range"),
    (253402300800000, "out of range"),
    (10**30, "out of range"),
    ("0001-01-01T00:30:00+01:00", "date out of range"),
    ("9999-12-31T23:59:59-01:00", "date out of range"),
])
def test_iso_time_refuses_with_a_mapping_error(given, problem):
    with pytest.raises(MappingError, match=problem):
        times.iso_time(given)


def test_ms_time_takes_only_numbers():
    assert times.ms_time(1700000000000.0) == "2023-11-14T22:13:20.000Z"
    for value in ("1700000000000", True, None):
        with pytest.raises(MappingError, match="epoch milliseconds"):
            times.ms_time(value)


def test_ms_and_iso_round_trip():
    assert times.from_ms(times.to_ms("2026-11-23T13:03:45.123Z")) == "2026-11-23T13:03:45.123Z"


# ---- identifiers ---------------------------------------------------------------------

def test_as_uuid_keeps_uuids_and_derives_the_rest_deterministically():
    real = "11111111-1111-4111-8111-111111111111"
    assert ids.as_uuid(real) == real
    derived = ids.as_uuid("my-chain-1")
    assert derived == ids.as_uuid("my-chain-1") != ids.as_uuid("my-chain-2")
    assert str(uuid.UUID(derived)) == derived


@pytest.mark.parametrize("almost", [
    "{1111111-1111-4111-8111-111111111111}",  # braces: uuid.UUID takes them, the Lunary server does not
    "11111111111141118111111111111111----",  # 36 characters, hyphens in the wrong places
    "11111111111141118111111111111111",  # the right digits without hyphens
])
def test_as_uuid_derives_from_non_canonical_uuid_spellings(almost):
    assert not ids.is_uuid(almost)
    assert ids.as_uuid(almost) != almost and ids.is_uuid(ids.as_uuid(almost))


def test_content_hash_ignores_key_order():
    assert ids.content_hash({"a": 1, "b": [1, {"c": 2, "d": 3}]}) == ids.content_hash({"b": [1, {"d": 3, "c": 2}], "a": 1})
    assert ids.content_hash({"a": 1}) != ids.content_hash({"a": 2})


# ---- nesting depth ---------------------------------------------------------------

def _nested(levels: int, leaf, as_dict: bool = False):
    value = leaf
    for _ in range(levels):
        value = {"k": value} if as_dict else [value]
    return value


def _refused(value) -> bool:
    try:
        check_depth(value)
    except MappingError as exc:
        assert exc.problem == f"nested deeper than {MAX_DEPTH} levels"
        return True
    return False


def test_the_encoder_stops_at_254_containers():
    """`check_depth` lets the encoder count (under 254 - MAX_DEPTH wrapping lists): this is
    the limit it relies on."""
    orjson.dumps(_nested(254, 1))
    with pytest.raises(orjson.JSONEncodeError, match="Recursion limit"):
        orjson.dumps(_nested(255, 1))


@pytest.mark.parametrize("as_dict", [False, True])
@pytest.mark.parametrize("leaf, containers", [(1, 0), ("s", 0), ([], 1), ({}, 1)])
def test_depth_counts_containers_empty_ones_included(as_dict, leaf, containers):
    for levels in (MAX_DEPTH - 2, MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1):
        value = _nested(levels, leaf, as_dict)
        assert depth(value) == levels + containers
        assert _refused(value) == (levels + containers > MAX_DEPTH)


def test_a_document_the_encoder_refuses_for_another_reason_is_walked():
    """An integer past 64 bits makes the encoder fail at any depth: the walk decides."""
    assert not _refused({"n": 2**70, "deep": _nested(MAX_DEPTH - 1, 1)})
    assert _refused({"n": 2**70, "deep": _nested(MAX_DEPTH, 1)})


_json_trees = st.recursive(
    st.none() | st.integers(-5, 5) | st.text(max_size=3),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=2), inner, max_size=3),
    max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(tree=_json_trees, levels=st.integers(MAX_DEPTH - 12, MAX_DEPTH + 2), at_dict=st.booleans())
def test_check_depth_refuses_exactly_what_the_walk_counts_past_the_limit(tree, levels, at_dict):
    value = {"events": [_nested(levels, tree, at_dict), tree]}
    assert _refused(value) == (depth(value) > MAX_DEPTH)


# ---- field tables -------------------------------------------------------------------

_TABLE = (fields.Field("run_id", ("runId", "run_id"), "string"),
          fields.Field("tags", ("tags",), "string_list"),
          fields.Field("params", ("params",), "object"))


def _by_rows(src: dict) -> tuple[dict, dict]:
    """What reading the table means, row by row: each target from its first source key
    whose value is not null; every key neither in the table nor handled left over."""
    event = {}
    for row in _TABLE:
        value = next((src[k] for k in row.sources if src.get(k) is not None), None)
        if value is not None:
            event[row.target] = fields.CONVERTERS[row.convert](value)
    known = {k for row in _TABLE for k in row.sources} | {"type"}
    return event, {k: v for k, v in src.items() if k not in known}


_sources = st.dictionaries(
    st.sampled_from(["runId", "run_id", "tags", "params", "type", "other", "x"]),
    st.none() | st.text(max_size=3) | st.integers(0, 9) | st.lists(st.text(max_size=2), max_size=2)
    | st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
    max_size=7)


@settings(max_examples=400, deadline=None)
@given(src=_sources)
def test_a_reader_maps_and_leaves_over_what_the_table_says(src):
    reader = fields.Reader(_TABLE, handled=("type",))
    try:
        expected = _by_rows(src)
    except MappingError:
        with pytest.raises(MappingError):
            reader.read(src, {})
        return
    event = {}
    assert (event, reader.read(src, event)) == expected


def test_a_reader_takes_a_later_source_key_only_when_the_earlier_ones_are_null():
    reader = fields.Reader(_TABLE)
    for src, run_id in (({"run_id": "b", "runId": "a"}, "a"), ({"runId": "a", "run_id": "b"}, "a"),
                        ({"run_id": "b", "runId": None}, "b"),
                        ({"run_id": "b"}, "b")):
        event = {}
        assert reader.read(src, event) == {} and event == {"run_id": run_id}


def test_a_reader_names_the_key_of_a_bad_value():
    with pytest.raises(MappingError) as caught:
        fields.Reader(_TABLE).read({"run_id": ["not", "a", "string"]}, {})
    assert caught.value.field == "run_id"


# ---- Lunary egress: reading the per-event results --------------------------------------

def _lunary_request(raw_events: list[dict]):
    events = lunary.parse_ingest({"events": raw_events}).events
    [request] = lunary.encode(events, {})
    return request


START = {"type": "llm", "event": "start", "runId": "11111111-1111-4111-8111-111111111111", "timestamp": T0, "name": "gpt-4o"}
END = {"type": "llm", "event": "end", "runId": "11111111-1111-4111-8111-111111111111", "timestamp": T0, "output": "x"}
EXISTS = "Run with this ID already exists in the database."


def test_lunary_read_all_success():
    request = _lunary_request([START, END])
    outcomes = request.read({"results": [{"id": START["runId"], "success": True}] * 2})
    assert [o.verdict for o in outcomes] == [OK, OK]


def test_lunary_read_duplicate_start_counts_as_delivered():
    request = _lunary_request([START, END])
    outcomes = request.read({"results": [{"id": START["runId"], "success": False, "error": EXISTS},
                                         {"id": START["runId"], "success": True}]})
    assert [o.verdict for o in outcomes] == [OK, OK]


def test_lunary_read_already_exists_on_another_event_is_rejected():
    request = _lunary_request([END])
    [outcome] = request.read({"results": [{"success": False, "error": EXISTS}]})
    assert outcome.verdict == REJECT


def test_lunary_read_other_failures_are_rejected_with_the_reason():
    request = _lunary_request([START, END])
    outcomes = request.read({"results": [{"success": True},
                                         {"success": False, "error": "invalid input syntax for type uuid"}]})
    assert [o.verdict for o in outcomes] == [OK, REJECT]
    assert outcomes[1].reason == "invalid input syntax for type uuid"


@pytest.mark.parametrize("body", [
    {"results": [{"success": True}]},
    {"results": [{"success": True}] * 3},
    {"results": None},
    {"message": "oops"},
    [{"success": True}, {"success": True}],
])
def test_lunary_read_mismatched_answer_is_retried(body):
    request = _lunary_request([START, END])
    assert [o.verdict for o in request.read(body)] == [RETRY, RETRY]


def test_lunary_read_a_result_that_is_not_an_object_is_retried():
    request = _lunary_request([START, END])
    outcomes = request.read({"results": [{"success": True}, None]})
    assert [o.verdict for o in outcomes] == [OK, RETRY]


def test_lunary_read_one_record_sent_as_two_events_takes_the_worse_result():
    record = honeyhive.parse_event({"event": {"event_type": "tool", "event_name": "t", "event_id": "e-1",
                                              "start_time": 1700000000000, "end_time": 1700000000100}}).events
    [request] = lunary.encode(record, {})
    assert request.covers == [0] and len(request.body["events"]) == 2
    [outcome] = request.read({"results": [{"success": True}, {"success": False, "error": "boom"}]})
    assert (outcome.verdict, outcome.reason) == (REJECT, "boom")


# ---- HoneyHive PUT /events: one update split into canonical events ---------------------

def test_honeyhive_update_with_feedback_and_metadata_is_two_events():
    parsed = honeyhive.parse_update({"event_id": "e-1", "feedback": {"liked": True}, "metadata": {"a": 1},
                                     "end_time": 1700000001000, "children_ids": ["c"]})
    feedback, update = parsed.items
    assert (feedback["phase"], feedback["feedback"], feedback["metadata"]) == ("feedback", {"liked": True}, {})
    assert (update["phase"], update["metadata"], update["feedback"]) == ("update", {"a": 1}, None)
    assert update["ended_at"] == feedback["timestamp"] == update["timestamp"] == "2023-11-14T22:13:21.000Z"
    assert update["extra"] == {"children_ids": ["c"]}
    assert parsed.ids == ["e-1", "e-1"]


@pytest.mark.parametrize("payload, phases", [
    ({"event_id": "e", "feedback": {"rating": 5}}, ["feedback"]),
    ({"event_id": "e", "outputs": {"answer": "hi"}}, ["update"]),
    ({"event_id": "e", "config": {"model": "gpt-4o", "temperature": 0}}, ["update"]),
    ({"event_id": "e", "duration": 12}, ["update"]),
    ({"event_id": "e"}, []),
])
def test_honeyhive_update_split(payload, phases):
    assert [e["phase"] for e in honeyhive.parse_update(payload).items] == phases


def test_honeyhive_update_kind_comes_from_the_caller():
    [event] = honeyhive.parse_update({"event_id": "e", "feedback": {}}, kind="llm").items
    assert event["kind"] == "llm"


@pytest.mark.parametrize("payload, field", [
    ({"feedback": {}}, "event_id"),
    ({"event_id": "e", "feedback": "good"}, "feedback"),
    ({"event_id": "e", "end_time": "soon"}, "end_time"),
    ({"event_id": "e", "metadata": [1]}, "metadata"),
])
def test_honeyhive_update_refusals_name_the_field(payload, field):
    with pytest.raises(MappingError) as caught:
        honeyhive.parse_update(payload)
    assert caught.value.field == field


# ---- round trips -----------------------------------------------------------------------

def _golden_raw_events(dialect: str) -> list[dict]:
    """Every event of the dialect's golden inputs that maps without error."""
    out = []
    for folder in sorted((INGRESS / dialect).iterdir()):
        case = json.loads((folder / "case.json").read_text())
        try:
            parsed = getattr(importlib.import_module(f"mappings.{dialect}"), case["endpoint"])(
                json.loads((folder / "input.json").read_text()), **case.get("args", {}))
        except MappingError:
            continue
        out.extend(parsed.events)
    return out


def test_lunary_to_lunary_forwards_every_field_of_the_raw_event():
    events = _golden_raw_events("lunary")
    before = copy.deepcopy(events)
    [request] = lunary.encode(events, {})
    assert request.body["events"] == [e["raw"] for e in before]
    [request] = lunary.encode(events, {"project": "p"})
    assert request.body["events"] == [{**e["raw"], "appId": "p"} for e in before]
    assert events == before, "encoding must not change the canonical events it is given"


def test_llmonitor_to_llmonitor_forwards_every_field_of_the_raw_event():
    events = _golden_raw_events("llmonitor")
    [request] = llmonitor.encode(events, {"app_id": "app-1"})
    assert request.body["events"] == [{**e["raw"], "app": "app-1"} for e in events]


RICH = [
    {"type": "llm", "event": "start", "runId": "run-1", "parentRunId": "parent-1", "name": "gpt-4o", "timestamp": T0,
     "input": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"},
               {"role": "assistant", "content": None, "tool_calls": [
                   {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
               {"role": "tool", "tool_call_id": "c1", "content": "r"}],
     "tags": ["t1", "t2"], "metadata": {"a": 1, "nested": {"x": [1, 2]}}, "userId": "user-42",
     "userProps": {"plan": "pro"}, "params": {"temperature": 0.5}},
    {"type": "llm", "event": "end", "runId": "run-1", "parentRunId": "parent-1", "timestamp": "2026-11-23T13:03:46.000Z",
     "output": {"role": "assistant", "content": "a"}, "tokensUsage": {"prompt": 10, "completion": 5, "promptCached": 4}},
    {"type": "tool", "event": "error", "runId": "run-2", "parentRunId": "run-1", "timestamp": T0,
     "error": {"message": "boom", "stack": "at x"}},
    {"type": "chain", "event": "feedback", "runId": "run-1", "timestamp": T0, "feedback": {"thumb": "up"}},
    {"type": "chain", "event": "update", "runId": "run-1", "timestamp": T0, "metadata": {"b": 2}, "userId": "u-2"},
]
KEPT = ("type", "event", "runId", "parentRunId", "name", "timestamp", "input", "output", "tags", "metadata",
        "userId", "userProps", "params", "tokensUsage", "error", "feedback")


@pytest.mark.parametrize("raw", RICH, ids=[f"{r['type']}-{r['event']}" for r in RICH])
def test_lunary_round_trip_through_the_canonical_event_without_raw(raw):
    event = stream_events.to_canonical(raw, "lunary")
    event["raw"] = None
    [back] = stream_events.from_canonical(event, v0=False, uuids=False)
    assert {k: raw[k] for k in KEPT if k in raw} == {k: back[k] for k in KEPT if k in back}


def test_lunary_thread_chat_round_trip_without_raw():
    raw = {"type": "thread", "event": "chat", "runId": "m-1", "parentRunId": "thread-1", "timestamp": T0,
           "message": {"role": "user", "content": "hi"}, "userId": "u-1"}
    event = stream_events.to_canonical(raw, "lunary")
    assert stream_events.from_canonical(event, v0=False, uuids=False) == [raw]


def test_llm_run_is_named_by_its_model_on_the_way_out():
    record = honeyhive.parse_event({"event": {"event_type": "model", "event_name": "answer", "event_id": "e-1",
                                              "config": {"model": "gpt-4o"}, "start_time": 1700000000000,
                                              "end_time": 1700000000100}}).events
    start, end = stream_events.from_canonical(record[0], v0=False, uuids=True)
    assert start["name"] == "gpt-4o" and "name" not in end


def test_honeyhive_session_start_keeps_the_clients_session_id():
    parsed = honeyhive.parse_session_start({"session": {"session_id": "635ad48a-9d66-496b-bcfb-8188415a1e1a", "session_name": "s1"}})
    [session] = parsed.events
    assert session["run_id"] == session["session_id"] == parsed.ids[0] == "635ad48a-9d66-496b-bcfb-8188415a1e1a"


def test_voker_identical_retries_get_the_same_id_regardless_of_fingerprint():
    payload = {"event_name": "llm", "fingerprint_id": "f-1",
               "properties": {"api": "openai-chat-completions", "inputs": {"model": "m", "messages": []}, "output": {}}}
    first = voker.parse_event(payload).ids[0]
    assert voker.parse_event(copy.deepcopy(payload)).ids[0] == first
    assert voker.parse_event({**payload, "fingerprint_id": "f-2"}).ids[0] == first
    assert voker.parse_event({**payload, "session": "s"}).ids[0] != first


# ---- odd input: a MappingError or valid canonical events, never another exception -------

HUGE = "x" * 200_000
# What orjson can hand a mapping: no NaN or Infinity, integers within 64 bits.
ODD = [
    None, True, False, 0, -1, 1.5, -1e308, 1e308, 2**63 - 1, -(2**63), "", HUGE, "2026-13-45T25:00:00Z",
    "9999-12-31T23:59:59-01:00", [], [[[[[]]]]], [None, 1, "s", {}], {}, {"": {"": [None]}},
    {"role": "user"}, {"role": 5, "content": "x"}, {"role": "user", "content": 5, "tool_calls": 5},
    {"role": "assistant", "content": [{"functionCall": "x"}, {"functionResponse": 3}, 7, None, {"type": "text", "text": 5}]},
    {"role": "user", "content": "x", "tool_calls": [None, {"id": 5}]},
    [{"role": "ai", "text": None}, {"role": "user", "content": {"nested": True}}],
    {"message": 5, "stack": ["s"]}, {"prompt": -1, "completion": 1e300},
]
OPTIONS = {"llmonitor": {"app_id": "app"}, "lunary": {"project": "p"}, "honeyhive": {"project": "p"}, "voker": {"fingerprint_id": "f"}}
EGRESS = {name: importlib.import_module(f"mappings.{name}") for name in OPTIONS}


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _paths(child, (*prefix, index))


def _replaced(value, path, new):
    if not path:
        return new
    out = copy.copy(value)
    out[path[0]] = _replaced(value[path[0]], path[1:], new)
    return out


def _fuzz_cases():
    for folder in sorted(INGRESS.glob("*/*")):
        case = json.loads((folder / "case.json").read_text())
        yield pytest.param(folder.parent.name, case["endpoint"], case.get("args", {}),
                           json.loads((folder / "input.json").read_text()), id=f"{folder.parent.name}/{folder.name}")


def _parse_and_check(parse, payload, args: dict) -> None:
    """Map; a success must be valid canonical events the store can serialize and every egress can encode."""
    try:
        parsed = parse(payload, **args)
    except MappingError:
        return
    for event in [*parsed.events, *parsed.context.values()]:
        validate_event(event)
        orjson.dumps(event)
        for name, module in EGRESS.items():
            for request in module.encode([event], OPTIONS[name]):
                orjson.dumps(request.body)


@pytest.mark.parametrize("dialect, endpoint, args, payload", list(_fuzz_cases()))
def test_odd_values_anywhere_give_mapping_errors_or_valid_events(dialect, endpoint, args, payload):
    parse = getattr(importlib.import_module(f"mappings.{dialect}"), endpoint)
    for path in list(_paths(payload)):
        for odd in ODD:
            try:
                _parse_and_check(parse, _replaced(payload, path, odd), args)
            except Exception as exc:
                raise AssertionError(f"{type(exc).__name__} with {list(path)} = {str(odd)[:60]!r}: {exc}") from exc
