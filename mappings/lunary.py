"""Lunary: ``POST /v1/runs/ingest`` (Bearer public key or X-API-Key), and its ``/api/report`` form.

Extends the v0 stream with OpenAI-shaped messages, threads, params and templates.
The server answers 200 ``{"results": [...]}`` with one entry per event, per-event
failures inside the 200; a second ``start`` for a run it holds fails with "Run with
this ID already exists", which a forwarder counts as delivered.
"""
from typing import Any

from . import llmonitor, stream_events
from .egress import OK, REJECT, RETRY, Outcome, Request, worst
from .errors import MappingError
from .ingest import Parsed, each

NAME = "lunary"
SHAPE = "stream"
ALREADY_EXISTS = "already exists"

error_body = llmonitor.error_body


def parse_ingest(payload: Any) -> Parsed:
    events = payload.get("events") if isinstance(payload, dict) else None
    if isinstance(events, dict):
        events = [events]
    if not isinstance(events, list):
        raise MappingError("events", llmonitor.MISSING)
    return each(events, lambda raw: stream_events.to_canonical(raw, NAME), ("runId", "run_id"))


def answer_ingest(parsed: Parsed, verdicts: list[str | None]) -> tuple[int, Any]:
    return 200, {"results": llmonitor.result_entries(parsed, verdicts)}


def _outcome(wire_event: dict, result: Any) -> Outcome:
    if not isinstance(result, dict):
        return Outcome(RETRY, "answer has no result for this event")
    if result.get("success") is True:
        return Outcome(OK)
    error = str(result.get("error") or "rejected")
    if ALREADY_EXISTS in error and wire_event.get("event") == "start":
        return Outcome(OK, "already held by the backend")
    return Outcome(REJECT, error)


def encode(events: list[dict], options: dict) -> list[Request]:
    wire: list[dict] = []
    owner: list[int] = []
    for index, event in enumerate(events):
        if event["source"] == NAME and event.get("raw") and event["phase"] != "complete":
            out = [dict(event["raw"])]
        else:
            out = stream_events.from_canonical(event, v0=False, uuids=True)
        if options.get("project"):
            for w in out:
                w["appId"] = options["project"]
        wire.extend(out)
        owner.extend([index] * len(out))
    if not wire:
        return []
    covered = sorted(set(owner))

    def read(body: Any) -> list[Outcome]:
        results = body.get("results") if isinstance(body, dict) else None
        if not isinstance(results, list) or len(results) != len(wire):
            return [Outcome(RETRY, "answer's results do not match the events sent")] * len(covered)
        per_event: dict[int, list[Outcome]] = {i: [] for i in covered}
        for w, result, i in zip(wire, results, owner):
            per_event[i].append(_outcome(w, result))
        return [worst(per_event[i]) for i in covered]

    return [Request("POST", "/v1/runs/ingest", {"events": wire}, covered, read)]
