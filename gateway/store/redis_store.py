"""The Redis store: atomic claims and queueing in one script call per request,
Redis Streams with a consumer group per backend, dead-letter streams, run state in
hashes. Several Rosetta instances share one Redis.

Keys are built inside the Lua script from the prefix in `keys`, so this targets a
single Redis (or a replica set), not Redis Cluster.
"""
import asyncio
import time
from collections import OrderedDict

import orjson
import redis.asyncio as redis
from redis.exceptions import NoScriptError, ResponseError

from . import keys
from .base import Backpressure, DeadLetter, Entry, Store
from .channel import Channel, settle

# Claims live in one sorted set, each scored with when it expires (milliseconds, by Redis's
# clock): a request's claims cost one lookup and one insert whatever their number (a key
# per claim cost a command each, most of the script's time), and each request first
# drops the claims that expired since, a bounded number at a time.
# ARGV: ttl; the claims, space-separated; the events as one JSON array; each event's byte
# length, comma-separated; the number of backends; then per backend: name, bound, and the
# 1-based indexes of its events, comma-separated, or "*" for all of them. Few arguments,
# whatever the batch: the client encodes each one separately, at a cost per argument.
# The common case (every event new, every backend wanting all) queues the array as sent.
# Answers {new flags, the entry id queued per backend or ''}, or {-1, backend} when full.
_ACCEPT = """
local ttl = tonumber(ARGV[1]); local blob = ARGV[3]; local nb = tonumber(ARGV[5])
local prefix = '""" + keys.PREFIX + """'
local claims, first, last = {}, {}, {}
for claim in string.gmatch(ARGV[2], '%S+') do claims[#claims + 1] = claim end
local n = #claims
local at = 2
for size in string.gmatch(ARGV[4], '%d+') do
  first[#first + 1] = at; last[#last + 1] = at + tonumber(size) - 1; at = at + tonumber(size) + 1
end
local targets = {}
for b = 1, nb do
  local name = ARGV[4 + 3 * b - 1]; local bound = tonumber(ARGV[4 + 3 * b]); local spec = ARGV[4 + 3 * b + 1]
  local idx = {}
  if spec == '*' then
    for i = 1, n do idx[i] = i end
  else
    for i in string.gmatch(spec, '%d+') do idx[#idx + 1] = tonumber(i) end
  end
  local d = tonumber(redis.call('GET', prefix .. 'depth:' .. name) or '0')
  if d + #idx > bound then return {-1, name} end
  targets[b] = {name, idx, spec == '*'}
end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local seen = '""" + keys.SEEN + """'
local expired = redis.call('ZCOUNT', seen, '-inf', now)
if expired > 0 then redis.call('ZREMRANGEBYRANK', seen, 0, math.min(expired, 1000 + n) - 1) end
local new, fresh, add, mine = {}, 0, {}, {}
for from = 1, n, 1000 do
  local to = math.min(from + 999, n)
  local scores = redis.call('ZMSCORE', seen, unpack(claims, from, to))
  for i = from, to do
    local score, claim = scores[i - from + 1], claims[i]
    if mine[claim] or (score and tonumber(score) > now) then
      new[i] = 0
    else
      new[i] = 1; fresh = fresh + 1; mine[claim] = true
      add[#add + 1] = now + ttl * 1000; add[#add + 1] = claim
    end
  end
end
for from = 1, #add, 1000 do redis.call('ZADD', seen, unpack(add, from, math.min(from + 999, #add))) end
local ids = {}
for b = 1, nb do
  local name, idx = targets[b][1], targets[b][2]
  local payload, count = blob, n
  if not (targets[b][3] and fresh == n) then
    local parts = {}
    for _, i in ipairs(idx) do
      if new[i] == 1 then parts[#parts + 1] = string.sub(blob, first[i], last[i]) end
    end
    payload, count = '[' .. table.concat(parts, ',') .. ']', #parts
  end
  ids[b] = ''
  if count > 0 then
    ids[b] = redis.call('XADD', prefix .. 'q:' .. name, '*', 'e', payload)
    redis.call('INCRBY', prefix .. 'depth:' .. name, count)
  end
end
return {new, ids}
"""

