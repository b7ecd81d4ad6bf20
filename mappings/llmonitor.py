"""LLMonitor v0: ``POST /api/report`` with ``{"events": [...]}``; the app id rides in each event.

Answers are a bare array ``[{"id", "success"}]``; an empty or missing ``events`` is
400 ``{"message": "Missing events payload."}``. Messages are ``{"role": "ai", "text"}``.
"""
from typing import Any

from . import stream_events
from .egress import Request, all_ok
from .errors import MappingError
from .ingest import Parsed, each

NAME = "llmonitor"
SHAPE = "stream"
MISSING = "Missing events payload."


def error_body(message: str) -> dict:
    return {"message": message}


def parse_report(payload: Any) -> Parsed:
    events = payload.get("events") if isinstance(payload, dict) else None
    if not isinstance(events, list) or not events:
        raise MappingError("events", MISSING)
    # the v0 SDK re-queues a batch that met a network error as one element, so its
    # retry arrives nested: {"events": [[e1, e2], e3]}
    events = [e for item in events for e in (item if isinstance(item, list) else [item])]
    if not events:
        raise MappingError("events", MISSING)
    parsed = each(events, lambda raw: stream_events.to_canonical(raw, NAME), ("runId", "run_id"))
    first = events[0] if isinstance(events[0], dict) else {}
    app = first.get("projectId") or first.get("app")
    parsed.credential = app if isinstance(app, str) else None
    return parsed


def result_entries(parsed: Parsed, verdicts: list[str | None]) -> list[dict]:
    """One ``{"id", "success"[, "error"]}`` per event, as the Lunary server answers."""
    out = []
    for item, client_id, error in zip(parsed.items, parsed.ids, verdicts):
        entry: dict[str, Any] = {} if client_id is None else {"id": client_id}
        if isinstance(item, MappingError) or error:
            entry.update(success=False, error=str(item) if isinstance(item, MappingError) else error)
        else:
            entry["success"] = True
        out.append(entry)
    return out


def answer_report(parsed: Parsed, verdicts: list[str | None]) -> tuple[int, Any]:
    return 200, result_entries(parsed, verdicts)


def encode(events: list[dict], options: dict) -> list[Request]:
    wire, covers = [], []
    for index, event in enumerate(events):
        if event["source"] == NAME and event.get("raw") and event["phase"] != "complete":
            out = [dict(event["raw"])]
        else:
            out = stream_events.from_canonical(event, v0=True, uuids=False)
        for w in out:
            w["app"] = options["app_id"]
            wire.append(w)
            covers.append(index)
    if not wire:
        return []
    covered = sorted(set(covers))
    return [Request("POST", "/api/report", {"events": wire}, covered, lambda body: all_ok(len(covered)))]
