"""OpenTelemetry traces over OTLP/HTTP: spans in, spans out, one span per run.

A span holds a whole run, so each span becomes one ``complete`` event whose run id is
its span id (hex). Attributes are read in three vocabularies: the HoneyHive tracer's
(``honeyhive_*``, objects flattened to dotted keys), Rosetta's own (``rosetta.*``,
written by `encode` so that a run survives a trip through OTLP), and the GenAI
semantic conventions (``gen_ai.*``: per-index prompt/completion attributes, JSON
message attributes in the parts format, and message span events). Attributes no
reader consumes are kept in ``metadata`` under their own key; span facts with no
canonical slot (trace id, span name and kind, scope, resource, other span events,
links) go to ``extra``, and the span itself to ``raw`` for lossless OTLP forwarding.

Knowingly ignored: an attribute that repeats, with the same value, one already read
from the same table row (``traceloop.association.properties.*`` copies of
``honeyhive.*``, ``gen_ai.system`` beside ``gen_ai.provider.name``, ``session.id``
beside ``gen_ai.conversation.id``), the tracer's ``honeyhive_metadata.event_type`` /
``event_name`` copies, ``gen_ai.agent.name``/``gen_ai.tool.name`` where the run's name
already ends with them (``invoke_agent {name}``), a ``gen_ai.choice`` event's ``index``,
and the tracer's ``honeyhive_outputs.result`` where it repeats the output message's content.
"""
import hashlib
import re
from typing import Any, Callable, get_args

import orjson

from . import fields, honeyhive, messages, times
from . import otlp_wire as wire
from .canonical import Kind, new_event
from .egress import OK, REJECT, Outcome, Request
from .errors import MappingError
from .fields import Field
from .ingest import Parsed
from .otlp_wire import JSON, PROTOBUF, decode_placed, decode_request, encode_answer, error_answer, error_body

__all__ = [
    "NAME", "SHAPE", "JSON", "PROTOBUF", "decode_request", "parse_spans", "parse_request", "answer",
    "encode_answer", "error_answer", "error_body", "encode",
]

NAME = "otlp"
SHAPE = "record"
PATH = "/v1/traces"
CANONICAL_KINDS = frozenset(get_args(Kind))
OPERATION_KINDS = {
    "chat": "llm", "text_completion": "llm", "generate_content": "llm", "embeddings": "embed",
    "execute_tool": "tool", "invoke_agent": "agent", "create_agent": "agent",
}
KIND_OPERATIONS = {"llm": "chat", "embed": "embeddings", "tool": "execute_tool", "agent": "invoke_agent"}
MODEL_HINTS = ("gen_ai.request.model", "gen_ai.response.model", "gen_ai.provider.name", "gen_ai.system")
CLIENT_KINDS = frozenset({"llm", "embed"})
NAME_COPIES = ("gen_ai.agent.name", "gen_ai.tool.name")  # consumed when the run's name already says them
PARAM_NAMES = {"stop_sequences": "stop", "choice.count": "n"}  # gen_ai.request.<name> -> params key
PARAM_ATTRIBUTES = {v: k for k, v in PARAM_NAMES.items()}
MESSAGE_EVENTS = {
    "gen_ai.system.message": "system", "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant", "gen_ai.tool.message": "tool",
}
EVALUATION_EVENT = "gen_ai.evaluation.result"
EVALUATION = {  # evaluation event attribute -> feedback key
    "gen_ai.evaluation.name": "name", "gen_ai.evaluation.score.value": "score",
    "gen_ai.evaluation.score.label": "label", "gen_ai.evaluation.explanation": "explanation",
}
EXCEPTION = {"exception.message": "message", "exception.stacktrace": "stack", "exception.type": "type"}
STATUS_ERROR, STATUS_OK = "STATUS_CODE_ERROR", "STATUS_CODE_OK"


def _tokens(value):
    whole = isinstance(value, int) or isinstance(value, float) and value.is_integer()
    if isinstance(value, bool) or not whole or value < 0:
        raise MappingError("", "expected a non-negative whole number of tokens")
    return int(value)


def _flag(value):
    if not isinstance(value, bool):
        raise MappingError("", "expected a boolean")
    return value


