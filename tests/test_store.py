"""The store contract, run against both implementations: the in-process MemoryStore and
the RedisStore on a real redis-server. Delivery guarantees rest on these semantics
(atomic claim-and-queue, ack-after-delivery, re-claim of a dead holder's entries), so
the two must behave the same."""
import asyncio
import time

import orjson
import pytest
import redis.asyncio as redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from gateway.config import Backend
from gateway.delivery.forwarder import Forwarder
from gateway.store import Backpressure
from gateway.store.channel import Channel
from gateway.store import keys
from gateway.store.redis_store import RedisStore, _Written

BACKEND = "b"
FOREVER = 3600.0


def ev(n: int) -> dict:
    return {"id": f"e{n}", "phase": "start", "n": n}


async def accept(store, *numbers, ttl=60, bound=None, backends=(BACKEND,)) -> list[bool]:
    bounds = {b: bound for b in backends} if bound is not None else {}
    return await store.accept([f"c{n}" for n in numbers], [ev(n) for n in numbers],
                              [list(backends) for _ in numbers], bounds, ttl)


async def drain(store, consumer="A", reclaim_idle=FOREVER) -> list:
    return await store.read(BACKEND, consumer, 100, 0.05, reclaim_idle)


def events_of(entries) -> list[int]:
    return [e["n"] for entry in entries for e in entry.events]


async def eventually(check, timeout=5.0):
    """Poll an async check until it returns a truthy value; time-based store features
    (TTL, idle, windows) are waited for, never slept for a fixed time."""
    deadline = time.monotonic() + timeout
    while not (result := await check()):
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)
    return result


async def test_accept_tells_new_from_duplicate_and_queues_only_new(store):
    assert await accept(store, 1, 2) == [True, True]
    assert await accept(store, 2, 3, 1) == [False, True, False]
    assert await store.depth(BACKEND) == 3
    assert events_of(await drain(store)) == [1, 2, 3]


async def test_a_claim_repeated_within_one_accept_is_new_once(store):
    assert await accept(store, 1, 1, 2) == [True, False, True]
    assert events_of(await drain(store)) == [1, 2]


async def test_one_event_routed_to_several_backends_is_queued_to_each(store):
    assert await accept(store, 1, backends=("x", "y")) == [True]
    for name in ("x", "y"):
        assert [e["n"] for entry in await store.read(name, "A", 10, 0.05, FOREVER) for e in entry.events] == [1]


async def test_each_backend_gets_exactly_its_new_events_of_a_batch(store):
    """Events routed to different backends, a duplicate among them, texts full of JSON's
    own separators and of multi-byte characters (the Redis script cuts the request's
    array by byte lengths): each backend's queue gets its new events, whole and in order."""
    texts = {n: f'n{n}: [1, 2], {{"a": "b,c"}} ] é 日本語 🙂' * n for n in (1, 2, 3, 4)}
    events = [{"n": n, "text": texts[n]} for n in (1, 2, 3, 4)]
    assert await store.accept(["c2"], [events[1]], [["x"]], {}, 60) == [True]
    await store.ack("x", await store.read("x", "A", 10, 0.05, FOREVER))
    new = await store.accept(["c1", "c2", "c3", "c4"], events, [["x"], ["x", "y"], ["y"], ["x", "y"]], {}, 60)
    assert new == [True, False, True, True]
    for name, wanted in (("x", [1, 4]), ("y", [3, 4])):
        got = [e for entry in await store.read(name, "A", 10, 0.05, FOREVER) for e in entry.events]
        assert got == [{"n": n, "text": texts[n]} for n in wanted]
        assert await store.depth(name) == 2


async def test_memory_store_keeps_a_bounded_number_of_claims():
    """The in-process store forgets its oldest claims past ``max_claims``, so its memory
    stays bounded however long the dedupe window."""
    from gateway.store.memory import MemoryStore
    store = MemoryStore(max_claims=3)
    assert await accept(store, 1, 2, 3) == [True, True, True]
    assert await accept(store, 3, 4) == [False, True], "the last three are still claimed"
    assert await accept(store, 5) == [True]
    assert len(store._claims) <= 3 + 1
    assert await accept(store, 1, 5) == [True, False], "the oldest claim was forgotten, the newest kept"


