"""HoneyHive: sessions and event records over JSON (the tracer's OTLP lives in `otlp`).

Records hold a whole run: ``event_type`` model|tool|chain|session, times in epoch
milliseconds, ``inputs``/``outputs``/``config`` objects. The ``honeyhive`` client
needs exactly HTTP 200 with a JSON body on every call, PUT included.
"""
import math
from typing import Any

from . import fields, messages, times
from .canonical import new_event
from .egress import REJECT, Outcome, Request, all_ok
from .errors import MappingError
from .fields import Field
from .ids import as_uuid, content_hash, derived_uuid
from .ingest import Parsed, each

NAME = "honeyhive"
SHAPE = "record"
KINDS = {"model": "llm", "tool": "tool", "chain": "chain", "session": "session"}
KINDS_OUT = {"llm": "model", "tool": "tool", "session": "session", "embed": "tool", "retriever": "tool"}

# canonical field      <- source keys                     converter
TABLE = (
    Field("run_id",        ("event_id",),                     "string"),
    Field("parent_run_id", ("parent_id",),                    "string"),
    Field("session_id",    ("session_id",),                   "string"),
    Field("name",          ("event_name", "session_name"),    "string"),
    Field("started_at",    ("start_time",),                   "ms_time"),
    Field("ended_at",      ("end_time",),                     "ms_time"),
    Field("metrics",       ("metrics",),                      "object"),
    Field("feedback",      ("feedback",),                     "object"),
    Field("metadata",      ("metadata",),                     "object"),
    Field("user_props",    ("user_properties",),              "object"),
    Field("error",         ("error",),                        "error"),
)
HANDLED = ("event_type", "config", "inputs", "outputs")
READER = fields.Reader(TABLE, HANDLED)
UPDATE_KEYS = ("metadata", "metrics", "outputs", "config", "user_properties", "duration", "end_time", "children_ids")

def error_body(message: str) -> dict:
    return {"success": False, "error": message}


def _inputs(value: Any) -> Any:
    if not isinstance(value, dict):
        raise MappingError("inputs", "expected an object")
    history = value.get("chat_history")
    if isinstance(history, list) and len(value) == 1:
        return messages.normalize(history)
    return {k: messages.normalize(v) for k, v in value.items()}


def _outputs(value: Any) -> Any:
    message = messages.canonical_message(value)
    if message is not None:
        return message
    if not isinstance(value, dict):
        raise MappingError("outputs", "expected an object")
    return value


def _config(event: dict, config: Any) -> None:
    if not isinstance(config, dict):
        raise MappingError("config", "expected an object")
    params = dict(config)
    model, provider = params.pop("model", None), params.pop("provider", None)
    event["model"] = model if isinstance(model, str) else None
    event["provider"] = provider if isinstance(provider, str) else None
    hyper = params.pop("hyperparameters", None)
    if isinstance(hyper, dict):
        params.update(hyper)
    event["params"] = params


def _count(metrics: dict, key: str) -> int | None:
    n = metrics.get(key)
    ok = isinstance(n, (int, float)) and not isinstance(n, bool) and math.isfinite(n) and 0 <= n <= 2**63 - 1
    return int(n) if ok else None


def _usage(metrics: dict) -> dict | None:
    """Token counts a model event reports in its metrics (where this module's egress puts them)."""
    if "prompt_tokens" not in metrics and "completion_tokens" not in metrics:
        return None
    prompt, completion = _count(metrics, "prompt_tokens"), _count(metrics, "completion_tokens")
    if prompt is None and completion is None:
        return None
    total = _count(metrics, "total_tokens")
    return {"prompt_tokens": prompt, "completion_tokens": completion, "cached_prompt_tokens": None,
            "total_tokens": total if total is not None else (prompt or 0) + (completion or 0),
            "estimated": metrics.get("tokens_estimated") is True}


def record_to_canonical(raw: Any, session_id: str | None = None, kind: str | None = None) -> dict:
    """One HoneyHive event (or session) record as one complete canonical event."""
    if not isinstance(raw, dict):
        raise MappingError("", f"expected an event object, got {type(raw).__name__}")
    event_type = kind or raw.get("event_type")
    if not isinstance(event_type, str) or event_type not in KINDS:
        raise MappingError("event_type", "required: one of model, tool, chain, session")
    event = new_event(NAME, KINDS[event_type], "complete", "", "")
    leftover = READER.read(raw, event)
    if session_id is not None:
        event["session_id"] = session_id
    if not event["name"] and event_type != "session":
        raise MappingError("event_name", "required")
    config, inputs, outputs = raw.get("config"), raw.get("inputs"), raw.get("outputs")
    if config is not None:
        _config(event, config)
    if inputs is not None:
        event["input"] = _inputs(inputs)
    if outputs is not None:
        event["output"] = _outputs(outputs)
    metrics, started, ended = event["metrics"], event["started_at"], event["ended_at"]
    if metrics and event_type == "model":
        event["usage"] = _usage(metrics)
    duration = raw.get("duration")
    if started and not ended and isinstance(duration, (int, float)) and not isinstance(duration, bool):
        ended = event["ended_at"] = times.from_ms(times.to_ms(started) + duration)
    event["timestamp"] = ended or started or times.now_iso()
    if not event["run_id"]:
        own_id = event["session_id"] if event_type == "session" else None  # a session's id is its event id
        event["run_id"] = own_id or derived_uuid(NAME, content_hash(raw))
    if event_type == "session":
        event["session_id"] = event["run_id"]
        event["phase"] = "start"
    props = event["user_props"]
    if props and isinstance(props.get("user_id"), str):
        event["user_id"] = props["user_id"]
    event["extra"] = leftover
    event["raw"] = raw
    return event


