"""OTLP/HTTP trace export on the wire: protobuf or JSON bytes <-> plain span dicts.

Both encodings decode to one plain span dict, so the mapping reads a single shape:
``trace_id``/``span_id`` as lowercase hex, ``parent_span_id`` hex or None, ``kind`` and
``status.code`` by enum name, times as int nanoseconds, ``attributes`` and ``resource``
as flat dicts of plain values (arrays -> lists, kvlists -> dicts, bytes -> base64
text), ``events`` and ``links``, and the ``scope`` name. `decode_placed` also gives
where each span sat in the request (its `place`), for error messages. OTLP/JSON is not
protobuf's JSON mapping (ids are hex; exporters send enums by name or number and int64
as strings or numbers), so it is walked by hand, which also lets an error name the field
as the sender wrote it.

An envelope that does not decode fails the whole request (`MappingError`); a bad span
fails alone: its slot in the returned list holds its `MappingError`.
Knowingly ignored: dropped-counts, span flags, schema URLs, scope version and
attributes, and an exporter's unknown JSON keys (OTLP says receivers ignore them).
"""
import base64
import binascii
import math
from typing import Any, Callable

import orjson
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from .errors import MAX_DEPTH, MappingError

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
INVALID_ARGUMENT = 3
SPAN_KINDS = tuple(Span.SpanKind.keys())
STATUS_CODES = tuple(Status.StatusCode.keys())
ID_KEYS = ("traceId", "spanId", "parentSpanId")
_INT64 = (-(2**63), 2**63)
_JSON_DOUBLES = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _status_class():
    """google.rpc.Status built from its descriptor: `googleapis-common-protos` is not a
    dependency, and a private pool cannot clash with it where it is installed. The
    ``details`` field is left out; an absent repeated field is the same on the wire."""
    proto = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(name="rosetta/google_rpc_status.proto", package="google.rpc", syntax="proto3")
    status = file.message_type.add(name="Status")
    status.field.add(name="code", number=1, type=proto.TYPE_INT32, label=proto.LABEL_OPTIONAL)
    status.field.add(name="message", number=2, type=proto.TYPE_STRING, label=proto.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("google.rpc.Status"))


RpcStatus = _status_class()


def media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


Places = list[tuple[str, int]]  # per span: its scope's path in the request, its index there


def decode_request(body: bytes, content_type: str) -> list[dict | MappingError]:
    """Every span of an ExportTraceServiceRequest, in request order."""
    return decode_placed(body, content_type)[0]


def decode_placed(body: bytes, content_type: str) -> tuple[list[dict | MappingError], Places]:
    """Every span, and where each sat (formatted by `place` only when an error needs it)."""
    kind = media_type(content_type)
    if kind == PROTOBUF:
        return _proto_spans(body)
    if kind == JSON or kind.endswith("+json"):
        return _json_spans(body)
    raise MappingError("Content-Type", f"expected {PROTOBUF} or {JSON}, got {content_type!r}")


def place(where: tuple[str, int]) -> str:
    return f"{where[0]}.spans[{where[1]}]"


# ---- protobuf in ---------------------------------------------------------------

