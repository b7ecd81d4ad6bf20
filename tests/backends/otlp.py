"""An OTLP/HTTP trace collector: ``POST /v1/traces``, protobuf or JSON, gzip or not.

Both encodings are decoded into the same protobuf message and then into plain dicts, so
a test reads spans one way whatever the exporter sent. OTLP/JSON differs from protobuf's
own JSON mapping in one point handled here: trace and span ids are hex, not base64.
Answers are an empty ``ExportTraceServiceResponse`` in the request's encoding; a body
that does not decode is a permanent 400, an unknown content type 415. gzip bodies are
inflated by aiohttp itself.

Received, records: ``spans`` (one dict per span: trace_id, span_id, parent_span_id as
hex, "" when absent; name; kind and status_code as enum names; start_ns, end_ns;
attributes and resource as flat dicts of plain values; status_message; events; scope)
and ``exports`` (one {encoding, spans} per accepted request, to check batching).
"""

from __future__ import annotations

import base64
from collections.abc import Collection
from typing import Any

import orjson
from aiohttp import web
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from .app import FAULTS, RECEIVED, bearer_auth, json_response, new_app
from .faults import Faults
from .recorder import Received

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
ID_FIELDS = ("traceId", "spanId", "parentSpanId")
INVALID_ARGUMENT, UNAUTHENTICATED = 3, 16


def _ids_to_base64(node: Any) -> Any:
    """OTLP/JSON carries ids as hex; protobuf's JSON parser wants base64."""
    if isinstance(node, list):
        return [_ids_to_base64(item) for item in node]
    if not isinstance(node, dict):
        return node
    return {
        key: base64.b64encode(bytes.fromhex(value)).decode()
        if key in ID_FIELDS and isinstance(value, str)
        else _ids_to_base64(value)
        for key, value in node.items()
    }


def decode(body: bytes, content_type: str) -> ExportTraceServiceRequest:
    """The export request in either encoding; ``ValueError`` when it does not decode."""
    message = ExportTraceServiceRequest()
    try:
        if content_type == PROTOBUF:
            message.ParseFromString(body)
        else:
            json_format.ParseDict(_ids_to_base64(orjson.loads(body)), message)
    except (DecodeError, json_format.ParseError) as error:
        raise ValueError(str(error)) from error
    return message


def any_value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [any_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return attributes(value.kvlist_value.values)
    return getattr(value, kind) if kind else None


def attributes(pairs: Collection[KeyValue]) -> dict[str, Any]:
    return {pair.key: any_value(pair.value) for pair in pairs}


def spans_of(message: ExportTraceServiceRequest) -> list[dict[str, Any]]:
    """Every span of the request as a plain dict, carrying its resource and scope."""
    return [
        {
            "trace_id": span.trace_id.hex(),
            "span_id": span.span_id.hex(),
            "parent_span_id": span.parent_span_id.hex(),
            "name": span.name,
            "kind": Span.SpanKind.Name(span.kind),
            "start_ns": span.start_time_unix_nano,
            "end_ns": span.end_time_unix_nano,
            "attributes": attributes(span.attributes),
            "status_code": Status.StatusCode.Name(span.status.code),
            "status_message": span.status.message,
            "events": [
                {"name": e.name, "time_ns": e.time_unix_nano, "attributes": attributes(e.attributes)}
                for e in span.events
            ],
            "resource": attributes(resource_spans.resource.attributes),
            "scope": scope_spans.scope.name,
        }
        for resource_spans in message.resource_spans
        for scope_spans in resource_spans.scope_spans
        for span in scope_spans.spans
    ]


def _refused(message: str, status: int, content_type: str) -> web.Response:
    """An error in the request's encoding: google.rpc.Status as JSON, text for protobuf."""
    if content_type == JSON:
        return json_response({"code": INVALID_ARGUMENT, "message": message}, status)
    return web.Response(text=message, status=status)


async def export(request: web.Request) -> web.Response:
    content_type = request.content_type
    if content_type not in (PROTOBUF, JSON):
        return web.Response(text=f"unsupported content type {content_type}", status=415)
    try:
        message = decode(await request.read(), content_type)
    except ValueError as error:
        return _refused(f"cannot decode the export request: {error}", 400, content_type)
    if request.app[FAULTS].take_reject():
        return _refused("spans rejected", 400, content_type)
    received = request.app[RECEIVED]
    spans = spans_of(message)
    for span in spans:
        received.add("spans", span)
    encoding = "protobuf" if content_type == PROTOBUF else "json"
    received.add("exports", {"encoding": encoding, "spans": len(spans)})
    if content_type == PROTOBUF:
        return web.Response(body=ExportTraceServiceResponse().SerializeToString(), content_type=PROTOBUF)
    return json_response({})


def make_app(received: Received, faults: Faults, *, keys: Collection[str]) -> web.Application:
    """A collector; with keys it wants ``Authorization: Bearer <key>`` like a gated one."""
    auth = bearer_auth(
        keys, lambda token: json_response({"code": UNAUTHENTICATED, "message": "Unauthenticated"}, 401)
    )
    app = new_app(received, faults, middlewares=[auth])
    app.router.add_post("/v1/traces", export)
    return app