def _number(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MappingError("", "expected a number")
    return value


CONVERTERS: dict[str, Callable[[Any], Any]] = {**fields.CONVERTERS, "tokens": _tokens, "flag": _flag, "number": _number}

# canonical field ("a.b": key b of a)  <- attributes: the first present wins, and the
#                                          others are consumed where they repeat it
ATTRIBUTES = (
    Field("session_id",                 ("honeyhive.session_id", "traceloop.association.properties.session_id",
                                         "gen_ai.conversation.id", "session.id"),                "string"),
    Field("name",                       ("honeyhive_event_name", "rosetta.name"),                 "string"),
    Field("model",                      ("gen_ai.request.model", "gen_ai.response.model"),        "string"),
    Field("provider",                   ("gen_ai.provider.name", "gen_ai.system"),                "string"),
    Field("user_id",                    ("user.id", "enduser.id"),                                "string"),
    Field("tags",                       ("rosetta.tags",),                                        "string_list"),
    Field("incomplete",                 ("rosetta.incomplete",),                                  "flag"),
    Field("usage.prompt_tokens",        ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens"),  "tokens"),
    Field("usage.completion_tokens",    ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens"), "tokens"),
    Field("usage.cached_prompt_tokens", ("gen_ai.usage.cache_read.input_tokens",),                "tokens"),
    Field("usage.estimated",            ("rosetta.usage.estimated",),                             "flag"),
    Field("extra.project",              ("honeyhive.project", "traceloop.association.properties.project"), "string"),
    Field("extra.source",               ("honeyhive.source", "traceloop.association.properties.source"),   "string"),
    Field("extra.duration",             ("honeyhive_duration_ms",),                               "number"),
)
# HoneyHive record key <- flattened attribute prefix (dotted paths, numeric parts = list indexes)
HONEYHIVE_GROUPS = {
    "inputs": "honeyhive_inputs", "outputs": "honeyhive_outputs", "config": "honeyhive_config",
    "metadata": "honeyhive_metadata", "metrics": "honeyhive_metrics", "feedback": "honeyhive_feedback",
    "user_properties": "honeyhive_user_properties",
}
HONEYHIVE_OBJECTS = {"metadata": "metadata", "metrics": "metrics", "feedback": "feedback", "user_properties": "user_props"}
# canonical object field <- attribute prefix, one level (the rest of the key is the key)
ROSETTA_GROUPS = {
    "metadata": "rosetta.metadata", "metrics": "rosetta.metrics", "feedback": "rosetta.feedback",
    "user_props": "rosetta.user_props",
}


# the attribute prefixes read as groups (none is another's parent), and a pattern that
# splits a key into (prefix, rest)
PREFIXES = ("gen_ai.request", "gen_ai.prompt", "gen_ai.completion", *HONEYHIVE_GROUPS.values(), *ROSETTA_GROUPS.values())
PREFIXED = re.compile("({})\\.(.*)".format("|".join(map(re.escape, PREFIXES))), re.DOTALL)


class _Plan:
    """What a span's attribute names alone decide, worked out once per set of names (the
    spans of one tracer share a few): the names of each group, by prefix and rest, and
    the shape of its flattening (`_row_shape`); the HoneyHive and Rosetta groups present
    (record key or canonical field, prefix); the table's rows with a source present
    (canonical field, key within it or "", converter, the sources present in reading
    order); the request parameters (params key, attribute name); and the input and
    output readers that may find something (`_readers`)."""

    __slots__ = ("groups", "shapes", "honeyhive", "rosetta", "table", "params", "inputs", "outputs", "plain")

    def __init__(self, names: tuple[str, ...]):
        self.groups: dict[str, dict[str, str]] = {}  # prefix -> {rest: attribute name}
        for found in filter(None, map(PREFIXED.match, names)):
            prefix, rest = found.groups()
            self.groups.setdefault(prefix, {})[rest] = found.string
        self.shapes = {prefix: _row_shape(tuple(rests)) for prefix, rests in self.groups.items()}
        self.honeyhive = tuple((key, prefix) for key, prefix in HONEYHIVE_GROUPS.items() if prefix in self.groups)
        self.rosetta = tuple((target, prefix) for target, prefix in ROSETTA_GROUPS.items() if prefix in self.groups)
        named = set(names)
        self.table = tuple((*row.target.partition(".")[::2], CONVERTERS[row.convert], sources) for row in ATTRIBUTES
                           if (sources := tuple(filter(named.__contains__, row.sources))))
        request = self.groups.get("gen_ai.request", {})
        self.params = tuple((PARAM_NAMES.get(rest, rest), name) for rest, name in request.items() if rest != "model")
        present = {*names, *self.groups}
        self.inputs = _readers(INPUT_READERS, present)
        self.outputs = _readers(OUTPUT_READERS, present)
        self.plain = _Plain.of(names, self)


MAX_REMEMBERED = 1024  # name sets remembered per kind of work; past it, all are forgotten
_MISSING = object()


def _remembered(cache: dict, names: tuple[str, ...], work: Callable[[tuple[str, ...]], Any]) -> Any:
    found = cache.get(names, _MISSING)
    if found is _MISSING:
        if len(cache) >= MAX_REMEMBERED:
            cache.clear()
        found = cache[names] = work(names)
    return found


_PLANS: dict[tuple[str, ...], _Plan] = {}


def _plan_of(span: dict) -> _Plan:
    return _remembered(_PLANS, tuple(span["attributes"]), _Plan)


# the attributes a reader of `span_to_canonical` looks for by name, beside the table's
# sources, the grouped prefixes, the operation's name and the model hints: a span with
# none of them may be read plainly
READ_BY_NAME = frozenset({
    "honeyhive_event_type", "rosetta.kind", *NAME_COPIES,
    "rosetta.input", "rosetta.output", "gen_ai.system_instructions", "gen_ai.input.messages",
    "gen_ai.output.messages", "gen_ai.tool.call.arguments", "gen_ai.tool.call.result", "error.type", "honeyhive_error",
})
PLAIN_GROUPS = frozenset({"gen_ai.request", "gen_ai.prompt", "gen_ai.completion"})


class _Plain:
    """The reading of the commonest span, the GenAI conventions' plainest, worked out
    once per set of attribute names: table rows with one source each, request
    parameters, the operation's name, per-index prompt and completion messages (flat
    rows, no tool calls), and attributes no reader looks for (kept in metadata). It
    gives what `span_to_canonical`'s general reading gives, or None where a value makes
    that reading take another turn (a value missing or of an unread type, an unknown
    operation, a message without a role; span events; an error status), and the
    general reading is done instead."""

    __slots__ = ("table", "params", "operation", "hints", "prompt", "completion", "kept")

    def __init__(self, names: tuple[str, ...], plan: "_Plan"):
        self.table = tuple((head, key, convert, sources[0]) for head, key, convert, sources in plan.table)
        self.params = plan.params
        self.operation = "gen_ai.operation.name" in names
        self.hints = tuple(name for name in MODEL_HINTS if name in names)
        self.prompt, self.completion = (_named_rows(plan, prefix) for prefix in ("gen_ai.prompt", "gen_ai.completion"))
        read = {"gen_ai.operation.name", *(row[3] for row in self.table), *(name for _, name in self.params),
                *plan.groups.get("gen_ai.prompt", {}).values(), *plan.groups.get("gen_ai.completion", {}).values()}
        self.kept = tuple(name for name in names if name not in read)

    @classmethod
    def of(cls, names: tuple[str, ...], plan: "_Plan") -> "_Plain | None":
        if not PLAIN_GROUPS.issuperset(plan.groups) or any(len(row[3]) > 1 for row in plan.table):
            return None
        if not READ_BY_NAME.isdisjoint(names):
            return None
        for prefix in ("gen_ai.prompt", "gen_ai.completion"):
            shape = plan.shapes.get(prefix, ())
            if shape is None or any(name == "tool_calls" for row in shape for name, _ in row):
                return None
        return cls(names, plan)

    def read(self, span: dict) -> dict | None:
        attributes = span["attributes"]
        if span["events"] or span["status"]["code"] == STATUS_ERROR:
            return None
        if self.operation:
            operation = attributes["gen_ai.operation.name"]
            kind = OPERATION_KINDS.get(operation) if type(operation) is str else None
            if kind is None:
                return None
        else:
            kind = "llm" if any(attributes[name] is not None for name in self.hints) else "chain"
        event = _span_event(span, kind)
        for head, key, convert, source in self.table:
            value = attributes[source]
            if value is None:
                return None
            try:
                _put(event, head, key, convert(value))
            except MappingError as exc:
                raise MappingError(f"attributes.{source}", exc.problem) from None
        event["name"] = event["name"] or span["name"]
        if self.params:
            event["params"] = {key: attributes[name] for key, name in self.params}
        if self.prompt:
            event["input"] = _plain_messages(attributes, self.prompt)
            if event["input"] is None:
                return None
        if self.completion:
            found = _plain_messages(attributes, self.completion)
            if found is None:
                return None
            event["output"] = _one_or_list(found)
        return _completed(event, span, {name: attributes[name] for name in self.kept}, [])


def _named_rows(plan: "_Plan", prefix: str) -> tuple | None:
    """A group's `_row_shape`, each name paired with its attribute's full name; with each
    row, the names of its role and content attributes when it holds just those two."""
    if prefix not in plan.groups:
        return None
    names = plan.groups[prefix]
    rows = []
    for shape in plan.shapes[prefix]:
        row = tuple((name, names[rest]) for name, rest in shape)
        named = dict(row)
        pair = (named["role"], named["content"]) if named.keys() == {"role", "content"} else None
        rows.append((pair, row))
    return tuple(rows)


def _plain_messages(attributes: dict, rows: tuple) -> list | None:
    """Messages from flat rows (`_named_rows`), or None where a row has no role or a value
    is an object. A role and a text, the commonest message, is built as it stands."""
    found = []
    for pair, row in rows:
        if pair is not None:
            role, content = attributes[pair[0]], attributes[pair[1]]
            if type(role) is str and type(content) is str:
                found.append({"role": messages.ROLE_ALIASES.get(role, role), "content": content})
                continue
        message = {name: attributes[key] for name, key in row}
        if type(message.get("role")) is not str or dict in map(type, message.values()):
            return None
        found.append(messages.normalize_message(message))
    return found


class _Reading:
    """One span being read, with the attributes and events a reader consumed: the
    attributes left over are kept in metadata, the events in extra."""

    __slots__ = ("span", "attributes", "get", "plan", "used", "used_events")

    def __init__(self, span: dict, plan: _Plan):
        self.span = span
        self.attributes: dict = span["attributes"]
        self.get: Callable[[str], Any] = self.attributes.get
        self.plan = plan
        self.used: set[str] = set()
        self.used_events: set[int] = set()

    def group(self, prefix: str) -> dict | None:
        """{rest: value} of the attributes under a prefix, or None where none is."""
        names = self.plan.groups.get(prefix)
        return None if names is None else {rest: self.attributes[name] for rest, name in names.items()}

    def take(self, key: str) -> Any:
        value = self.attributes.get(key)
        if value is not None:
            self.used.add(key)
        return value

    def use_prefixed(self, prefix: str, rests) -> None:
        if rests:
            self.used.update(map(self.plan.groups[prefix].__getitem__, rests))

    def use_group(self, prefix: str) -> None:
        self.used.update(self.plan.groups[prefix].values())

    def events(self, *names: str) -> list[tuple[int, dict]]:
        events = self.span["events"]
        if not events:
            return []
        return [(i, e) for i, e in enumerate(events) if e["name"] in names and i not in self.used_events]

    def leftover_attributes(self) -> dict:
        return {k: v for k, v in self.attributes.items() if k not in self.used}

    def leftover_events(self) -> list[dict]:
        return [e for i, e in enumerate(self.span["events"]) if i not in self.used_events]


# ---- small conversions ---------------------------------------------------------------

_NOT_JSON = object()


def _loads(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return _NOT_JSON


def _dumps(value: Any) -> str:
    return orjson.dumps(value, default=str).decode()


def _row_shape(names: tuple[str, ...]) -> tuple | None:
    """For the commonest flattening, a list of flat objects (every name "<index>.<name>",
    the indexes 0..n-1 once each, no object keyed by numbers alone): per index in order,
    its (name, attribute name) pairs. None for any other."""
    rows: dict[int, list] = {}
    spelled: dict[int, str] = {}
    for key in names:
        index, dot, name = key.partition(".")
        if not dot or "." in name or not index.isdecimal() or spelled.setdefault(int(index), index) != index:
            return None
        rows.setdefault(int(index), []).append((name, key))
    if not rows or sorted(rows) != list(range(len(rows))):
        return None
    if any(all(name.isdecimal() for name, _ in row) for row in rows.values()):
        return None
    return tuple(tuple(rows[i]) for i in range(len(rows)))


def _unflatten(flat: dict, field: str, shape: tuple | None) -> Any:
    """``{"a.0.b": 1}`` -> ``{"a": [{"b": 1}]}``: the HoneyHive tracer's flattening undone
    (``shape``: the `_row_shape` of the keys)."""
    if shape is not None and dict not in map(type, flat.values()):
        return [{name: flat[key] for name, key in row} for row in shape]
    rows: dict[str, dict] = {}  # the next commonest: every key "<index>.<name>"
    for key, value in flat.items():
        index, dot, name = key.partition(".")
        if not dot or "." in name or not index.isdecimal():
            return _unflatten_paths(flat, field)
        rows.setdefault(index, {})[name] = value
    return _lists(rows)


def _unflatten_paths(flat: dict, field: str) -> Any:
    root: dict = {}
    for key, value in flat.items():
        node = root
        parents = key.split(".")
        leaf = parents.pop()
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise MappingError(f"{field}.{key}", "a value is set at a shorter path of this key")
        if isinstance(node.get(leaf), dict):
            raise MappingError(f"{field}.{key}", "a value is set at a longer path of this key")
        node[leaf] = value
    return _lists(root)


def _lists(node: dict) -> dict | list:
    """Objects whose keys are the indexes 0..n-1 as lists, all the way down."""
    out = {key: _lists(value) if isinstance(value, dict) else value for key, value in node.items()}
    if out and all(map(str.isdecimal, out)):
        indexes = list(map(int, out))
        if indexes == list(range(len(indexes))):
            return list(out.values())
        by_index = dict(zip(indexes, out.values()))
        if sorted(by_index) == list(range(len(by_index))):
            return [by_index[i] for i in range(len(by_index))]
    return out


def _put(event: dict, head: str, key: str, value: Any) -> None:
    if not key:
        event[head] = value
        return
    if event[head] is None:
        event[head] = {"prompt_tokens": None, "completion_tokens": None, "cached_prompt_tokens": None,
                       "total_tokens": None, "estimated": False} if head == "usage" else {}
    event[head][key] = value


def _read_table(reading: _Reading, event: dict) -> None:
    """Each row from its first source present; its sources that repeat that value are consumed."""
    get, used = reading.get, reading.used
    for head, key, convert, sources in reading.plan.table:
        first = None  # the value the row was filled from
        for source in sources:
            value = get(source)
            if value is None:
                continue
            if first is None:
                first = value
                try:
                    _put(event, head, key, convert(value))
                except MappingError as exc:
                    raise MappingError(f"attributes.{source}", exc.problem) from None
            if value == first:
                used.add(source)


# ---- messages ------------------------------------------------------------------------

def _tool_call(call: Any) -> dict:
    """A tool call as {id, name, arguments} (conventions) or OpenAI's {id, function} shape."""
    call = call if isinstance(call, dict) else {}
    function = call.get("function") if isinstance(call.get("function"), dict) else call
    arguments = function.get("arguments")
    if not isinstance(arguments, str):
        arguments = _dumps(arguments if arguments is not None else {})
    return {"id": call.get("id"), "type": "function", "function": {"name": function.get("name"), "arguments": arguments}}


def _from_parts(msg: dict) -> dict:
    """A conventions message (role + typed parts) as a canonical message. The parts are
    made canonical here, not by `messages.normalize_message`, which reads tool results
    in Anthropic's shape."""
    out = {k: v for k, v in msg.items() if k != "parts"}
    parts = msg.get("parts")
    if not isinstance(parts, list):
        return messages.normalize_message(out)
    out["role"] = messages.ROLE_ALIASES.get(out["role"], out["role"])
    kinds = [p.get("type") if isinstance(p, dict) else None for p in parts]
    if out["role"] == "tool" and kinds == ["tool_call_response"]:
        response = parts[0].get("response")
        out["tool_call_id"] = parts[0].get("id")
        out["content"] = response if isinstance(response, str) or response is None else _dumps(response)
        return out
    content, calls = [], []
    for part, kind in zip(parts, kinds):
        rest = {k: v for k, v in part.items() if k not in ("type", "content", "id", "response")} if kind else {}
        if kind == "text":
            content.append({"type": "text", "text": part.get("content"), **rest})
        elif kind == "tool_call":
            calls.append(_tool_call(part))
        elif kind == "tool_call_response":
            content.append({**rest, "type": "tool_result", "tool_call_id": part.get("id"), "content": part.get("response")})
        else:
            content.append(part if isinstance(part, dict) else {"type": "unknown", "value": part})
    plain_text = len(content) == 1 and content[0].keys() == {"type", "text"} and isinstance(content[0]["text"], str)
    out["content"] = content[0]["text"] if plain_text else content or None
    if calls:
        out["tool_calls"] = calls
    return out


def _from_flat(msg: dict) -> dict:
    """A message of the older per-index attributes or message events (tool_calls as a list)."""
    if "tool_calls" not in msg:
        return messages.normalize_message(msg)
    out = dict(msg)
    calls = _loads(out.pop("tool_calls"))
    if isinstance(calls, list) and calls:
        out["tool_calls"] = [_tool_call(c) for c in calls]
    return messages.normalize_message(out)


def _message_list(value: Any, convert: Callable[[dict], dict]) -> list | None:
    if value is None:
        return None
    value = _loads(value)
    if not isinstance(value, list):
        return None
    for message in value:
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            return None
    return list(map(convert, value))


def _one_or_list(items: list) -> Any:
    return items[0] if len(items) == 1 else items


def _system_instructions(reading: _Reading) -> list:
    value = reading.get("gen_ai.system_instructions")
    if value is None:
        return []
    parts = _loads(value)
    if isinstance(parts, str):
        parts = [{"type": "text", "content": parts}]
    if not isinstance(parts, list) or not parts:
        return []
    reading.take("gen_ai.system_instructions")
    return [_from_parts({"role": "system", "parts": parts})]


def _json_messages(reading: _Reading, key: str) -> list | None:
    found = _message_list(reading.get(key), _from_parts)
    if found is not None:
        reading.take(key)
    return found


def _indexed_messages(reading: _Reading, prefix: str) -> list | None:
    flat = reading.group(prefix)
    if not flat:
        return None
    found = _message_list(_unflatten(flat, f"attributes.{prefix}", reading.plan.shapes[prefix]), _from_flat)
    if found is not None:
        reading.use_group(prefix)
    return found


def _event_message(event: dict) -> dict | None:
    attrs = {k: v for k, v in event["attributes"].items() if k != "gen_ai.system"}
    if event["name"] == "gen_ai.choice":
        body = _loads(attrs.pop("message", None))
        attrs.pop("index", None)
        body = dict(body) if isinstance(body, dict) else {}
        body.setdefault("role", "assistant")
        body.update(attrs)
    else:
        body = {"role": MESSAGE_EVENTS[event["name"]], **attrs}
        if body["role"] == "tool" and "id" in body:
            body["tool_call_id"] = body.pop("id")
    return _from_flat(body) if isinstance(body.get("role"), str) else None


def _event_messages(reading: _Reading, *names: str) -> list | None:
    found = [(i, m) for i, e in reading.events(*names) if (m := _event_message(e)) is not None]
    if not found:
        return None
    reading.used_events.update(i for i, _ in found)
    return [m for _, m in found]


def _json_attribute(reading: _Reading, key: str) -> Any:
    value = reading.get(key)
    if value is None:
        return None
    decoded = _loads(value)
    reading.take(key)
    return value if decoded is _NOT_JSON else decoded


def _input_new(reading):
    system = _system_instructions(reading)
    found = _json_messages(reading, "gen_ai.input.messages")
    return system + found if found is not None else system or None


def _output_new(reading):
    found = _json_messages(reading, "gen_ai.output.messages")
    return _one_or_list(found) if found else None


def _output_indexed(reading):
    found = _indexed_messages(reading, "gen_ai.completion")
    return _one_or_list(found) if found else None


def _output_events(reading):
    found = _event_messages(reading, "gen_ai.choice")
    return _one_or_list(found) if found else None


# Where a run's input and output may be, most specific first; HoneyHive's are read before.
# Each reader with the attributes or group prefixes it reads (None: the span's events).
INPUT_READERS = (
    (lambda r: _json_attribute(r, "rosetta.input"), ("rosetta.input",)),
    (_input_new, ("gen_ai.system_instructions", "gen_ai.input.messages")),
    (lambda r: _indexed_messages(r, "gen_ai.prompt"), ("gen_ai.prompt",)),
    (lambda r: _event_messages(r, *MESSAGE_EVENTS), None),
    (lambda r: _json_attribute(r, "gen_ai.tool.call.arguments"), ("gen_ai.tool.call.arguments",)),
)
OUTPUT_READERS = (
    (lambda r: _json_attribute(r, "rosetta.output"), ("rosetta.output",)),
    (_output_new, ("gen_ai.output.messages",)),
    (_output_indexed, ("gen_ai.completion",)),
    (_output_events, None),
    (lambda r: _json_attribute(r, "gen_ai.tool.call.result"), ("gen_ai.tool.call.result",)),
)


def _readers(readers: tuple, present: set[str]) -> tuple:
    """The readers that may find something where these attribute names and group
    prefixes are present: a reader of attributes none of which is present finds nothing."""
    return tuple(read for read, reads in readers if reads is None or not present.isdisjoint(reads))


# ---- ingress -------------------------------------------------------------------------

def _kind(reading: _Reading) -> tuple[str, str | None]:
    """(canonical kind, HoneyHive event type): HoneyHive's type, then Rosetta's, then the
    GenAI operation; a span naming a model is an llm call, anything else a chain."""
    event_type = reading.take("honeyhive_event_type")
    if event_type is not None:
        if not isinstance(event_type, str) or event_type not in honeyhive.KINDS:
            raise MappingError("attributes.honeyhive_event_type", "expected one of model, tool, chain, session")
        return honeyhive.KINDS[event_type], event_type
    kind = reading.get("rosetta.kind")
    if isinstance(kind, str) and kind in CANONICAL_KINDS:
        return reading.take("rosetta.kind"), None
    operation = reading.get("gen_ai.operation.name")
    if isinstance(operation, str) and operation in OPERATION_KINDS:
        return OPERATION_KINDS[reading.take("gen_ai.operation.name")], None
    if any(reading.get(k) is not None for k in MODEL_HINTS):
        return "llm", None
    return "chain", None


def _tracer_copies(key: str, record: dict, flat: dict) -> list[str]:
    """The flattened keys of one group that the run's input or output holds. ``@trace``
    records the function's arguments and return value (``result``) beside what
    ``enrich_span`` set: beside a chat history the arguments stay attributes (kept in
    metadata) and the input is the history; a result that repeats the content of an
    output message is a copy."""
    value = record[key]
    if key == "inputs" and isinstance(value, dict) and messages.is_message_list(value.get("chat_history")):
        record[key] = {"chat_history": value["chat_history"]}
        return [rest for rest in flat if rest.split(".", 1)[0] == "chat_history"]
    if key == "outputs" and isinstance(value, dict) and "result" in value:
        message = {k: v for k, v in value.items() if k != "result"}
        if messages.is_message(message) and message.get("content") == value["result"]:
            record[key] = message
    return list(flat)


def _honeyhive(reading: _Reading, event: dict, event_type: str | None) -> None:
    """The tracer's flattened objects, mapped as the JSON HoneyHive records are."""
    record = {}
    for key, prefix in reading.plan.honeyhive:
        flat = reading.group(prefix)
        record[key] = _unflatten(flat, f"attributes.{prefix}", reading.plan.shapes[prefix])
        reading.use_prefixed(prefix, _tracer_copies(key, record, flat))
    if not record:
        return
    try:
        if "config" in record:
            config: dict = {}
            honeyhive._config(config, record["config"])
            event["model"] = config["model"] or event["model"]
            event["provider"] = config["provider"] or event["provider"]
            event["params"].update(config["params"])
        if "inputs" in record:
            event["input"] = honeyhive._inputs(record["inputs"])
        if "outputs" in record:
            event["output"] = honeyhive._outputs(record["outputs"])
    except MappingError as exc:
        raise MappingError(f"attributes.{HONEYHIVE_GROUPS[exc.field]}", exc.problem) from None
    for key, target in HONEYHIVE_OBJECTS.items():
        if key in record:
            if not isinstance(record[key], dict):
                raise MappingError(f"attributes.{HONEYHIVE_GROUPS[key]}", "expected an object")
            event[target] = {**(event[target] or {}), **record[key]}
    if event["kind"] == "llm" and event["usage"] is None and "metrics" in record:
        event["usage"] = honeyhive._usage(event["metrics"])
    for key, copy_of in (("event_type", event_type), ("event_name", event["name"])):
        if event["metadata"].get(key) is not None and event["metadata"][key] == copy_of:
            del event["metadata"][key]


def _error(reading: _Reading) -> dict | None:
    """Status ERROR, or an exception event on a span not marked OK, with the last
    exception's type, message and stack; ``error.type`` names the error class."""
    status = reading.span["status"]
    exceptions = reading.events("exception")
    if status["code"] != STATUS_ERROR and not (exceptions and status["code"] != STATUS_OK):
        return None
    error: dict[str, Any] = {}
    if exceptions:
        index, exception = exceptions[-1]
        reading.used_events.add(index)
        error = {EXCEPTION.get(k, k): v for k, v in exception["attributes"].items()}
    error_type = reading.take("error.type") if status["code"] == STATUS_ERROR else None
    if error_type is not None:
        error["type"] = error_type
    if status["message"]:
        if error.get("message") not in (None, status["message"]):
            error["exception_message"] = error["message"]
        error["message"] = status["message"]
    error["message"] = str(error.get("message") or error.get("type") or "error")
    return error


def _evaluation(reading: _Reading) -> dict | None:
    found = reading.events(EVALUATION_EVENT)
    if not found:
        return None
    index, event = found[-1]
    reading.used_events.add(index)
    return {EVALUATION.get(k, k): v for k, v in event["attributes"].items()}


def _first(readers, reading: _Reading) -> Any:
    for read in readers:
        value = read(reading)
        if value is not None:
            return value
    return None


def span_to_canonical(span: dict) -> dict:
    """One decoded span as one complete canonical event."""
    plan = _plan_of(span)
    if plan.plain is not None:
        event = plan.plain.read(span)
        if event is not None:
            return event
    return _read_generally(span, plan)


def _read_generally(span: dict, plan: _Plan) -> dict:
    reading = _Reading(span, plan)
    kind, event_type = _kind(reading)
    event = _span_event(span, kind)
    _read_table(reading, event)
    event["name"] = event["name"] or span["name"]
    for key in NAME_COPIES:
        named = reading.get(key)
        if named is not None and (event["name"] == named or event["name"].endswith(f" {named}")):
            reading.take(key)
    if reading.plan.params:
        event["params"] = {key: reading.attributes[name] for key, name in reading.plan.params}
        reading.used.update(name for _, name in reading.plan.params)
    _honeyhive(reading, event, event_type)
    for target, prefix in reading.plan.rosetta:
        reading.use_group(prefix)
        event[target] = {**(event[target] or {}), **reading.group(prefix)}
    if event["input"] is None:
        event["input"] = _first(reading.plan.inputs, reading)
    if event["output"] is None:
        event["output"] = _first(reading.plan.outputs, reading)
    event["error"] = _error(reading)
    if event["error"] is None and isinstance(reading.get("honeyhive_error"), str):
        event["error"] = {"message": reading.take("honeyhive_error")}
    if event["feedback"] is None:
        event["feedback"] = _evaluation(reading)
    if event["user_id"] is None and isinstance((event["user_props"] or {}).get("user_id"), str):
        event["user_id"] = event["user_props"]["user_id"]
    return _completed(event, span, reading.leftover_attributes(), reading.leftover_events())


def _span_event(span: dict, kind: str) -> dict:
    """A complete event of the span's run, its times set."""
    event = new_event(NAME, kind, "complete", span["span_id"], "")
    event["parent_run_id"] = span["parent_span_id"]
    event["started_at"] = _time(span["start_ns"], "startTimeUnixNano")
    event["ended_at"] = _time(span["end_ns"], "endTimeUnixNano")
    event["timestamp"] = event["ended_at"] or event["started_at"]
    return event


def _completed(event: dict, span: dict, kept: dict, events: list[dict]) -> dict:
    """The event, its usage totalled and what the reading left over (attributes ``kept``,
    span ``events``) and the span's own facts added."""
    usage = event["usage"]
    if usage and (usage["prompt_tokens"] is not None or usage["completion_tokens"] is not None):
        usage["total_tokens"] = (usage["prompt_tokens"] or 0) + (usage["completion_tokens"] or 0)
    event["metadata"] = _merged(kept, event["metadata"])
    event["extra"] = _merged(_span_extra(span, events), event["extra"])
    event["raw"] = span
    return event


def _time(ns: int, field: str) -> str | None:
    try:
        return times.from_ns(ns) if ns else None
    except MappingError as exc:
        raise MappingError(field, exc.problem) from None


def _merged(kept: dict, read: dict) -> dict:
    """What a reader left over, under what the readers put in the same field."""
    if not read:
        return kept
    kept.update(read)
    return kept


def _span_extra(span: dict, events: list[dict]) -> dict:
    extra = {"trace_id": span["trace_id"], "span_name": span["name"], "span_kind": span["kind"],
             "scope": span["scope"], "resource": span["resource"]}
    for key, value in (("events", events), ("links", span["links"]), ("trace_state", span["trace_state"])):
        if value:
            extra[key] = value
    if span["status"]["code"] == STATUS_OK:
        extra["status"] = STATUS_OK
    return extra


def parse_spans(spans: list[dict | MappingError], places: wire.Places | None = None) -> Parsed:
    """Each span as one event; a span that fails keeps its error in its slot, placed by
    ``places`` (as `decode_placed` gives them) if known."""
    items: list[dict | MappingError] = []
    for index, span in enumerate(spans):
        if isinstance(span, MappingError):
            items.append(span)
            continue
        try:
            items.append(span_to_canonical(span))
        except MappingError as exc:
            items.append(exc.within(wire.place(places[index]) if places else f"spans[{index}]"))
    return Parsed(items, [i["run_id"] if isinstance(i, dict) else None for i in items])


def parse_request(body: bytes, content_type: str) -> Parsed:
    return parse_spans(*decode_placed(body, content_type))


def answer(parsed: Parsed, protobuf: bool = False) -> tuple[int, dict | bytes]:
    """200 always: full success, or partial success counting the spans refused (OTLP
    names no span, so the message lists the first few errors). JSON as a dict,
    protobuf as serialized ExportTraceServiceResponse bytes."""
    errors = [str(i) for i in parsed.items if isinstance(i, MappingError)]
    message = "; ".join(errors[:5]) + (f"; and {len(errors) - 5} more" if len(errors) > 5 else "")
    if protobuf:
        return 200, encode_answer(len(errors), message, protobuf=True)
    return 200, wire.answer_json(len(errors), message)


# ---- egress --------------------------------------------------------------------------

def _digest(kind: str, value: str, size: int) -> str:
    return hashlib.blake2b(f"{kind}\x1f{value}".encode(), digest_size=size).hexdigest()


def _is_id(value: Any, size: int) -> bool:
    if not isinstance(value, str) or len(value) != 2 * size:
        return False
    try:
        return any(bytes.fromhex(value))
    except ValueError:
        return False


def span_id_of(run_id: str) -> str:
    """A run id that is already a span id (16 hex) is kept, any other is hashed to one:
    the same function gives a span its id and its children their parent id."""
    return run_id.lower() if _is_id(run_id, 8) else _digest("span", run_id, 8)


def trace_id_of(event: dict, by_run: dict[str, dict]) -> str:
    """The trace a run belongs to, the same on every retry: the trace id it arrived with
    (OTLP), else a hash of ``extra.trace_root`` or of its session, else of its root's run
    id, found by walking up through the parents in the batch; a parent outside the
    batch stands for the root. Trees deeper than two levels split across batches need
    a session or ``trace_root`` to stay in one trace."""
    seen = set()
    while True:
        extra = event.get("extra") or {}
        if _is_id(extra.get("trace_id"), 16):
            return extra["trace_id"].lower()
        key = extra.get("trace_root") or event.get("session_id")
        parent = event.get("parent_run_id")
        if key or not parent:
            return _digest("trace", key or event["run_id"], 16)
        seen.add(event["run_id"])
        if parent not in by_run or parent in seen:
            return _digest("trace", parent, 16)
        event = by_run[parent]


def _to_parts(msg: dict) -> dict:
    """A canonical message in the conventions' parts format (tool calls as parts)."""
    out = {k: v for k, v in msg.items() if k not in ("content", "tool_calls")}
    content, parts = msg.get("content"), []
    if msg.get("role") == "tool" and msg.get("tool_call_id") is not None:
        parts.append({"type": "tool_call_response", "id": out.pop("tool_call_id"), "response": content})
    elif isinstance(content, str):
        parts.append({"type": "text", "content": content})
    elif isinstance(content, list):
        for part in content:
            kind = part.get("type") if isinstance(part, dict) else None
            rest = {k: v for k, v in part.items() if k not in ("type", "text", "tool_call_id", "content")} if kind else {}
            if kind == "text":
                parts.append({"type": "text", "content": part.get("text"), **rest})
            elif kind == "tool_result":
                parts.append({**rest, "type": "tool_call_response", "id": part.get("tool_call_id"),
                              "response": part.get("content")})
            else:
                parts.append(part)
    for call in msg.get("tool_calls") or ():
        function = call.get("function") or {}
        parts.append({"type": "tool_call", "id": call.get("id"), "name": function.get("name"),
                      "arguments": function.get("arguments")})
    out["parts"] = parts
    return out


def _operation(event: dict) -> str | None:
    if event["kind"] == "llm" and isinstance(event.get("input"), str):
        return "text_completion"
    return KIND_OPERATIONS.get(event["kind"])


def _span_name(event: dict, operation: str | None) -> str:
    """``{operation} {model}`` for model calls and ``{operation} {name}`` for tools and
    agents, as the GenAI conventions name spans."""
    name = event.get("name")
    if event["kind"] in CLIENT_KINDS:
        return f"{operation} {event['model']}" if event.get("model") else operation
    if operation and name and not name.startswith(f"{operation} "):
        return f"{operation} {name}"
    return name or operation or event["kind"]


def _io_attributes(event: dict, attrs: dict) -> None:
    """Messages as the conventions' JSON attributes; anything else as JSON under Rosetta's
    own keys (or the tool call's arguments and result), so ingress can read it back."""
    value, kind = event.get("input"), event["kind"]
    if value is not None:
        if messages.is_message_list(value):
            attrs["gen_ai.input.messages"] = _dumps([_to_parts(m) for m in value])
        else:
            attrs["gen_ai.tool.call.arguments" if kind == "tool" else "rosetta.input"] = _dumps(value)
    value = event.get("output")
    if value is not None:
        if messages.is_message(value) or messages.is_message_list(value):
            listed = value if isinstance(value, list) else [value]
            attrs["gen_ai.output.messages"] = _dumps([_to_parts(m) for m in listed])
        else:
            attrs["gen_ai.tool.call.result" if kind == "tool" else "rosetta.output"] = _dumps(value)


def _attributes(event: dict, operation: str | None) -> dict:
    kind, name = event["kind"], event.get("name")
    attrs: dict[str, Any] = {"gen_ai.operation.name": operation, "rosetta.kind": None if operation else kind,
                             "gen_ai.provider.name": event.get("provider"),
                             "gen_ai.request.model": event.get("model")}
    for key, value in (event.get("params") or {}).items():
        attrs[f"gen_ai.request.{PARAM_ATTRIBUTES.get(key, key)}"] = value
    usage = event.get("usage") or {}
    attrs["gen_ai.usage.input_tokens"] = usage.get("prompt_tokens")
    attrs["gen_ai.usage.output_tokens"] = usage.get("completion_tokens")
    attrs["gen_ai.usage.cache_read.input_tokens"] = usage.get("cached_prompt_tokens")
    attrs["rosetta.usage.estimated"] = True if usage.get("estimated") else None
    if name and operation in ("execute_tool", "invoke_agent"):
        attrs["gen_ai.tool.name" if kind == "tool" else "gen_ai.agent.name"] = name.removeprefix(f"{operation} ")
    attrs["gen_ai.conversation.id"] = event.get("session_id")
    attrs["user.id"] = event.get("user_id")
    attrs["rosetta.tags"] = event.get("tags") or None
    attrs["rosetta.incomplete"] = True if event.get("incomplete") else None
    _io_attributes(event, attrs)
    error = event.get("error")
    if error and error.get("type"):
        attrs["error.type"] = str(error["type"])
    attrs = {k: v for k, v in attrs.items() if v is not None}
    for field, prefix in ROSETTA_GROUPS.items():
        for key, value in (event.get(field) or {}).items():
            attrs[f"{prefix}.{key}"] = value
    return attrs


def _error_parts(event: dict, end_ns: int) -> tuple[dict, list]:
    error = event.get("error")
    if not error:
        return {"code": "STATUS_CODE_UNSET", "message": ""}, []
    attributes = {"exception.type": str(error.get("type") or "Error"), "exception.message": error["message"]}
    if error.get("stack"):
        attributes["exception.stacktrace"] = error["stack"]
    attributes.update({k: v for k, v in error.items() if k not in ("type", "message", "stack")})
    return ({"code": STATUS_ERROR, "message": error["message"]},
            [{"name": "exception", "time_ns": end_ns, "attributes": attributes}])


def canonical_to_span(event: dict, trace_id: str, options: dict) -> dict:
    """A canonical record as a span dict (the shape `decode_request` yields)."""
    operation = _operation(event)
    start_ns = times.to_ns(event.get("started_at") or event["timestamp"])
    end_ns = times.to_ns(event.get("ended_at") or event["timestamp"])
    attributes = _attributes(event, operation)
    name = _span_name(event, operation)
    if event.get("name") and event["name"] != name:
        attributes["rosetta.name"] = event["name"]
    status, events = _error_parts(event, end_ns)
    parent = event.get("parent_run_id")
    return {
        "trace_id": trace_id, "span_id": span_id_of(event["run_id"]),
        "parent_span_id": span_id_of(parent) if parent else None, "trace_state": "",
        "name": name, "kind": "SPAN_KIND_CLIENT" if event["kind"] in CLIENT_KINDS else "SPAN_KIND_INTERNAL",
        "start_ns": start_ns, "end_ns": end_ns, "attributes": attributes, "events": events, "links": [],
        "status": status, "resource": {"service.name": options.get("service_name", "rosetta")}, "scope": "rosetta",
    }


def _read(count: int) -> Callable[[Any], list[Outcome]]:
    def read(body: Any) -> list[Outcome]:
        rejected, message = wire.read_answer(body)
        if rejected > 0:
            return [Outcome(REJECT, f"collector rejected {rejected} span(s): {message}")] * count
        return [Outcome(OK, message) for _ in range(count)]
    return read


def encode(events: list[dict], options: dict) -> list[Request]:
    """Complete records as one export request; a span that arrived over OTLP is sent as
    it came. ``options``: ``encoding`` ("protobuf" or "json"), ``service_name``."""
    records = [(i, e) for i, e in enumerate(events) if e["phase"] == "complete"]
    if not records:
        return []
    by_run = {e["run_id"]: e for _, e in records}
    spans = []
    for _, event in records:
        if event["source"] == NAME and event.get("raw"):
            spans.append(event["raw"])
        else:
            spans.append(canonical_to_span(event, trace_id_of(event, by_run), options))
    protobuf = options.get("encoding", "protobuf") != "json"
    body = wire.encode_request(spans, protobuf)
    headers = {"Content-Type": PROTOBUF if protobuf else JSON}
    return [Request("POST", PATH, body, [i for i, _ in records], _read(len(records)), headers)]
