"""The store: dedupe claims, per-backend durable queues, dead letters, run assembly
state, entities and rate-limit counters. `memory` for one process, `redis` for
production; both pass the same test suite."""
from ..config import MEMORY_CLAIMS, MEMORY_QUEUE_BYTES
from .base import Backpressure, Entry, Store


def open_store(url: str, memory_claims: int = MEMORY_CLAIMS, memory_queue_bytes: int = MEMORY_QUEUE_BYTES) -> Store:
    if url == "memory":
        from .memory import MemoryStore
        return MemoryStore(memory_claims, memory_queue_bytes)
    from .redis_store import RedisStore
    return RedisStore(url)


__all__ = ["Backpressure", "Entry", "Store", "open_store"]
