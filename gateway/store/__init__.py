"""The store: dedupe claims, per-backend durable queues, dead letters, run assembly
state, entities and rate-limit counters. `memory` for one process, `redis` for
production; both pass the same test suite."""
from .base import Backpressure, Entry, Store


def open_store(url: str, memory_claims: int = 100_000, memory_queue_bytes: int = 32 * 1024 * 1024) -> Store:
    if url == "memory":
        from .memory import MemoryStore
        return MemoryStore(memory_claims, memory_queue_bytes)
    from .redis_store import RedisStore
    return RedisStore(url)


__all__ = ["Backpressure", "Entry", "Store", "open_store"]
