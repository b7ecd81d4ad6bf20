"""What an egress mapping produces and how a backend's answer is read, for every dialect.

An egress mapping turns a batch of canonical events into `Request`s (pure data: method,
path, JSON body, and which events of the batch each request carries); the forwarder
sends them and hands each answer back to the dialect's reader, which says per event
whether it was delivered, should be retried, or can never be delivered.
"""
from dataclasses import dataclass, field
from typing import Any, Callable

OK = "ok"
RETRY = "retry"
REJECT = "reject"


@dataclass(slots=True)
class Outcome:
    verdict: str  # OK | RETRY | REJECT
    reason: str = ""
    attempts: int = 1
    answer: str = ""  # what the backend said, kept with a dead letter


@dataclass(slots=True)
class Request:
    method: str
    path: str
    body: Any
    covers: list[int]  # indexes, in the batch, of the events this request carries
    read: Callable[[Any], list[Outcome]] | None = None  # 2xx body -> one outcome per `covers`
    headers: dict[str, str] = field(default_factory=dict)


def by_status(status: int, body_text: str) -> Outcome | None:
    """The verdict a status alone gives, or None when the body must be read (2xx)."""
    if 200 <= status < 300:
        return None
    reason = f"HTTP {status}: {body_text[:300]}"
    if status in (408, 425, 429) or status >= 500:
        return Outcome(RETRY, reason)
    return Outcome(REJECT, reason)


def all_ok(count: int) -> list[Outcome]:
    return [Outcome(OK) for _ in range(count)]


def worst(outcomes: list[Outcome]) -> Outcome:
    for verdict in (REJECT, RETRY):
        for o in outcomes:
            if o.verdict == verdict:
                return o
    return Outcome(OK)