def _proto_value(value: AnyValue) -> Any:
    which = value.WhichOneof("value")
    if which == "array_value":
        return [_proto_value(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _proto_value(kv.value) for kv in value.kvlist_value.values}
    if which == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return getattr(value, which) if which else None


def _proto_attributes(pairs) -> dict:
    return {kv.key: _proto_value(kv.value) for kv in pairs}


def _proto_id(raw: bytes, size: int, field: str, required: bool = True) -> str | None:
    """An id as hex; an absent or all-zero parent id means none (a root span)."""
    if not required and not any(raw):
        return None
    if len(raw) != size or not any(raw):
        raise MappingError(field, f"expected {size} bytes, not all zero (got {len(raw)})")
    return raw.hex()


def _proto_enum(names: tuple[str, ...], value: int, field: str) -> str:
    if not 0 <= value < len(names):
        raise MappingError(field, f"unknown value {value}")
    return names[value]


def _proto_span(span: Span, resource: dict, scope: str) -> dict:
    if not span.start_time_unix_nano:
        raise MappingError("startTimeUnixNano", "required: a non-zero time")
    return {
        "trace_id": _proto_id(span.trace_id, 16, "traceId"),
        "span_id": _proto_id(span.span_id, 8, "spanId"),
        "parent_span_id": _proto_id(span.parent_span_id, 8, "parentSpanId", required=False),
        "trace_state": span.trace_state,
        "name": span.name,
        "kind": _proto_enum(SPAN_KINDS, span.kind, "kind"),
        "start_ns": span.start_time_unix_nano,
        "end_ns": span.end_time_unix_nano,
        "attributes": _proto_attributes(span.attributes),
        "events": [{"name": e.name, "time_ns": e.time_unix_nano, "attributes": _proto_attributes(e.attributes)}
                   for e in span.events],
        "links": [{"trace_id": _proto_id(link.trace_id, 16, f"links[{i}].traceId"),
                   "span_id": _proto_id(link.span_id, 8, f"links[{i}].spanId"),
                   "trace_state": link.trace_state, "attributes": _proto_attributes(link.attributes)}
                  for i, link in enumerate(span.links)],
        "status": {"code": _proto_enum(STATUS_CODES, span.status.code, "status.code"), "message": span.status.message},
        "resource": resource, "scope": scope,
    }


def _proto_spans(body: bytes) -> tuple[list[dict | MappingError], Places]:
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except DecodeError as exc:
        raise MappingError("", f"invalid protobuf ExportTraceServiceRequest ({exc})") from None
    out: list[dict | MappingError] = []
    places: Places = []
    for r, resource_spans in enumerate(request.resource_spans):
        resource = _proto_attributes(resource_spans.resource.attributes)
        for s, scope_spans in enumerate(resource_spans.scope_spans):
            spath = f"resourceSpans[{r}].scopeSpans[{s}]"
            for i, span in enumerate(scope_spans.spans):
                places.append((spath, i))
                try:
                    out.append(_proto_span(span, resource, scope_spans.scope.name))
                except MappingError as exc:
                    out.append(exc.within(place(places[-1])))
    return out, places


# ---- JSON in -------------------------------------------------------------------

def _get(node: dict, key: str, kind: type, default: Any) -> Any:
    """An optional array or object member; null reads as absent."""
    value = node.get(key)
    if value is None:
        return default
    if not isinstance(value, kind):
        raise MappingError(key, "expected an array" if kind is list else "expected an object")
    return value


def _json_int(value: Any, field: str = "") -> int:
    if isinstance(value, str):
        if value.isascii():
            try:
                return int(value)
            except ValueError:
                pass
    elif isinstance(value, int) and not isinstance(value, bool):
        return value
    elif isinstance(value, float) and value.is_integer():
        return int(value)
    raise MappingError(field, f"expected an integer (a number or a decimal string), got {value!r:.40}")


def _json_double(value: Any, field: str = "") -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and value in _JSON_DOUBLES:
        return _JSON_DOUBLES[value]
    raise MappingError(field, f"expected a number, got {value!r:.40}")


def _placed(read: Callable[..., Any], value: Any, field: str, *args: Any) -> Any:
    """``read(value, *args)``, an error it raises placed under ``field``."""
    try:
        return read(value, *args)
    except MappingError as exc:
        raise exc.within(field) from None


def _json_value(value: Any, depth: int = 0) -> Any:
    """An OTLP/JSON AnyValue as a plain value; ``{}`` (no value set) is None. An error
    names its field inside the value, and the caller places it. ``depth``: the arrays
    and kvlists it sits in."""
    if not isinstance(value, dict):
        if value is None:
            return None
        raise MappingError("", "expected an AnyValue object")
    if len(value) == 1:  # as exporters send it: the one member set, and nothing else
        [key] = value
    else:
        present = value.keys() & _ANY_READERS.keys()
        if len(present) != 1:
            if not value:
                return None
            raise _not_one_value()
        key = present.pop()
    read = _ANY_READERS.get(key)
    if read is None:
        raise _not_one_value()
    try:
        return read(value[key], depth + 1) if key in _NESTED else read(value[key])
    except MappingError as exc:
        raise exc.within(key) from None


def _not_one_value() -> MappingError:
    return MappingError("", f"expected exactly one of {', '.join(_ANY_READERS)}")


def _json_bool(inner: Any) -> bool:
    if isinstance(inner, bool):
        return inner
    raise _wrong_type(inner)


def _json_string(inner: Any) -> str:
    if isinstance(inner, str):
        return inner
    raise _wrong_type(inner)


def _json_bytes(inner: Any) -> str:
    if not isinstance(inner, str):
        raise _wrong_type(inner)
    try:
        base64.b64decode(inner, validate=True)
    except binascii.Error:
        raise MappingError("", "expected base64 text") from None
    return inner


def _check_nesting(depth: int) -> None:
    """Values nested deeper than a payload may be (`MAX_DEPTH`) are refused here, where
    they are read: the document's other members are not kept, so need no walk."""
    if depth > MAX_DEPTH:
        raise MappingError("", f"nested deeper than {MAX_DEPTH} levels")


def _json_array(inner: Any, depth: int) -> list:
    _check_nesting(depth)
    if not isinstance(inner, dict):
        raise _wrong_type(inner)
    values = inner.get("values") or []
    if not isinstance(values, list):
        raise MappingError("values", "expected an array")
    return [_placed(_json_value, value, f"values[{i}]", depth) for i, value in enumerate(values)]


def _json_kvlist(inner: Any, depth: int) -> dict:
    _check_nesting(depth)
    if not isinstance(inner, dict):
        raise _wrong_type(inner)
    return _placed(_json_attributes, inner.get("values"), "values", depth)


def _wrong_type(inner: Any) -> MappingError:
    return MappingError("", f"wrong type {type(inner).__name__}")


_ANY_READERS: dict[str, Callable[..., Any]] = {
    "stringValue": _json_string, "boolValue": _json_bool, "intValue": _json_int, "doubleValue": _json_double,
    "arrayValue": _json_array, "kvlistValue": _json_kvlist, "bytesValue": _json_bytes,
}
_NESTED = frozenset({"arrayValue", "kvlistValue"})  # read with their depth


def _json_attributes(pairs: Any, depth: int = 0) -> dict:
    """Key-value pairs as a dict; an error names its field from the array on (``[2].key``)."""
    if pairs is None:
        return {}
    if not isinstance(pairs, list):
        raise MappingError("", "expected an array of key-value objects")
    out = {}
    for pair in pairs:
        key = pair.get("key") if type(pair) is dict else None
        if type(key) is not str:
            raise MappingError(f"[{_first_index(pairs, pair)}].key", "required: a string")
        value = pair.get("value")
        if type(value) is dict and len(value) == 1:  # the commonest values, read without a call
            inner = value.get("stringValue")
            if type(inner) is str:
                out[key] = inner
                continue
            inner = value.get("intValue")
            if type(inner) is int:
                out[key] = inner
                continue
        try:
            out[key] = _json_value(value, depth)
        except MappingError as exc:
            raise exc.within(f"[{_first_index(pairs, pair)}].value") from None
    return out


def _first_index(items: list, item: Any) -> int:
    """Where a failing item sits: an equal item before it would have failed first."""
    return items.index(item)


def _json_id(value: Any, size: int, field: str, required: bool = True) -> str | None:
    if not isinstance(value, str) or len(value) != 2 * size:
        if value in (None, "") and not required:
            return None
        raise MappingError(field, f"required: {2 * size} hex digits")
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raw = b""
    if len(raw) != size:
        raise MappingError(field, f"invalid hex {value[:40]!r}")
    if raw.count(0) == size:
        if required:
            raise MappingError(field, "must not be all zero")
        return None
    return raw.hex()


def _json_enum(value: Any, names: tuple[str, ...], field: str) -> str:
    if value is None:
        return names[0]
    if isinstance(value, str) and value in names:
        return value
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(names):
        return names[value]
    raise MappingError(field, f"expected one of {', '.join(names)} or its number")


def _json_event(event: Any, field: str) -> dict:
    if not isinstance(event, dict):
        raise MappingError(field, "expected an object")
    name = event.get("name") or ""
    if not isinstance(name, str):
        raise MappingError(f"{field}.name", "expected a string")
    return {"name": name, "time_ns": _json_int(event.get("timeUnixNano") or 0, f"{field}.timeUnixNano"),
            "attributes": _placed(_json_attributes, event.get("attributes"), f"{field}.attributes")}


def _json_link(link: Any, field: str) -> dict:
    if not isinstance(link, dict):
        raise MappingError(field, "expected an object")
    return {"trace_id": _json_id(link.get("traceId"), 16, f"{field}.traceId"),
            "span_id": _json_id(link.get("spanId"), 8, f"{field}.spanId"),
            "trace_state": link.get("traceState") or "",
            "attributes": _placed(_json_attributes, link.get("attributes"), f"{field}.attributes")}


def _json_items(node: dict, key: str, read: Callable[[Any, str], dict]) -> list[dict]:
    """An optional array member, each item read with its place (``events[2]``)."""
    items = _get(node, key, list, [])
    return [read(item, f"{key}[{i}]") for i, item in enumerate(items)] if items else []


def _json_span(span: Any, resource: dict, scope: str) -> dict:
    if not isinstance(span, dict):
        raise MappingError("", "expected a span object")
    start = _json_int(span.get("startTimeUnixNano") or 0, "startTimeUnixNano")
    if not start:
        raise MappingError("startTimeUnixNano", "required: a non-zero time")
    status = _get(span, "status", dict, {})
    name, trace_state = span.get("name") or "", span.get("traceState") or ""
    if not isinstance(name, str):
        raise MappingError("name", "expected a string")
    if not isinstance(trace_state, str):
        raise MappingError("traceState", "expected a string")
    message = status.get("message") or ""
    if not isinstance(message, str):
        raise MappingError("status.message", "expected a string")
    attributes = _placed(_json_attributes, span.get("attributes"), "attributes")
    return {
        "trace_id": _json_id(span.get("traceId"), 16, "traceId"),
        "span_id": _json_id(span.get("spanId"), 8, "spanId"),
        "parent_span_id": _json_id(span.get("parentSpanId"), 8, "parentSpanId", required=False),
        "trace_state": trace_state,
        "name": name,
        "kind": _json_enum(span.get("kind"), SPAN_KINDS, "kind"),
        "start_ns": start,
        "end_ns": _json_int(span.get("endTimeUnixNano") or 0, "endTimeUnixNano"),
        "attributes": attributes,
        "events": _json_items(span, "events", _json_event),
        "links": _json_items(span, "links", _json_link),
        "status": {"code": _json_enum(status.get("code"), STATUS_CODES, "status.code"), "message": message},
        "resource": resource, "scope": scope,
    }


def _json_spans(body: bytes) -> tuple[list[dict | MappingError], Places]:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MappingError("", f"invalid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise MappingError("", "expected an ExportTraceServiceRequest object")
    out: list[dict | MappingError] = []
    places: Places = []
    for r, resource_spans in enumerate(_get(doc, "resourceSpans", list, [])):
        rpath = f"resourceSpans[{r}]"
        try:
            if not isinstance(resource_spans, dict):
                raise MappingError("", "expected an object")
            resource = _placed(_json_attributes, _get(resource_spans, "resource", dict, {}).get("attributes"),
                              "resource.attributes")
            scopes = _get(resource_spans, "scopeSpans", list, [])
        except MappingError as exc:
            raise exc.within(rpath) from None
        for s, scope_spans in enumerate(scopes):
            spath = f"{rpath}.scopeSpans[{s}]"
            try:
                if not isinstance(scope_spans, dict):
                    raise MappingError("", "expected an object")
                scope = _get(scope_spans, "scope", dict, {}).get("name") or ""
                if not isinstance(scope, str):
                    raise MappingError("scope.name", "expected a string")
                spans = _get(scope_spans, "spans", list, [])
            except MappingError as exc:
                raise exc.within(spath) from None
            for i, span in enumerate(spans):
                places.append((spath, i))
                try:
                    out.append(_json_span(span, resource, scope))
                except MappingError as exc:
                    out.append(exc.within(place(places[-1])))
    return out, places


# ---- out -----------------------------------------------------------------------

def _set_value(out: AnyValue, value: Any) -> None:
    """A plain value as an AnyValue; ints beyond int64 travel as text."""
    if value is None:
        return
    if isinstance(value, bool):
        out.bool_value = value
    elif isinstance(value, int):
        if _INT64[0] <= value < _INT64[1]:
            out.int_value = value
        else:
            out.string_value = str(value)
    elif isinstance(value, float):
        out.double_value = value
    elif isinstance(value, str):
        out.string_value = value
    elif isinstance(value, (bytes, bytearray)):
        out.bytes_value = bytes(value)
    elif isinstance(value, dict):
        out.kvlist_value.SetInParent()
        for key, item in value.items():
            _set_value(out.kvlist_value.values.add(key=str(key)).value, item)
    elif isinstance(value, (list, tuple)):
        out.array_value.SetInParent()
        for item in value:
            _set_value(out.array_value.values.add(), item)
    else:
        out.string_value = str(value)


def _add_attributes(target, attributes: dict) -> None:
    for key, value in attributes.items():
        _set_value(target.add(key=key).value, value)


def _fill_span(out: Span, span: dict) -> None:
    out.trace_id = bytes.fromhex(span["trace_id"])
    out.span_id = bytes.fromhex(span["span_id"])
    if span.get("parent_span_id"):
        out.parent_span_id = bytes.fromhex(span["parent_span_id"])
    out.trace_state = span.get("trace_state") or ""
    out.name = span["name"]
    out.kind = Span.SpanKind.Value(span["kind"])
    out.start_time_unix_nano = span["start_ns"]
    out.end_time_unix_nano = span["end_ns"]
    _add_attributes(out.attributes, span["attributes"])
    for event in span.get("events") or ():
        added = out.events.add(name=event["name"], time_unix_nano=event["time_ns"])
        _add_attributes(added.attributes, event["attributes"])
    for link in span.get("links") or ():
        added = out.links.add(trace_id=bytes.fromhex(link["trace_id"]), span_id=bytes.fromhex(link["span_id"]),
                              trace_state=link.get("trace_state") or "")
        _add_attributes(added.attributes, link["attributes"])
    status = span.get("status") or {}
    out.status.code = Status.StatusCode.Value(status.get("code") or STATUS_CODES[0])
    out.status.message = status.get("message") or ""


def build_request(spans: list[dict]) -> ExportTraceServiceRequest:
    """Span dicts as one request, grouped by resource and then by scope name."""
    request = ExportTraceServiceRequest()
    groups: dict[bytes, Any] = {}
    scopes: dict[tuple[bytes, str], Any] = {}
    for span in spans:
        resource_key = orjson.dumps(span["resource"], option=orjson.OPT_SORT_KEYS)
        if resource_key not in groups:
            groups[resource_key] = request.resource_spans.add()
            _add_attributes(groups[resource_key].resource.attributes, span["resource"])
        scope_key = (resource_key, span["scope"])
        if scope_key not in scopes:
            scopes[scope_key] = groups[resource_key].scope_spans.add()
            scopes[scope_key].scope.name = span["scope"]
        _fill_span(scopes[scope_key].spans.add(), span)
    return request


def _hex_ids(node: dict) -> None:
    for key in ID_KEYS:
        if key in node:
            node[key] = base64.b64decode(node[key]).hex()


def to_json(request: ExportTraceServiceRequest) -> dict:
    """OTLP/JSON: protobuf's JSON mapping with hex ids and enums as numbers, as the spec says."""
    doc = json_format.MessageToDict(request, use_integers_for_enums=True)
    for resource_spans in doc.get("resourceSpans", ()):
        for scope_spans in resource_spans.get("scopeSpans", ()):
            for span in scope_spans.get("spans", ()):
                _hex_ids(span)
                for link in span.get("links", ()):
                    _hex_ids(link)
    return doc


def encode_request(spans: list[dict], protobuf: bool) -> bytes | dict:
    request = build_request(spans)
    return request.SerializeToString() if protobuf else to_json(request)


# ---- answers -------------------------------------------------------------------

def answer_json(rejected: int, message: str) -> dict:
    """The receiver's JSON answer; int64 as a decimal string, as OTLP/JSON encodes it."""
    if not rejected and not message:
        return {}
    partial: dict[str, Any] = {"rejectedSpans": str(rejected)}
    if message:
        partial["errorMessage"] = message
    return {"partialSuccess": partial}


def encode_answer(rejected: int, message: str, protobuf: bool) -> bytes:
    if not protobuf:
        return orjson.dumps(answer_json(rejected, message))
    response = ExportTraceServiceResponse()
    if rejected or message:
        response.partial_success.rejected_spans = rejected
        response.partial_success.error_message = message
    return response.SerializeToString()


def error_body(message: str, code: int = INVALID_ARGUMENT) -> dict:
    return {"code": code, "message": message}


def error_answer(message: str, protobuf: bool, code: int = INVALID_ARGUMENT) -> bytes:
    """A refused request as google.rpc.Status (code 3 INVALID_ARGUMENT by default)."""
    if protobuf:
        return RpcStatus(code=code, message=message).SerializeToString()
    return orjson.dumps(error_body(message, code))


def read_answer(body: Any) -> tuple[int, str]:
    """A 2xx answer's (rejected spans, message), in either encoding; a body that cannot
    be read counts as full success, since the status already said the spans were taken."""
    if isinstance(body, (bytes, bytearray, memoryview, str)):
        raw = body.encode() if isinstance(body, str) else bytes(body)
        if not raw.strip():
            return 0, ""
        if raw.lstrip()[:1] == b"{":
            try:
                body = orjson.loads(raw)
            except orjson.JSONDecodeError:
                return 0, "answer is not valid JSON"
        else:
            response = ExportTraceServiceResponse()
            try:
                response.ParseFromString(raw)
            except DecodeError:
                return 0, "answer is not an ExportTraceServiceResponse"
            return response.partial_success.rejected_spans, response.partial_success.error_message
    if not isinstance(body, dict):
        return 0, ""
    partial = body.get("partialSuccess") or body.get("partial_success") or {}
    if not isinstance(partial, dict):
        return 0, ""
    rejected = partial.get("rejectedSpans", partial.get("rejected_spans", 0))
    try:
        count = _json_int(rejected or 0, "rejectedSpans")
    except MappingError:
        count = 0
    message = partial.get("errorMessage", partial.get("error_message")) or ""
    return count, str(message)
