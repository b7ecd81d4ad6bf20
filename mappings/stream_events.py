"""The LLMonitor v0 / Lunary event-stream family, shared by both dialect modules.

Lunary's wire format is LLMonitor v0's plus some fields (messages in OpenAI shape,
threads, params, templates), so both dialects are this one table; the dialect
modules pick the message style and answer shapes.
"""
from typing import Any

from . import fields, messages, times
from .canonical import new_event
from .errors import MappingError
from .fields import Field
from .ids import as_uuid, content_hash

KINDS = {
    "llm": "llm", "agent": "agent", "tool": "tool", "chain": "chain", "chat": "chat",
    "convo": "thread", "thread": "thread", "embed": "embed", "retriever": "retriever",
    "custom-event": "custom", "log": "log",
}
KINDS_OUT = {"thread": "thread", "custom": "custom-event", "session": "thread", "log": "log"}
PHASES = {
    "start": "start", "end": "end", "error": "error", "feedback": "feedback",
    "update": "update", "chat": "chat", "custom-event": "custom", "info": "custom",
    "warn": "custom", "warning": "custom",
}
PHASES_OUT = {"custom": "custom-event"}

# canonical field      <- source keys (first present wins)           converter
TABLE = (
    Field("run_id",        ("runId", "run_id"),                         "string"),
    Field("parent_run_id", ("parentRunId", "parent_run_id"),            "string"),
    Field("name",          ("name",),                                   "string"),
    Field("input",         ("input",),                                  "messages"),
    Field("output",        ("output",),                                 "messages"),
    Field("message",       ("message",),                                "message"),
    Field("params",        ("params",),                                 "object"),
    Field("metadata",      ("metadata",),                               "object"),
    Field("feedback",      ("feedback",),                               "object"),
    Field("usage",         ("tokensUsage", "tokens_usage"),             "usage_v0"),
    Field("error",         ("error",),                                  "error"),
    Field("user_id",       ("userId", "user_id"),                       "string"),
    Field("user_props",    ("userProps", "user_props"),                 "object"),
    Field("tags",          ("tags",),                                   "string_list"),
)
# the project id an event carries is its project's public key: a credential, consumed
# by auth (LLMonitor's app, Lunary's appId that its SDK sets to the key) and never forwarded
CREDENTIALS = frozenset({"app", "appId", "projectId"})
# read by hand below: the type and event enums, the time, `extra` (model params in v0)
HANDLED = ("type", "event", "timestamp", "extra", *CREDENTIALS)
READER = fields.Reader(TABLE, HANDLED)


def to_canonical(raw: Any, source: str) -> dict:
    if not isinstance(raw, dict):
        raise MappingError("", f"expected an event object, got {type(raw).__name__}")
    phase_in = raw.get("event")
    if not isinstance(phase_in, str):
        raise MappingError("event", "required: one of start, end, error, feedback, update, chat")
    phase = PHASES.get(phase_in)
    if phase is None:
        raise MappingError("event", f"unknown event {phase_in[:40]!r}")
    kind_in = raw.get("type")
    if kind_in is None:
        if phase not in ("feedback", "update", "end", "error"):
            raise MappingError("type", "required on a start event")
        kind = "llm" if raw.get("tokensUsage") else "chain"
    elif not isinstance(kind_in, str) or kind_in not in KINDS:
        raise MappingError("type", f"unknown run type {str(kind_in)[:40]!r}")
    else:
        kind = KINDS[kind_in]
    ts = raw.get("timestamp")
    try:
        stamp = times.iso_time(ts) if ts is not None else times.now_iso()
    except MappingError as exc:
        raise MappingError("timestamp", exc.problem) from None
    event = new_event(source, kind, phase, "", stamp)
    leftover = READER.read(raw, event)
    extra = raw.get("extra")
    if isinstance(extra, dict):
        event["params"] = {**extra, **event["params"]}
    elif extra is not None:
        raise MappingError("extra", "expected an object")
    if not event["run_id"]:
        if phase in ("start", "chat", "custom"):
            event["run_id"] = content_hash(raw)
        else:
            raise MappingError("runId", "required")
    if phase == "chat":
        if event["message"] is None:
            raise MappingError("message", "required on a chat event")
        event["kind"] = "chat"
        event["session_id"] = event["parent_run_id"]
    if phase in ("start", "end") and event["kind"] == "llm" and event["name"]:
        event["model"] = event["name"]
    event["extra"] = leftover
    event["raw"] = raw if CREDENTIALS.isdisjoint(raw) else {k: v for k, v in raw.items() if k not in CREDENTIALS}
    return event