def parse_session_start(payload: Any) -> Parsed:
    session = payload.get("session") if isinstance(payload, dict) else None
    if not isinstance(session, dict):
        raise MappingError("session", "required: an object")
    try:
        event = record_to_canonical(session, kind="session")
    except MappingError as exc:
        raise exc.within("session") from None
    return Parsed([event], [event["run_id"]])


def parse_event(payload: Any) -> Parsed:
    raw = payload.get("event") if isinstance(payload, dict) else None
    if not isinstance(raw, dict):
        raise MappingError("event", "required: an object")
    try:
        event = record_to_canonical(raw)
    except MappingError as exc:
        raise exc.within("event") from None
    return Parsed([event], [event["run_id"]])


def parse_session_event(payload: Any, session_id: str) -> Parsed:
    if not isinstance(payload, dict):
        raise MappingError("", "expected an event object")
    event = record_to_canonical(payload, session_id=session_id)
    return Parsed([event], [event["run_id"]])


def parse_batch(payload: Any) -> Parsed:
    events = payload.get("events") if isinstance(payload, dict) else None
    if not isinstance(events, list):
        raise MappingError("events", "required: an array of events")
    session = _batch_session(payload, events)
    parsed = each(events, record_to_canonical if session is None else _in_session(session["run_id"]))
    parsed.ids = [i["run_id"] if isinstance(i, dict) else None for i in parsed.items]
    if session is not None:
        parsed.context["session"] = session
    return parsed


def _batch_session(payload: dict, events: list) -> dict | None:
    """The session a single-session batch starts, from its ``session_properties``."""
    props = payload.get("session_properties")
    if not payload.get("is_single_session") or not isinstance(props, dict):
        return None
    # events that all name one session make that the batch's session (its start then
    # dedupes against the session's own), instead of a new session left empty
    named = {raw.get("session_id") if isinstance(raw, dict) and isinstance(raw.get("session_id"), str) else None
             for raw in events}
    shared = named.pop() if len(named) == 1 else None
    session_id = shared if isinstance(shared, str) and shared else derived_uuid(NAME, content_hash(payload))
    return record_to_canonical({"session_id": session_id, **props}, kind="session")


def _in_session(session_id: str):
    """Convert a batch's record, into the batch's session unless it names its own."""
    def convert(raw: Any) -> dict:
        own_session = isinstance(raw, dict) and raw.get("session_id")
        return record_to_canonical(raw, session_id=None if own_session else session_id)
    return convert


def parse_update(payload: Any, kind: str = "chain") -> Parsed:
    """``PUT /events``: feedback becomes a feedback event, the rest an update event."""
    if not isinstance(payload, dict):
        raise MappingError("", "expected an object")
    run_id = payload.get("event_id")
    if not isinstance(run_id, str) or not run_id:
        raise MappingError("event_id", "required: a string")
    stamp = times.now_iso()
    if payload.get("end_time") is not None:
        try:
            stamp = times.ms_time(payload["end_time"])
        except MappingError as exc:
            raise MappingError("end_time", exc.problem) from None
    items = []
    feedback = payload.get("feedback")
    if feedback is not None:
        if not isinstance(feedback, dict):
            raise MappingError("feedback", "expected an object")
        event = new_event(NAME, kind, "feedback", run_id, stamp)
        event["feedback"] = feedback
        items.append(event)
    if any(payload.get(k) is not None for k in UPDATE_KEYS):
        event = new_event(NAME, kind, "update", run_id, stamp)
        READER.read({k: payload.get(k) for k in ("metadata", "metrics", "user_properties", "end_time")}, event)
        if payload.get("outputs") is not None:
            event["output"] = _outputs(payload["outputs"])
        if payload.get("config") is not None:
            _config(event, payload["config"])
        event["extra"] = {k: payload[k] for k in ("duration", "children_ids") if payload.get(k) is not None}
        items.append(event)
    for event in items:
        event["raw"] = payload
    return Parsed(items, [run_id] * len(items))


def answer_session(parsed: Parsed, tenant_ids: dict) -> dict:
    session_id = parsed.ids[0]
    return {"session_id": session_id, "event_id": session_id, **tenant_ids}


# ---- egress -------------------------------------------------------------------

def _session_of(event: dict) -> str:
    return as_uuid(event.get("session_id") or event["run_id"])