# KEYS: lease; ARGV: owner, ttl ms
_LEASE = """
local cur = redis.call('GET', KEYS[1])
if cur == false or cur == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""

# KEYS: stream, depth; ARGV: group, then (entry id, event count) pairs. Only entries
# still pending count, so an entry acknowledged twice (a re-claim race) is counted once.
# Entries are acknowledged and deleted together, a thousand per command; when fewer were
# pending than given (the race), each is deleted alone: an entry still in the stream is
# one this call acknowledged (every acknowledgement deletes its entry, here, atomically).
_ACK = """
local ids, counts = {}, {}
for i = 2, #ARGV, 2 do ids[#ids + 1] = ARGV[i]; counts[#counts + 1] = tonumber(ARGV[i + 1]) end
local done = 0
for from = 1, #ids, 1000 do
  local to = math.min(from + 999, #ids)
  if redis.call('XACK', KEYS[1], ARGV[1], unpack(ids, from, to)) == to - from + 1 then
    redis.call('XDEL', KEYS[1], unpack(ids, from, to))
    for i = from, to do done = done + counts[i] end
  else
    for i = from, to do
      if redis.call('XDEL', KEYS[1], ids[i]) == 1 then done = done + counts[i] end
    end
  end
end
if done > 0 then redis.call('DECRBY', KEYS[2], done) end
return done
"""


WRITTEN_BYTES = 2 * 1024 * 1024


class _Written:
    """The events this process queued lately, by (backend, entry id), bounded in bytes
    (their JSON size), oldest forgotten first. A forwarder here reads them back as the
    objects ingress built (with the JSON made of each for Redis, for a backend that keeps
    it: `keep_json`) instead of decoding Redis's copy of the same events (decoding took a
    tenth of the gateway's time); another replica, or a read after they were forgotten,
    decodes as before."""

    def __init__(self, limit: int = WRITTEN_BYTES):
        self.limit = limit
        self.bytes = 0
        self.entries: OrderedDict[tuple[str, str], tuple[list[dict], list[bytes] | None, int]] = OrderedDict()

    def put(self, key: tuple[str, str], events: list[dict], encoded: list[bytes] | None, size: int) -> None:
        self.entries[key] = (events, encoded, size)
        self.bytes += size
        while self.bytes > self.limit:
            self.bytes -= self.entries.popitem(last=False)[1][2]

    def take(self, key: tuple[str, str]) -> tuple[list[dict], list[bytes] | None] | None:
        held = self.entries.pop(key, None)
        if held is None:
            return None
        self.bytes -= held[2]
        return held[0], held[1]


class _Unanswered:
    """An accept sent and not answered yet. Its entries can be read before its answer
    arrives (the read's answer comes on another connection): a third of them were at full
    Lunary load, and each was decoded and then held in `_Written` for nothing. An entry
    read then that is the request's whole array as sent (every event new, the backend
    wanting them all: the common case) is known by its bytes."""

    __slots__ = ("blob", "events", "parts", "whole", "read")

    def __init__(self, blob: bytes, events: list[dict], parts: list[bytes], whole: set[str]):
        self.blob, self.events, self.parts, self.whole = blob, events, parts, whole
        self.read: set[str] = set()  # backends whose entry was read before the answer


class RedisStore(Store):
    def __init__(self, url: str):
        super().__init__()
        self.url = url
        self.redis = redis.Redis.from_url(url, decode_responses=False, health_check_interval=10)
        self._accept = self.redis.register_script(_ACCEPT)
        self._lease = self.redis.register_script(_LEASE)
        self._ack = self.redis.register_script(_ACK)
        self._channel = Channel(self.redis)
        self._written = _Written()
        self._groups: set[str] = set()
        self._waiting: list[tuple[list, asyncio.Future]] = []  # accepts for the next round trip
        self._sending: set[asyncio.Task] = set()
        self._unanswered: set[_Unanswered] = set()
        self._json_for: set[str] = set()  # the backends whose entries carry their events' JSON

    async def close(self):
        await self._channel.close()
        await self.redis.aclose()

    async def ping(self):
        try:
            return bool(await self.redis.ping())
        except Exception:
            return False

    async def accept(self, claims, events, routes, bounds, ttl, wire_bytes=0):
        n = len(claims)
        by_backend: dict[str, list[int]] = {}
        for index, targets in enumerate(routes, start=1):
            for backend in targets:
                by_backend.setdefault(backend, []).append(index)
        parts = [orjson.dumps(e) for e in events]
        blob = b"[" + b",".join(parts) + b"]"
        args: list = [ttl, " ".join(claims), blob, ",".join([str(len(p)) for p in parts]), len(by_backend)]
        whole: set[str] = set()  # the backends that want every event of the request
        for backend, indexes in by_backend.items():
            if len(indexes) == n:
                whole.add(backend)
            args.extend((backend, bounds.get(backend, 1 << 50), "*" if backend in whole else ",".join(map(str, indexes))))
            # counted as queued before the script runs: a forwarder here may read them before its answer comes
            self.gathering.queued(backend, len(indexes), sum(len(parts[i - 1]) for i in indexes))
        future = asyncio.get_running_loop().create_future()
        self._waiting.append((args, future))
        if len(self._waiting) == 1:
            asyncio.get_running_loop().call_soon(self._flush)
        sent = _Unanswered(blob, events, parts, whole)
        self._unanswered.add(sent)
        try:
            result = await future
        except BaseException:
            self._not_queued(by_backend, parts, None)
            raise
        finally:
            self._unanswered.discard(sent)
        if result[0] == -1:
            self._not_queued(by_backend, parts, None)
            raise Backpressure(result[1].decode())
        flags, ids = result
        if not all(flags):
            self._not_queued(by_backend, parts, flags)
        for (backend, indexes), entry_id in zip(by_backend.items(), ids):
            if entry_id and backend not in sent.read:
                queued = [i - 1 for i in indexes if flags[i - 1]]
                self._written.put((backend, entry_id.decode()), [events[i] for i in queued],
                                  [parts[i] for i in queued] if backend in self._json_for else None,
                                  sum(len(parts[i]) for i in queued))
        return [bool(flag) for flag in flags]

    def _not_queued(self, by_backend: dict[str, list[int]], parts: list[bytes], flags: list | None) -> None:
        """Take back from `gathering` what was counted but not queued: the duplicates, or all on a failure."""
        for backend, indexes in by_backend.items():
            missing = [i - 1 for i in indexes if flags is None or not flags[i - 1]]
            self.gathering.taken(backend, len(missing), sum(len(parts[i]) for i in missing))

    def _flush(self) -> None:
        """The accepts of requests handled in one turn of the event loop share one round
        trip (script calls written together, each still atomic on its own)."""
        batch, self._waiting = self._waiting, []
        task = asyncio.ensure_future(self._send(batch))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[tuple[list, asyncio.Future]]) -> None:
        try:
            results = await self._channel.execute([("EVALSHA", self._accept.sha, 0, *args) for args, _ in batch])
        except Exception as exc:  # no connection: no answer for anyone
            results = [exc] * len(batch)
        for (args, future), result in zip(batch, results):
            if isinstance(result, NoScriptError):  # Redis restarted or was flushed: load it again
                try:
                    result = await self._accept(args=args)
                except Exception as exc:
                    result = exc
            settle(future, result)

    async def _ensure_group(self, backend: str) -> None:
        if backend in self._groups:
            return
        try:
            await self.redis.xgroup_create(keys.queue(backend), keys.GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._groups.add(backend)

    def keep_json(self, backend, keep):
        (self._json_for.add if keep else self._json_for.discard)(backend)

    async def read(self, backend, consumer, count, block, reclaim_idle):
        try:
            return await self._read(backend, consumer, count, block, reclaim_idle)
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            self._groups.discard(backend)  # Redis lost the group (restarted without persistence)
            return await self._read(backend, consumer, count, block, reclaim_idle)

    async def _read(self, backend, consumer, count, block, reclaim_idle):
        await self._ensure_group(backend)
        stream = keys.queue(backend)
        # Redis 6.2 answers [next, entries]; 7+ adds the ids of deleted entries
        claimed = [] if reclaim_idle is None else (await self.redis.xautoclaim(
            stream, keys.GROUP, consumer, int(reclaim_idle * 1000), start_id="0-0", count=count))[1]
        out = [self._entry(backend, i, f) for i, f in claimed if f]
        for entry in out:
            entry.attempts = 1
        if len(out) >= count:
            return out
        reply = await self.redis.xreadgroup(keys.GROUP, consumer, {stream: ">"}, count=count - len(out),
                                            block=None if out else max(1, int(block * 1000)))
        new = [self._entry(backend, i, f) for _, items in reply or [] for i, f in items]
        self.gathering.taken(backend, sum(len(entry.events) for entry in new), sum(entry.size for entry in new))
        return out + new

    def _entry(self, backend: str, entry_id: bytes | str, fields: dict) -> Entry:
        entry_id, blob = entry_id.decode() if isinstance(entry_id, bytes) else entry_id, fields[b"e"]
        held = self._written.take((backend, entry_id))
        if held is None:
            held = self._read_early(backend, blob)
        if held is None:
            return Entry(entry_id, orjson.loads(blob), size=len(blob))
        return Entry(entry_id, held[0], size=len(blob), encoded=held[1])

    def _read_early(self, backend: str, blob: bytes) -> tuple[list[dict], list[bytes] | None] | None:
        for sent in self._unanswered:
            if backend in sent.whole and backend not in sent.read and sent.blob == blob:
                sent.read.add(backend)
                return list(sent.events), list(sent.parts) if backend in self._json_for else None
        return None

    async def ack(self, backend, entries):
        if not entries:
            return
        args: list = [keys.GROUP]
        for entry in entries:
            args.extend((entry.id, len(entry.events)))
        await self._ack(keys=[keys.queue(backend), keys.depth(backend)], args=args)

    async def depth(self, backend):
        return int(await self.redis.get(keys.depth(backend)) or 0)

    async def oldest_age(self, backend):
        first = await self.redis.xrange(keys.queue(backend), count=1)
        if not first:
            return 0.0
        millis = int(first[0][0].split(b"-")[0])
        return max(0.0, time.time() - millis / 1000)

    async def lease(self, backend, owner, ttl):
        return bool(await self._lease(keys=[keys.lease(backend)], args=[owner, int(ttl * 1000)]))

    async def release(self, backend, owner):
        key = keys.lease(backend)
        if await self.redis.get(key) == owner.encode():
            await self.redis.delete(key)

    async def dead_letter(self, backend, event, reason, answer, attempts):
        await self.redis.xadd(keys.dead(backend), {
            "event": orjson.dumps(event), "reason": reason, "answer": answer[:4000],
            "attempts": attempts, "at": time.time(),
        })

    @staticmethod
    def _letter(entry_id, fields) -> DeadLetter:
        return DeadLetter(entry_id.decode(), orjson.loads(fields[b"event"]), fields[b"reason"].decode(),
                          fields[b"answer"].decode(), int(fields[b"attempts"]), float(fields[b"at"]))

    async def dead_letters(self, backend, count=100):
        return [self._letter(i, f) for i, f in await self.redis.xrange(keys.dead(backend), count=count)]

    async def _select_dead(self, backend, ids):
        stream = keys.dead(backend)
        if ids is None:
            return await self.redis.xrange(stream)
        out = []
        for entry_id in ids:
            out.extend(await self.redis.xrange(stream, min=entry_id, max=entry_id))
        return out

    async def drop_dead(self, backend, ids):
        chosen = await self._select_dead(backend, ids)
        if chosen:
            await self.redis.xdel(keys.dead(backend), *[i for i, _ in chosen])
        return len(chosen)

    async def replay_dead(self, backend, ids):
        chosen = await self._select_dead(backend, ids)
        if not chosen:
            return 0
        payload = b"[" + b",".join(f[b"event"] for _, f in chosen) + b"]"
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xadd(keys.queue(backend), {"e": payload})
            pipe.incrby(keys.depth(backend), len(chosen))
            pipe.xdel(keys.dead(backend), *[i for i, _ in chosen])
            await pipe.execute()
        return len(chosen)

    async def dead_count(self, backend):
        return int(await self.redis.xlen(keys.dead(backend)))

    async def runs_get(self, backend, run_ids):
        if not run_ids:
            return {}
        values = await self.redis.hmget(keys.runs(backend), run_ids)
        return {r: orjson.loads(v) for r, v in zip(run_ids, values) if v is not None}

    async def runs_put(self, backend, runs, deadline):
        if not runs:
            return
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(keys.runs(backend), mapping={r: orjson.dumps(s) for r, s in runs.items()})
            pipe.zadd(keys.run_deadlines(backend), {r: deadline for r in runs}, nx=True)
            await pipe.execute()

    async def runs_delete(self, backend, run_ids):
        if not run_ids:
            return
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hdel(keys.runs(backend), *run_ids)
            pipe.zrem(keys.run_deadlines(backend), *run_ids)
            await pipe.execute()

    async def runs_due(self, backend, now, count):
        due = await self.redis.zrangebyscore(keys.run_deadlines(backend), "-inf", now, start=0, num=count)
        return [d.decode() for d in due]

    async def entity_get(self, kind, key):
        value = await self.redis.get(keys.entity(kind, key))
        return orjson.loads(value) if value is not None else None

    async def entity_put(self, kind, key, value):
        await self.redis.set(keys.entity(kind, key), orjson.dumps(value))

    async def hit(self, key, amount, window):
        slot = int(time.time() // window)
        name = keys.counter(key, slot)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.incrby(name, amount)
            pipe.expire(name, int(window * 2) + 1)
            total, _ = await pipe.execute()
        return int(total)
