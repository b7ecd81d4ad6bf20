"""The canonical event: one shape every dialect maps into and out of.

The pydantic model is the contract. The hot path carries the same data as plain
dicts (built by the mapping tables, which check every type they read), because
constructing a model per event would cost more than the rest of ingestion together;
`validate_event` checks a dict against the model, and the golden tests run it on
every event every mapping produces.
"""
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1

Kind = Literal[
    "llm", "agent", "tool", "chain", "chat", "thread", "embed", "retriever",
    "session", "custom", "log",
]
Phase = Literal["start", "end", "error", "feedback", "update", "chat", "complete", "custom"]
STREAM_PHASES = frozenset({"start", "end", "error", "feedback", "update", "chat", "custom"})


class ToolCall(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str | None = None
    type: str = "function"
    function: dict[str, Any]


class Message(BaseModel):
    """OpenAI-shaped chat message; content is text or a list of typed parts."""

    model_config = ConfigDict(extra="allow")
    role: str
    content: str | list[dict[str, Any]] | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    name: str | None = None


class Usage(BaseModel):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_prompt_tokens: int | None = None
    total_tokens: int | None = None
    estimated: bool = False


class ErrorInfo(BaseModel):
    model_config = ConfigDict(extra="allow")
    message: str
    stack: str | None = None


class CanonicalEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_version: int = SCHEMA_VERSION
    id: str | None = Field(None, description="dedupe identity, set by the pipeline")
    tenant: str | None = None
    source: str = Field(description="dialect the event arrived in")
    kind: Kind
    phase: Phase
    run_id: str
    parent_run_id: str | None = None
    session_id: str | None = Field(None, description="Lunary thread / HoneyHive session / Voker session")
    name: str | None = None
    model: str | None = None
    provider: str | None = None
    timestamp: str = Field(description="ISO 8601 UTC time of this event")
    started_at: str | None = None
    ended_at: str | None = None
    input: Any = None
    output: Any = None
    message: Message | None = Field(None, description="the chat message of a thread chat event")
    params: dict[str, Any] = Field(default_factory=dict)
    usage: Usage | None = None
    error: ErrorInfo | None = None
    feedback: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None
    user_id: str | None = None
    user_props: dict[str, Any] | None = None
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    extra: dict[str, Any] = Field(default_factory=dict, description="fields with no canonical slot, kept")
    incomplete: bool = False
    raw: dict[str, Any] | None = Field(None, description="the client's own event, for same-dialect forwarding")


def validate_event(event: dict[str, Any]) -> CanonicalEvent:
    return CanonicalEvent.model_validate(event)


_BLANK: dict[str, Any] = {
    "schema_version": SCHEMA_VERSION, "id": None, "tenant": None, "source": None,
    "kind": None, "phase": None, "run_id": None, "parent_run_id": None,
    "session_id": None, "name": None, "model": None, "provider": None,
    "timestamp": None, "started_at": None, "ended_at": None, "input": None,
    "output": None, "message": None, "params": None, "usage": None, "error": None,
    "feedback": None, "metrics": None, "user_id": None, "user_props": None,
    "tags": None, "metadata": None, "extra": None, "incomplete": False, "raw": None,
}


def new_event(source: str, kind: str, phase: str, run_id: str, timestamp: str) -> dict[str, Any]:
    """A canonical event dict with every optional field at its default (a copy of one
    template, in the model's field order, its containers new)."""
    event = _BLANK.copy()
    event["source"], event["kind"], event["phase"] = source, kind, phase
    event["run_id"], event["timestamp"] = run_id, timestamp
    event["params"], event["tags"], event["metadata"], event["extra"] = {}, [], {}, {}
    return event
