"""What a simulated backend accepted, in one shape for every dialect.

Tests, fault scripts and benchmarks all ask the same questions (how many, which ones,
what state did a run end in), so every simulator writes here instead of keeping its own
lists. Two namespaces:

- *records*: append-only lists per kind ("events", "spans", "orphans", ...), one entry
  per accepted item, in arrival order; ``count(kind)`` is how everything is counted.
- *objects*: the server's current state per kind, keyed by id ("runs", "sessions",
  "fingerprints", ...), mutated in place as later requests update it.

All mutation happens on the event loop thread and no method awaits, so each call is
atomic with respect to the other handlers; other threads read through ``/_received``.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any


class Received:
    """The accepted records and current objects of one simulated backend."""

    def __init__(self) -> None:
        self._records: defaultdict[str, list[Any]] = defaultdict(list)
        self._objects: defaultdict[str, dict[str, Any]] = defaultdict(dict)

    def add(self, kind: str, record: Any) -> None:
        self._records[kind].append(record)

    def records(self, kind: str) -> list[Any]:
        return list(self._records.get(kind, ()))

    def count(self, kind: str) -> int:
        return len(self._records.get(kind, ()))

    def find(self, kind: str, **fields: Any) -> list[Any]:
        """Records of ``kind`` whose top-level fields equal every given value."""
        return [
            record
            for record in self._records.get(kind, ())
            if all(record.get(name) == value for name, value in fields.items())
        ]

    def put(self, kind: str, key: str, obj: Any) -> None:
        self._objects[kind][key] = obj

    def get(self, kind: str, key: str) -> Any | None:
        return self._objects.get(kind, {}).get(key)

    def pop(self, kind: str, key: str) -> Any | None:
        return self._objects.get(kind, {}).pop(key, None)

    def objects(self, kind: str) -> dict[str, Any]:
        return dict(self._objects.get(kind, {}))

    def clear(self) -> None:
        self._records.clear()
        self._objects.clear()

    def counts(self) -> dict[str, int]:
        return {kind: len(records) for kind, records in self._records.items()}

    def snapshot(self, *, with_records: bool = True) -> dict[str, Any]:
        """Everything as plain data, for ``GET /_received`` in a separate process."""
        snapshot: dict[str, Any] = {
            "counts": self.counts(),
            "objects": {kind: len(objs) for kind, objs in self._objects.items()},
        }
        if with_records:
            snapshot["records"] = {kind: list(r) for kind, r in self._records.items()}
            snapshot["state"] = {kind: dict(o) for kind, o in self._objects.items()}
        return snapshot

    async def wait_until(
        self, predicate: Callable[[Received], bool], timeout: float = 5.0
    ) -> None:
        """Wait for deliveries that happen in the background, e.g. a forwarder's retries."""
        deadline = time.monotonic() + timeout
        while not predicate(self):
            if time.monotonic() >= deadline:
                raise TimeoutError(f"condition not met within {timeout}s: {self.counts()}")
            await asyncio.sleep(0.01)