async def test_memory_store_bounds_a_queue_in_bytes_and_reads_a_few_megabytes_at_a_time(monkeypatch):
    """Past ``max_queue_bytes`` of events (their JSON size) a backend's queue refuses (claiming
    nothing) until entries are acknowledged; one entry is always let into an empty queue."""
    from gateway.store import memory
    store = memory.MemoryStore(max_queue_bytes=4096)

    async def put(n: int, size: int = 1500) -> list[bool]:
        return await store.accept([f"c{n}"], [{"n": n, "text": "x" * size}], [[BACKEND]], {}, 60)

    assert [await put(1), await put(2)] == [[True], [True]]
    with pytest.raises(Backpressure):
        await put(3)
    first = await store.read(BACKEND, "A", 1, 0.05, None)
    await store.ack(BACKEND, first)
    assert await put(3) == [True], "the refused event was not claimed, and there is room again"
    await store.ack(BACKEND, await drain(store))
    assert await put(4, size=10_000) == [True], "an empty queue takes one entry of any size"

    monkeypatch.setattr(memory, "READ_BYTES", 3000)
    store = memory.MemoryStore()
    for n in range(5, 9):
        await store.accept([f"c{n}"], [{"n": n, "text": "y" * 1000}], [[BACKEND]], {}, 60)
    sizes = [len(entries) for entries in [await store.read(BACKEND, "A", 100, 0.05, None) for _ in range(3)]]
    assert sizes == [3, 1, 0], "a read stops once it holds READ_BYTES"

    store = memory.MemoryStore(max_queue_bytes=4400)
    for n in range(9, 13):
        await store.accept([f"c{n}"], [{"n": n, "text": "z" * 1000}], [[BACKEND]], {}, 60)
    sizes = [len(entries) for entries in [await store.read(BACKEND, "A", 100, 0.05, None) for _ in range(3)]]
    assert sizes == [3, 1, 0], "nor does a read take more than half the queue's bound"


async def test_memory_store_counts_an_event_as_its_share_of_the_request_body():
    """Given the body's size, each event counts as its share of it, not as its JSON (which
    would cost an encoding per event): 3,000 bytes for two events fill a 4,096-byte queue
    as 1,500 each, however small the events are as JSON."""
    from gateway.store import memory
    store = memory.MemoryStore(max_queue_bytes=4096)
    small = [{"n": 1}, {"n": 2}]
    assert await store.accept(["c1", "c2"], small, [[BACKEND], [BACKEND]], {}, 60, wire_bytes=3000) == [True, True]
    (entry,) = await store.read(BACKEND, "A", 10, 0.05, None)
    assert entry.size == 3000
    with pytest.raises(Backpressure):
        await store.accept(["c3", "c4"], [{"n": 3}, {"n": 4}], [[BACKEND], [BACKEND]], {}, 60, wire_bytes=3000)
    assert await store.accept(["c5"], [{"n": 5}], [[BACKEND]], {}, 60) == [True], "without it, the JSON size (9 bytes)"


async def test_each_backend_reads_the_events_as_they_were_queued(store):
    """Both stores; the memory store hands its backends the same objects, which is sound
    because nothing after the store changes an event (tests/test_shared_events.py)."""
    event = {"id": "e1", "n": 1, "nested": {"k": "v"}}
    assert await store.accept(["c1"], [event], [[BACKEND, "other"]], {}, 60) == [True]
    (mine,) = await store.read(BACKEND, "A", 10, 0.05, None)
    (theirs,) = await store.read("other", "A", 10, 0.05, None)
    assert mine.events == theirs.events == [{"id": "e1", "n": 1, "nested": {"k": "v"}}]


async def test_claims_expire_after_the_ttl(store):
    assert await accept(store, 1, ttl=1) == [True]
    assert await accept(store, 1, ttl=1) == [False]

    async def new_again():
        return await accept(store, 1, ttl=1) == [True]

    await eventually(new_again)
    assert await store.depth(BACKEND) == 2


async def test_backpressure_raises_and_claims_nothing(store):
    assert await accept(store, 1, 2, bound=3) == [True, True]
    with pytest.raises(Backpressure) as raised:
        await accept(store, 3, 4, bound=3)
    assert raised.value.backend == BACKEND
    assert await store.depth(BACKEND) == 2
    await store.ack(BACKEND, await drain(store))
    assert await accept(store, 3, 4, bound=3) == [True, True], "the refused events were not claimed"


