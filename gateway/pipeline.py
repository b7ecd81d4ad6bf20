"""From canonical events to per-backend queues: identity, routing, dedupe, enqueue.

One store call per request: claims and queueing happen together, atomically, so an
acknowledged event is always queued and a duplicate is never queued twice.
"""
import hashlib
from dataclasses import dataclass

from mappings.ids import content_hash

from .config import Config, Tenant
from .routing import Router
from .store import Backpressure, Store

# phases that may repeat for one run: their identity includes their content
_REPEATABLE = frozenset({"chat", "feedback", "update", "custom"})
_DIGEST = hashlib.blake2b(digest_size=16)  # copied for each identity: cheaper than building one anew


def identity(tenant: str, event: dict) -> str:
    phase = event["phase"]
    parts = f"{tenant}\x1f{event['run_id']}\x1f{phase}"
    if phase in _REPEATABLE:
        parts += "\x1f" + content_hash(event.get("raw") or [event.get("message"), event.get("feedback"), event.get("metadata")])
    digest = _DIGEST.copy()
    digest.update(parts.encode())
    return digest.hexdigest()


@dataclass
class Counters:
    accepted: int = 0
    duplicates: int = 0


class Pipeline:
    def __init__(self, config: Config, store: Store):
        self.store = store
        self.counters = Counters()
        self.listeners: list = []
        self.reconfigure(config)

    def reconfigure(self, config: Config) -> None:
        """Take a reloaded config's routes, queue bounds and dedupe window; counters and listeners stay."""
        self.ttl = config.limits.dedupe_ttl
        self.bounds = {b.name: b.max_queue for b in config.backends}
        self.dialects = {b.name: b.dialect for b in config.backends}
        self.router = Router(config.tenants)

    def routes(self, tenant: Tenant, event: dict) -> list[str]:
        return self.router.targets(tenant.name, event)

    def admit(self, tenant: Tenant) -> None:
        """Raise Backpressure now if a backend every event of the tenant goes to has no
        room: a refused request then costs neither parsing nor mapping (under overload,
        refused requests outnumber accepted ones)."""
        full = self.store.full(self.router.always(tenant.name), self.bounds)
        if full is not None:
            raise Backpressure(full)

    async def submit(self, tenant: Tenant, events: list[dict], wire_bytes: int = 0) -> list[bool]:
        """Queue the events for the tenant's backends; per event, whether it was new.
        ``wire_bytes``: the request body they came in, in bytes, if known."""
        if not events:
            return []
        name = tenant.name
        targets = fixed = self.router.fixed(name)  # the same targets for every event: found once, not per event
        fixed_dialects = {self.dialects[t] for t in fixed} if fixed is not None else None
        claims, routes = [], []
        for event in events:
            event["tenant"] = name
            event["id"] = event_id = identity(name, event)
            claims.append(event_id)
            if fixed is None:
                targets = self.router.targets(name, event)
            routes.append(targets)
            # the client's own event is kept only for a backend of its own dialect
            if event.get("raw") is not None and event["source"] not in (
                    fixed_dialects if fixed is not None else {self.dialects[t] for t in targets}):
                event["raw"] = None
        new = await self.store.accept(claims, events, routes, self.bounds, self.ttl, wire_bytes)
        fresh = sum(new)
        self.counters.accepted += fresh
        self.counters.duplicates += len(new) - fresh
        for listener in self.listeners:
            listener(tenant, events, new)
        return new
