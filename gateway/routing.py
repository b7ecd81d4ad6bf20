"""Which backends receive an event: a tenant's routes, each with optional filters.

Sampling is decided per session or run (a hash of tenant and session id, else run
id), so every phase of a run, and every turn of a thread, takes the same decision.
"""
import hashlib

from .config import Route, Tenant


def _sampled(tenant: str, event: dict, rate: float) -> bool:
    if rate >= 1.0:
        return True
    if rate <= 0.0:
        return False
    run = event.get("session_id") or event["run_id"]
    digest = hashlib.blake2b(f"{tenant}\x1f{run}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < rate


def matches(route: Route, tenant: str, event: dict) -> bool:
    if route.kinds and event["kind"] not in route.kinds:
        return False
    if route.phases and event["phase"] not in route.phases:
        return False
    if route.tags and not set(route.tags) & set(event.get("tags") or ()):
        return False
    if route.metadata:
        metadata = event.get("metadata") or {}
        if any(metadata.get(k) != v for k, v in route.metadata.items()):
            return False
    return route.sample is None or _sampled(tenant, event, route.sample)


class Router:
    def __init__(self, tenants: list[Tenant]):
        self._plain = {t.name: list(t.backends) for t in tenants}
        self._filtered = {t.name: list(t.routes) for t in tenants}

    def always(self, tenant: str) -> list[str]:
        """The backends that receive every event of the tenant (routes without filters)."""
        return self._plain.get(tenant, [])

    def fixed(self, tenant: str) -> list[str] | None:
        """The tenant's backends when every event goes to the same ones (no filtered routes), else None."""
        return None if self._filtered.get(tenant) else self._plain.get(tenant, [])

    def targets(self, tenant: str, event: dict) -> list[str]:
        plain = self._plain.get(tenant, [])
        routes = self._filtered.get(tenant)
        if not routes:
            return plain
        return plain + [r.backend for r in routes if r.backend not in plain and matches(r, tenant, event)]