async def test_concurrent_accepts_each_get_their_own_answer(store):
    """Requests handled together (the Redis store sends their accepts in one round trip)
    still claim, queue and refuse one by one, in the order they came."""
    answers = await asyncio.gather(accept(store, 1, 2), accept(store, 2, 3), accept(store, 1, 4),
                                   accept(store, 5, 6, 7, bound=6), accept(store, 8), return_exceptions=True)
    assert answers[:3] == [[True, True], [False, True], [False, True]]
    assert isinstance(answers[3], Backpressure), "4 queued + 3 > 6: this request alone is refused"
    assert answers[4] == [True]
    assert sorted(events_of(await drain(store))) == [1, 2, 3, 4, 8]


async def test_read_then_ack_empties_the_queue(store):
    await accept(store, 1, 2)
    await accept(store, 3)
    entries = await drain(store)
    assert events_of(entries) == [1, 2, 3]
    assert await store.oldest_age(BACKEND) >= 0
    assert await store.depth(BACKEND) == 3, "read but unacknowledged entries still count"
    await store.ack(BACKEND, entries)
    assert await store.depth(BACKEND) == 0
    assert await store.oldest_age(BACKEND) == 0
    assert await drain(store, reclaim_idle=0.0) == []


async def test_an_ack_counts_only_the_entries_still_pending(store):
    await accept(store, 1)
    await accept(store, 2, 3)
    first, second = await drain(store)
    await store.ack(BACKEND, [first])
    assert await store.depth(BACKEND) == 2
    await store.ack(BACKEND, [first, second])
    assert await store.depth(BACKEND) == 0, "the entry acknowledged before counts once"
    assert await drain(store, reclaim_idle=0.0) == []


async def test_a_consumer_reclaims_entries_it_abandoned(store):
    """A forwarder that dropped a batch (read ahead, then its lease was lost) gets it back
    once idle, as XAUTOCLAIM gives any consumer, itself included."""
    await accept(store, 1, 2)
    assert events_of(await drain(store, "A")) == [1, 2]
    assert await drain(store, "A") == [], "pending, not idle long enough yet"
    assert events_of(await eventually(lambda: drain(store, "A", reclaim_idle=0.1))) == [1, 2]


async def test_read_waits_for_new_entries(store):
    reader = asyncio.create_task(store.read(BACKEND, "A", 10, 5.0, FOREVER))
    await asyncio.sleep(0.05)
    await accept(store, 1)
    assert events_of(await asyncio.wait_for(reader, 5)) == [1]


async def test_unacknowledged_entries_are_reclaimed_by_another_consumer_after_idle(store):
    await accept(store, 1, 2)
    taken = await drain(store, "A")
    assert events_of(taken) == [1, 2]
    assert await drain(store, "B") == [], "not idle long enough yet"
    reclaimed = await eventually(lambda: drain(store, "B", reclaim_idle=0.1))
    assert events_of(reclaimed) == [1, 2]
    assert all(entry.attempts >= 1 for entry in reclaimed)
    await store.ack(BACKEND, reclaimed)
    await store.ack(BACKEND, taken)
    assert await store.depth(BACKEND) == 0, "an entry acknowledged by both consumers counts once"
    assert await drain(store, "C", reclaim_idle=0.0) == []


async def test_dead_letters_list_replay_and_drop(store):
    for n in (1, 2, 3):
        await store.dead_letter(BACKEND, ev(n), f"reason {n}", "HTTP 400: no", attempts=n)
    letters = await store.dead_letters(BACKEND)
    assert [(d.event["n"], d.reason, d.answer, d.attempts) for d in letters] == [
        (1, "reason 1", "HTTP 400: no", 1), (2, "reason 2", "HTTP 400: no", 2), (3, "reason 3", "HTTP 400: no", 3)]
    assert await store.dead_count(BACKEND) == 3
    assert await store.drop_dead(BACKEND, [letters[0].id, "0-1"]) == 1
    assert await store.replay_dead(BACKEND, [letters[1].id]) == 1
    assert [d.event["n"] for d in await store.dead_letters(BACKEND)] == [3]
    assert await store.depth(BACKEND) == 1
    assert await store.replay_dead(BACKEND, None) == 1
    assert await store.dead_count(BACKEND) == 0
    assert events_of(await drain(store)) == [2, 3]
    assert await store.drop_dead(BACKEND, None) == 0


