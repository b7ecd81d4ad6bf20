"""A forwarder renews its lease at most every third of the TTL, not on every batch, and
still stops once the lease is someone else's: at the latest a third of the TTL after
the takeover, plus the read it was blocked in (half a second at most)."""
import asyncio
import time

from gateway.config import Backend
from gateway.delivery.forwarder import Forwarder
from gateway.store.memory import MemoryStore


def _forwarder(tmp_path, lease_ttl: float) -> tuple[MemoryStore, Forwarder, list[float]]:
    store = MemoryStore()
    renewals: list[float] = []
    lease = store.lease

    async def counted(backend, owner, ttl):
        renewals.append(time.monotonic())
        return await lease(backend, owner, ttl)

    store.lease = counted
    backend = Backend(name="archive", dialect="jsonl", path=str(tmp_path / "events.jsonl"))
    return store, Forwarder(backend, store, None, lease_ttl=lease_ttl), renewals


async def _until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.005)


async def _accept(store: MemoryStore, n: int) -> None:
    await store.accept([f"claim-{n}"], [{"n": n, "kind": "log", "phase": "custom"}], [["archive"]], {}, 60)


async def test_batches_in_quick_succession_share_one_renewal(tmp_path):
    store, forwarder, renewals = _forwarder(tmp_path, lease_ttl=30.0)
    task = asyncio.create_task(forwarder.run())
    try:
        for n in range(20):
            await _accept(store, n)
            await _until(lambda: forwarder.stats.delivered == n + 1)
    finally:
        await forwarder.stop()
        await task
    assert len(renewals) == 1


async def test_the_lease_is_renewed_every_third_of_its_ttl(tmp_path):
    store, forwarder, renewals = _forwarder(tmp_path, lease_ttl=0.3)
    task = asyncio.create_task(forwarder.run())
    try:
        n = 0
        started = time.monotonic()
        while time.monotonic() - started < 0.8:
            await _accept(store, n)
            n += 1
            await _until(lambda: forwarder.stats.delivered == n)
    finally:
        await forwarder.stop()
        await task
    gaps = [b - a for a, b in zip(renewals, renewals[1:])]
    assert len(renewals) >= 4
    assert min(gaps) >= 0.1 - 0.005


async def test_a_lease_taken_over_stops_delivery(tmp_path):
    store, forwarder, _ = _forwarder(tmp_path, lease_ttl=0.6)
    task = asyncio.create_task(forwarder.run())
    try:
        await _accept(store, 0)
        await _until(lambda: forwarder.stats.delivered == 1)
        await store.release("archive", forwarder.owner)
        assert await store.lease("archive", "another-replica", 30)
        await asyncio.sleep(0.2 + 0.5 + 0.1)
        await _accept(store, 1)
        await asyncio.sleep(0.3)
        assert forwarder.stats.delivered == 1
    finally:
        await forwarder.stop()
        await task