def _common(event: dict, v0: bool) -> dict:
    convert = messages.to_v0 if v0 else (lambda v: v)
    kind = event["kind"]
    out: dict[str, Any] = {
        "type": KINDS_OUT.get(kind, kind),
        "runId": event["run_id"],
        "timestamp": event["timestamp"],
    }
    if event.get("parent_run_id"):
        out["parentRunId"] = event["parent_run_id"]
    for src, dst in (("name", "name"), ("user_id", "userId"), ("user_props", "userProps"),
                     ("tags", "tags"), ("metadata", "metadata"), ("feedback", "feedback")):
        if event.get(src):
            out[dst] = event[src]
    if kind == "llm" and event.get("model"):
        out["name"] = event["model"]  # an llm run is named by its model: Lunary prices and counts tokens by it
    if event.get("input") is not None:
        out["input"] = convert(event["input"])
    if event.get("output") is not None:
        out["output"] = convert(event["output"])
    if event.get("params"):
        out["extra" if v0 else "params"] = event["params"]
    if event.get("error"):
        out["error"] = {k: v for k, v in event["error"].items() if v is not None}
    usage = event.get("usage")
    if usage and not usage.get("estimated"):
        tokens = {"prompt": usage.get("prompt_tokens"), "completion": usage.get("completion_tokens")}
        if usage.get("cached_prompt_tokens") is not None and not v0:
            tokens["promptCached"] = usage["cached_prompt_tokens"]
        out["tokensUsage"] = {k: v for k, v in tokens.items() if v is not None}
    return out


def from_canonical(event: dict, v0: bool, uuids: bool) -> list[dict]:
    """One canonical event as stream events; a complete record becomes start + end."""
    phase = event["phase"]
    base = _common(event, v0)
    if uuids:
        base["runId"] = as_uuid(base["runId"])
        if "parentRunId" in base:
            base["parentRunId"] = as_uuid(base["parentRunId"])
    if phase == "chat":
        base["type"] = "thread"
        base["event"] = "chat"
        base["parentRunId"] = as_uuid(event["session_id"]) if uuids and event.get("session_id") else event.get("session_id")
        base["message"] = event["message"]  # v0 has no threads: its server reads chat messages OpenAI-shaped
        return [base]
    if phase != "complete":
        base["event"] = PHASES_OUT.get(phase, phase)
        return [base]
    start = {k: v for k, v in base.items() if k not in ("output", "error", "tokensUsage", "feedback")}
    start["event"] = "start"
    start["timestamp"] = event.get("started_at") or event["timestamp"]
    end = {"type": base["type"], "runId": base["runId"], "timestamp": event.get("ended_at") or event["timestamp"]}
    if "parentRunId" in base:
        end["parentRunId"] = base["parentRunId"]
    if event.get("error"):
        end["event"] = "error"
        end["error"] = base["error"]
    else:
        end["event"] = "end"
    for key in ("output", "tokensUsage"):
        if key in base:
            end[key] = base[key]
    out = [start, end]
    if event.get("feedback"):
        out.append({"type": base["type"], "event": "feedback", "runId": base["runId"],
                    "timestamp": end["timestamp"], "feedback": event["feedback"]})
    return out