async def test_run_state_and_deadlines(store):
    await store.runs_put(BACKEND, {"r1": {"v": 1}, "r2": {"v": 2}}, deadline=100.0)
    await store.runs_put(BACKEND, {"r1": {"v": 10}}, deadline=500.0)
    assert await store.runs_get(BACKEND, ["r1", "r2", "missing"]) == {"r1": {"v": 10}, "r2": {"v": 2}}
    assert await store.runs_get(BACKEND, []) == {}
    assert await store.runs_due(BACKEND, 50.0, 10) == []
    assert sorted(await store.runs_due(BACKEND, 200.0, 10)) == ["r1", "r2"], "an update keeps the first deadline"
    assert len(await store.runs_due(BACKEND, 200.0, 1)) == 1
    await store.runs_delete(BACKEND, ["r1"])
    assert await store.runs_get(BACKEND, ["r1", "r2"]) == {"r2": {"v": 2}}
    assert await store.runs_due(BACKEND, 200.0, 10) == ["r2"]


async def test_entities(store):
    assert await store.entity_get("person", "t:p1") is None
    await store.entity_put("person", "t:p1", {"name": "Ada"})
    await store.entity_put("person", "t:p1", {"name": "Ada L."})
    assert await store.entity_get("person", "t:p1") == {"name": "Ada L."}
    assert await store.entity_get("agent", "t:p1") is None


async def test_lease_is_exclusive_until_released_or_expired(store):
    assert await store.lease(BACKEND, "A", FOREVER)
    assert not await store.lease(BACKEND, "B", FOREVER)
    assert await store.lease(BACKEND, "A", FOREVER), "the holder renews"
    await store.release(BACKEND, "B")
    assert not await store.lease(BACKEND, "B", FOREVER), "only the holder releases"
    await store.release(BACKEND, "A")
    assert await store.lease(BACKEND, "B", 0.2)
    assert not await store.lease(BACKEND, "A", 0.2)
    await eventually(lambda: store.lease(BACKEND, "A", FOREVER))
    assert not await store.lease(BACKEND, "B", FOREVER)


async def test_hit_counts_per_window(store):
    assert await store.hit("t", 2, 60) == 2
    assert await store.hit("t", 3, 60) == 5
    assert await store.hit("u", 1, 60) == 1

    async def new_window():
        return await store.hit("v", 1, 0.3) == 1

    assert await store.hit("v", 1, 0.3) >= 1
    await eventually(new_window)


# Redis only: what survives the server itself going away ---------------------------


async def test_queued_and_pending_entries_survive_a_redis_crash_with_appendonly(start_redis):
    server = start_redis(appendonly=True)
    before = RedisStore(server.url)
    await before.dead_letter(BACKEND, ev(9), "refused", "", 1)
    assert await accept(before, 1, 2) == [True, True]
    assert events_of(await drain(before, "A")) == [1, 2]
    assert await accept(before, 3) == [True]
    await before.close()
    server.kill()
    server.start()
    after = RedisStore(server.url)
    try:
        assert await accept(after, 1, 3) == [False, False], "claims survived"
        assert events_of(await drain(after, "B", reclaim_idle=0.0)) == [1, 2, 3], "re-claimed, then new"
        assert await after.dead_count(BACKEND) == 1
    finally:
        await after.close()


async def test_accepting_recovers_when_redis_lost_its_scripts(redis_url):
    store = RedisStore(redis_url)
    try:
        assert await accept(store, 1) == [True]
        await store.redis.script_flush()
        assert await asyncio.gather(accept(store, 1, 2), accept(store, 3)) == [[False, True], [True]]
        assert events_of(await drain(store)) == [1, 2, 3]
    finally:
        await store.close()


