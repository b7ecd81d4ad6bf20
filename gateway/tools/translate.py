"""`rosetta translate`: what the gateway would send a backend for one request body, offline.

The body is parsed as the source dialect's ingress request, given ids as the pipeline
would (tenant ``translate``), enriched, assembled into records for record backends
(HoneyHive, Voker, OTLP: runs whose end is not in the file come out incomplete), and
encoded by the target dialect's egress mapping. Nothing is sent anywhere.
"""
import asyncio
import importlib
from typing import Any

import orjson

from mappings import jsonl
from mappings.egress import Request
from mappings.errors import MappingError
from mappings.ingest import Parsed

from .. import enrich
from ..delivery.assembly import RECORD_DIALECTS, Assembler, finish
from ..pipeline import identity
from ..store.memory import MemoryStore

TENANT = "translate"
SOURCES = ("llmonitor", "lunary", "honeyhive", "voker", "otlp")
TARGETS = ("jsonl", "llmonitor", "lunary", "honeyhive", "voker", "otlp")


def parse(dialect: str, body: bytes, content_type: str = "application/json") -> Parsed:
    """The body as its dialect's ingress endpoint reads it (HoneyHive: by the body's shape)."""
    if dialect == "otlp":
        from mappings import otlp
        return otlp.parse_request(body, content_type)
    payload = orjson.loads(body)
    if dialect == "lunary":
        from mappings import lunary
        return lunary.parse_ingest(payload)
    if dialect == "llmonitor":
        from mappings import llmonitor
        return llmonitor.parse_report(payload)
    if dialect == "voker":
        from mappings import voker
        return voker.parse_event(payload)
    from mappings import honeyhive
    if isinstance(payload, dict) and "events" in payload:
        return honeyhive.parse_batch(payload)
    if isinstance(payload, dict) and "session" in payload:
        return honeyhive.parse_session_start(payload)
    return honeyhive.parse_event(payload)


async def _assemble(events: list[dict], target: str) -> list[dict]:
    assembler = Assembler(MemoryStore(), "translate", 300.0, sessions=target == "honeyhive")
    records = await assembler.feed(events)
    return records + [finish(state, incomplete=True) for state in assembler.held.values()]


def translate(source: str, target: str, body: bytes, options: dict[str, Any],
              content_type: str = "application/json") -> tuple[list[Request] | bytes, list[str]]:
    """(the target's requests — or JSONL bytes for a jsonl target —, the errors of items that did not map)."""
    parsed = parse(source, body, content_type)
    errors = [str(i) for i in parsed.items if isinstance(i, MappingError)]
    events, estimator = [], enrich.Estimator()
    for event in parsed.events:
        event["tenant"] = TENANT
        event["id"] = identity(TENANT, event)
        if event.get("raw") is not None and event["source"] != target:
            event["raw"] = None
        events.append(estimator.event(event))
    if target == "jsonl":
        return jsonl.encode_lines(events), errors
    if target in RECORD_DIALECTS:
        events = asyncio.run(_assemble(events, target))
    mapping = importlib.import_module(f"mappings.{target}")
    return mapping.encode(events, options), errors


def render(request: Request) -> dict:
    body = request.body
    if isinstance(body, (bytes, bytearray)):
        body = {"bytes": len(body), "hex": bytes(body[:64]).hex()}
    return {"method": request.method, "path": request.path, "headers": request.headers, "body": body,
            "events": len(request.covers)}


def main(args) -> int:
    with open(args.file, "rb") as fh:
        body = fh.read()
    options = {"app_id": args.app_id, "project": args.project, "encoding": args.encoding,
               "fingerprint_id": "00000000-0000-0000-0000-000000000000"}
    try:
        out, errors = translate(args.source, args.target, body, options, args.content_type)
    except (MappingError, orjson.JSONDecodeError) as exc:
        print(f"rosetta translate: {args.file} is not a {args.source} request body: {exc}")
        return 1
    for error in errors:
        print(f"# not mapped: {error}")
    if isinstance(out, bytes):
        print(out.decode(), end="")
    else:
        for request in out:
            print(orjson.dumps(render(request), option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS,
                               default=str).decode())
    return 0


def add_parser(sub) -> None:
    parser = sub.add_parser("translate", help="show what the gateway would send a backend for a request body")
    parser.add_argument("--from", dest="source", required=True, choices=SOURCES)
    parser.add_argument("--to", dest="target", required=True, choices=TARGETS)
    parser.add_argument("file", help="a request body as the source dialect's SDK sends it")
    parser.add_argument("--content-type", default="application/json", help="OTLP: application/x-protobuf or json")
    parser.add_argument("--app-id", default="APP_ID", help="LLMonitor target: the app id to send")
    parser.add_argument("--project", default="rosetta", help="HoneyHive target: the project")
    parser.add_argument("--encoding", default="json", choices=["json", "protobuf"], help="OTLP target encoding")
    parser.set_defaults(func=main)