def to_record(event: dict, options: dict) -> dict:
    kind = event["kind"]
    out: dict[str, Any] = {
        "event_id": as_uuid(event["run_id"]),
        "event_type": KINDS_OUT.get(kind, "chain"),
        "event_name": event.get("name") or kind,
        "session_id": _session_of(event),
        "parent_id": as_uuid(event["parent_run_id"]) if event.get("parent_run_id") else _session_of(event),
        "source": options.get("source", "rosetta"),
    }
    if options.get("project"):
        out["project"] = options["project"]
    config: dict[str, Any] = {}
    if event.get("model"):
        config["model"] = event["model"]
    if event.get("provider"):
        config["provider"] = event["provider"]
    if event.get("params"):
        config["hyperparameters"] = event["params"]
    if config:
        out["config"] = config
    value = event.get("input")
    if value is not None:
        out["inputs"] = {"chat_history": value} if messages.is_message_list(value) else value if isinstance(value, dict) else {"input": value}
    value = event.get("output")
    if value is not None:
        out["outputs"] = value if isinstance(value, dict) else {"output": value}
    message = event.get("message")  # a thread chat message: the assistant's is an output, any other an input
    if message:
        if message.get("role") == "assistant":
            out["outputs"] = message
        else:
            out["inputs"] = {"chat_history": [message]}
    if event.get("started_at"):
        out["start_time"] = times.to_ms(event["started_at"])
    if event.get("ended_at"):
        out["end_time"] = times.to_ms(event["ended_at"])
        if "start_time" in out:
            out["duration"] = out["end_time"] - out["start_time"]
    metadata = _metadata(event)
    if kind not in KINDS_OUT and kind != "chain":
        metadata["run_type"] = kind
    if event.get("incomplete"):
        metadata["incomplete"] = True
    if metadata:
        out["metadata"] = metadata
    metrics = dict(event.get("metrics") or {})
    usage = event.get("usage")
    if usage:
        for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
            if usage.get(key) is not None:
                metrics[key] = usage[key]
        if usage.get("estimated"):
            metrics["tokens_estimated"] = True
    if metrics:
        out["metrics"] = metrics
    if event.get("feedback"):
        out["feedback"] = event["feedback"]
    props = _user_properties(event)
    if props:
        out["user_properties"] = props
    if event.get("error"):
        out["error"] = event["error"]["message"]
    return out


def _metadata(event: dict) -> dict:
    metadata = dict(event.get("metadata") or {})
    if event.get("tags"):
        metadata["tags"] = event["tags"]
    return metadata


def _user_properties(event: dict) -> dict:
    props = dict(event.get("user_props") or {})
    if event.get("user_id"):
        props["user_id"] = event["user_id"]
    return props


def _session_start(event: dict, options: dict) -> dict:
    if event["source"] == NAME and event.get("raw"):
        return {"session": {**event["raw"], "session_id": as_uuid(event["run_id"])}}
    record = to_record(event, options)
    session = {k: v for k, v in record.items() if k not in ("event_id", "event_type", "event_name", "parent_id")}
    session["session_id"] = as_uuid(event["run_id"])
    session["session_name"] = event.get("name") or "session"
    return {"session": session}


def _update(event: dict) -> dict:
    body: dict[str, Any] = {"event_id": as_uuid(event["run_id"])}
    if event["phase"] == "feedback":
        body["feedback"] = event.get("feedback") or {}
        return body
    for dst, value in (("metadata", _metadata(event)), ("metrics", event.get("metrics")), ("outputs", event.get("output")),
                       ("user_properties", _user_properties(event))):
        if value:
            body[dst] = value if isinstance(value, dict) else {"output": value}
    if event.get("ended_at"):
        body["end_time"] = times.to_ms(event["ended_at"])
    return body


def _read_batch(count: int):
    def read(body: Any) -> list[Outcome]:
        if isinstance(body, dict) and body.get("success") is not False:
            return all_ok(count)
        return [Outcome(REJECT, f"batch refused: {str(body)[:200]}")] * count
    return read


def encode(events: list[dict], options: dict) -> list[Request]:
    """Sessions first, then one batch of records, then updates and feedback."""
    sessions, records, updates = [], [], []
    record_covers: list[int] = []
    for index, event in enumerate(events):
        phase, kind = event["phase"], event["kind"]
        if kind == "session" and phase in ("start", "complete"):
            sessions.append(Request("POST", "/session/start", _session_start(event, options), [index], lambda b: all_ok(1)))
        elif phase in ("feedback", "update"):
            updates.append(Request("PUT", "/events", _update(event), [index], lambda b: all_ok(1)))
        elif phase in ("complete", "chat"):
            if event["source"] == NAME and event.get("raw") and kind != "session":
                record = dict(event["raw"])
                record["event_id"] = as_uuid(event["run_id"])
                record.setdefault("session_id", _session_of(event))
            else:
                record = to_record(event, options)
            records.append(record)
            record_covers.append(index)
    batch = []
    if records:
        batch.append(Request("POST", "/events/batch", {"events": records}, record_covers, _read_batch(len(records))))
    return sessions + batch + updates