async def test_accepts_fail_together_while_redis_is_away_and_work_once_it_is_back(start_redis):
    server = start_redis(appendonly=True)
    store = RedisStore(server.url)
    try:
        assert await accept(store, 1) == [True]
        server.kill()
        answers = await asyncio.gather(accept(store, 2), accept(store, 3), return_exceptions=True)
        assert all(isinstance(a, Exception) and not isinstance(a, Backpressure) for a in answers), answers
        server.start()
        assert await eventually(lambda: _accepted(store, 2)) == [True]
    finally:
        await store.close()


async def _accepted(store, n):
    try:
        return await accept(store, n)
    except Exception:
        return None


async def test_a_redis_store_reads_back_what_it_queued_as_the_objects_it_was_given(redis_url):
    """Entries this process queued are read back as the same objects, each backend exactly
    its new events; they equal Redis's own copy, which another replica would decode."""
    store = RedisStore(redis_url)
    try:
        first = [ev(1)]
        await store.accept(["c1"], first, [[BACKEND]], {}, 60)
        batch = [ev(1), ev(2), ev(3)]
        assert await store.accept(["c1", "c2", "c3"], batch, [[BACKEND], [BACKEND, "c"], [BACKEND]], {}, 60) == [
            False, True, True]
        mine = [e for entry in await drain(store) for e in entry.events]
        assert len(mine) == 3 and mine[0] is first[0] and mine[1] is batch[1] and mine[2] is batch[2]
        theirs = [e for _, fields in await store.redis.xrange(keys.queue(BACKEND)) for e in orjson.loads(fields[b"e"])]
        assert theirs == mine
        only = await store.read("c", "A", 10, 0.05, None)
        assert [e for entry in only for e in entry.events] == [batch[1]] and only[0].events[0] is batch[1]
    finally:
        await store.close()


async def test_an_entry_read_before_its_accept_is_answered_is_still_the_objects_given(redis_url, monkeypatch):
    """The forwarder's read answers on its own connection, so it can return an entry whose
    accept's answer this process has not handled yet. Such an entry is still read as the
    objects ingress built, and nothing is kept for it once the answer comes."""
    store = RedisStore(redis_url)
    execute = store._channel.execute

    async def answered_late(commands):
        answers = await execute(commands)
        await asyncio.sleep(0.3)
        return answers

    monkeypatch.setattr(store._channel, "execute", answered_late)
    store.keep_json(BACKEND, True)
    try:
        batch = [ev(1), ev(2)]
        accepting = asyncio.ensure_future(store.accept(["c1", "c2"], batch, [[BACKEND], [BACKEND]], {}, 60))
        entries = await store.read(BACKEND, "A", 10, 1.0, None)
        assert not accepting.done(), "the read came back before the accept's answer"
        assert len(entries) == 1 and entries[0].events[0] is batch[0] and entries[0].events[1] is batch[1]
        assert entries[0].encoded == [orjson.dumps(e) for e in batch], "with the JSON made of them"
        assert await accepting == [True, True]
        assert not store._written.entries, "an entry already read is not held for a later read"
    finally:
        await store.close()


async def test_redis_drops_expired_claims_a_bounded_number_per_accept(redis_url):
    """Claims are members of one sorted set scored by expiry: each accept drops at most
    1,000 (plus its own count) of the expired ones, oldest first, and a claim expired but
    not yet dropped is new again."""
    store = RedisStore(redis_url)
    seen = keys.SEEN
    try:
        past = int(time.time() * 1000) - 60_000
        await store.redis.zadd(seen, {f"old{n}": past + n for n in range(1500)} | {"c1": past + 1500})
        assert await accept(store, 1) == [True]
        assert await store.redis.zcard(seen) == 1501 - 1001
        assert await store.redis.zscore(seen, "c1") > time.time() * 1000 + 50_000
        assert await accept(store, 1, 2) == [False, True]
        assert sorted(await store.redis.zrange(seen, 0, -1)) == [b"c1", b"c2"]
    finally:
        await store.close()


async def test_a_redis_store_remembers_what_it_queued_within_a_bound(redis_url):
    store = RedisStore(redis_url)
    store._written = _Written(limit=600)
    store.keep_json(BACKEND, True)
    try:
        events = [{**ev(n), "text": "x" * 200} for n in range(5)]
        for n, event in enumerate(events):
            await store.accept([f"c{n}"], [event], [[BACKEND]], {}, 60)
            assert store._written.bytes <= 600
        entries = await drain(store)
        read = [e for entry in entries for e in entry.events]
        assert read == events
        assert [a is b for a, b in zip(read, events)] == [False, False, False, True, True]
        assert [entry.encoded for entry in entries] == [None] * 3 + [[orjson.dumps(e)] for e in events[3:]]
        assert store._written.bytes == 0, "what was read is forgotten"
    finally:
        await store.close()


