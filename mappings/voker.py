"""Voker: ``POST /api/v1/events`` records of one LLM call in the provider's own shape.

Voker sends no event id, so a run id is derived from the content: identical retries
map to the same id and are recognised as duplicates. Fingerprints, people, agents
and agent versions are entities the gateway keeps (see gateway.ingress.voker).
"""
from typing import Any

from . import providers, times
from .canonical import new_event
from .egress import OK, REJECT, Outcome, Request
from .errors import MappingError
from .ids import content_hash, derived_uuid
from .ingest import Parsed

NAME = "voker"
SHAPE = "record"
EVENT_KEYS = ("event_name", "fingerprint_id", "properties", "session", "agent", "agent_version", "person")


def error_body(message: str, field: str = "") -> dict:
    loc = ["body", *[p for p in field.split(".") if p]] if field else ["body"]
    return {"detail": [{"loc": loc, "msg": message, "type": "value_error"}]}


SESSION_EMPTY = {"detail": {"type": "session-id-empty"}}  # the 422 the SDK turns into SessionIdEmptyError


def not_found(kind: str) -> dict:
    return {"detail": {"type": f"{kind}-not-found"}}


def _optional_string(payload: dict, key: str) -> str | None:
    value = payload.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise MappingError(key, "expected a string")
    return value


def event_to_canonical(payload: Any) -> dict:
    if not isinstance(payload, dict):
        raise MappingError("", "expected an event object")
    if payload.get("event_name") != "llm":
        raise MappingError("event_name", "only 'llm' is supported")
    if not isinstance(payload.get("fingerprint_id"), str):
        raise MappingError("fingerprint_id", "required: a string")
    props = payload.get("properties")
    if not isinstance(props, dict):
        raise MappingError("properties", "required: an object")
    api = props.get("api")
    if api not in providers.APIS:
        raise MappingError("properties.api", f"must be one of {', '.join(providers.APIS)}")
    for key in ("inputs", "output"):
        if not isinstance(props.get(key), dict):
            raise MappingError(f"properties.{key}", "required: an object")
    session = _optional_string(payload, "session")
    if session == "":
        raise MappingError("session", "must not be empty")
    run_id = derived_uuid(NAME, content_hash({k: v for k, v in payload.items() if k != "fingerprint_id"}))
    event = new_event(NAME, "llm", "complete", run_id, times.now_iso())
    call = providers.to_canonical(api, props["inputs"], props["output"])
    event.update(input=call["input"], output=call["output"], params=call["params"], usage=call["usage"],
                 model=call["model"], name=call["model"], provider=providers.provider_of(api), session_id=session,
                 user_id=_optional_string(payload, "person"))
    for key in ("agent", "agent_version"):
        value = _optional_string(payload, key)
        if value is not None:
            event["metadata"][key] = value
    event["metadata"]["api"] = api
    event["extra"] = {k: v for k, v in payload.items() if k not in EVENT_KEYS}
    event["raw"] = payload
    return event


def parse_event(payload: Any) -> Parsed:
    event = event_to_canonical(payload)
    return Parsed([event], [event["run_id"]])


def answer_event(run_id: str) -> dict:
    return {"event_id": run_id, "success": True}


# ---- egress -------------------------------------------------------------------

def to_event(event: dict, fingerprint_id: str) -> dict:
    if event["source"] == NAME and event.get("raw"):
        return {**event["raw"], "fingerprint_id": fingerprint_id}
    body: dict[str, Any] = {"event_name": "llm", "fingerprint_id": fingerprint_id,
                            "properties": providers.to_openai_chat(event)}
    if event.get("session_id"):
        body["session"] = event["session_id"]
    if event.get("user_id"):
        body["person"] = event["user_id"]
    metadata = event.get("metadata") or {}
    for key in ("agent", "agent_version"):
        if isinstance(metadata.get(key), str):
            body[key] = metadata[key]
    return body


def _read_one(body: Any) -> list[Outcome]:
    if isinstance(body, dict):
        return [Outcome(OK)]
    return [Outcome(REJECT, f"answer is not a JSON object: {str(body)[:200]}")]


def encode(events: list[dict], options: dict) -> list[Request]:
    """One request per LLM record; other runs have no Voker counterpart (see README)."""
    return [
        Request("POST", "/api/v1/events", to_event(event, options["fingerprint_id"]), [index], _read_one)
        for index, event in enumerate(events)
        if event["kind"] == "llm" and event["phase"] == "complete"
    ]