async def test_only_a_backend_that_keeps_json_reads_it_back(redis_url):
    """The JSON made of each event for Redis comes back with an entry only for a backend
    that asked for it (an archive that writes events as they stand); held for any other,
    it would sit in memory for nothing, and longest while that backend is down."""
    store = RedisStore(redis_url)
    store.keep_json("archive", True)
    try:
        batch = [ev(1), ev(2)]
        await store.accept(["c1", "c2"], batch, [["archive", BACKEND]] * 2, {}, 60)
        [kept] = await store.read("archive", "A", 10, 0.05, None)
        [plain] = await store.read(BACKEND, "A", 10, 0.05, None)
        assert kept.encoded == [orjson.dumps(e) for e in batch] and kept.events[0] is batch[0]
        assert plain.encoded is None and plain.events[0] is batch[0]
        store.keep_json("archive", False)
        await store.accept(["c3"], [ev(3)], [["archive"]], {}, 60)
        [later] = await store.read("archive", "A", 10, 0.05, None)
        assert later.encoded is None
    finally:
        await store.close()


def test_a_forwarder_asks_for_the_stores_json_only_when_it_writes_events_as_they_stand(redis_url, tmp_path):
    store = RedisStore(redis_url)
    archive = {"path": str(tmp_path / "events.jsonl")}
    redacted = {**archive, "redact": {"fields": ["metadata.a"]}}
    for name, dialect, extra in (("plain", "jsonl", archive), ("redacted", "jsonl", redacted),
                                 ("vendor", "lunary", {"url": "http://127.0.0.1:1", "api_key": "k"})):
        Forwarder(Backend(name=name, dialect=dialect, **extra), store, None)
    assert store._json_for == {"plain"}


async def test_the_accept_channel_hands_each_caller_its_own_answers(redis_url):
    """Many callers share the channel's one connection: each gets the answers to its own
    commands, in order, and a command Redis refuses fails alone."""
    client = redis.Redis.from_url(redis_url)
    channel = Channel(client)
    try:
        def commands(i: int) -> list[tuple]:
            return [("ECHO", f"{i}-a"), ("NO-SUCH-COMMAND",) if i % 7 == 0 else ("ECHO", f"{i}-b"), ("ECHO", i * 1000 * "x")]

        answers = await asyncio.gather(*(channel.execute(commands(i)) for i in range(60)))
        for i, (first, second, third) in enumerate(answers):
            assert first == f"{i}-a".encode() and third == i * 1000 * b"x"
            assert isinstance(second, ResponseError) if i % 7 == 0 else second == f"{i}-b".encode()
    finally:
        await channel.close()
        await client.aclose()


async def test_the_accept_channel_connects_again_after_redis_dropped_it(redis_url):
    client = redis.Redis.from_url(redis_url)
    channel = Channel(client)
    try:
        assert await channel.execute([("CLIENT", "SETNAME", "rosetta-channel")]) == [b"OK"]
        assert await client.client_kill_filter(_type="normal", skipme=True) >= 1

        async def answered():
            """The answer from a working connection; None while the killed one is in use
            (the command fails, raised or as its answer, by when the reader saw the kill)."""
            try:
                answers = await channel.execute([("CLIENT", "GETNAME")])
            except (ConnectionError, RedisConnectionError):
                return None
            return None if isinstance(answers[0], BaseException) else answers

        assert await eventually(answered) == [None], "a new connection, without the old one's name"
    finally:
        await channel.close()
        await client.aclose()


async def test_reading_recovers_when_redis_lost_the_consumer_group(redis_server, redis_url):
    store = RedisStore(redis_url)
    try:
        await accept(store, 1)
        await store.ack(BACKEND, await drain(store))
        redis_server.flushall()
        await accept(store, 2)
        assert events_of(await drain(store)) == [2]
    finally:
        await store.close()
