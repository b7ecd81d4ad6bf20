"""Fault suite: real processes, bounded load, every event counted end to end.

    python -m tests.reliability.run [--soak-seconds N] [--only NAME] [--short]

Each scenario starts its own redis-server (appendonly, fsync always), two Lunary
simulators (``a`` takes the fault, ``b`` stays healthy) and a `rosetta serve` that fans
every event out to both, on 127.0.0.1. A loader posts Lunary batches at a steady rate
and, like llmonitor and honeyhive-logger, retries a batch until it gets a 200; an event
is *acked* when its per-event result says success. After the load the suite waits for
the queues to drain and counts, at each simulator, the events received (unique and
repeated) and the ones dead-lettered; *lost* is acked and neither delivered nor
dead-lettered. Exits non-zero if any row lost or duplicated an event, or the soak grew.
"""
import argparse
import asyncio
import signal
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import orjson
import psutil
import redis.asyncio as aioredis
import yaml

from gateway.store import keys
from tests.processes import Gateway, RedisServer, Simulator, free_port, until

BACKENDS = ("a", "b")
BACKEND_KEY = "c9625a97-ec9f-47ad-8e22-8cc32a66c2f6"
INGEST_KEY = "pk-reliability"
RETRY = {"initial_backoff": 0.1, "max_backoff": 2.0, "breaker_cooldown": 1.0}
BACKEND_TIMEOUT = 1.0
ALREADY_EXISTS = "already exists"


@dataclass
class Row:
    scenario: str
    sent: int = 0
    acked: int = 0
    delivered: dict = field(default_factory=dict)
    duplicates: dict = field(default_factory=dict)
    dead: dict = field(default_factory=dict)
    lost: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(self.lost.values()) or any(self.duplicates.values()) or any(n.startswith("FAIL") for n in self.notes)


class Loader:
    """Posts batches of Lunary runs (a start and an end each) and retries a batch until a 200."""

    def __init__(self, http: aiohttp.ClientSession, url: str, runs_per_batch: int = 5):
        self.http = http
        self.url = url
        self.runs = runs_per_batch
        self.sent: set = set()
        self.acked: set = set()
        self.failed_attempts = 0
        self.acked_at: list[tuple[float, int]] = []  # (when, events acked by that answer)

    def batch(self) -> list[dict]:
        events = []
        for n in range(self.runs):
            run_id = str(uuid.uuid4())
            events.append({"type": "llm", "event": "start", "runId": run_id, "name": "gpt-4o",
                           "timestamp": "2025-01-01T00:00:00.000Z",
                           "input": [{"role": "user", "content": f"question {n}"}]})
            events.append({"type": "llm", "event": "end", "runId": run_id, "timestamp": "2025-01-01T00:00:01.000Z",
                           "output": {"role": "assistant", "content": f"answer {n}"},
                           "tokensUsage": {"prompt": 3, "completion": 2}})
        return events

    async def post(self, events: list[dict], give_up: float = 120.0) -> None:
        self.sent |= {(e["runId"], e["event"]) for e in events}
        deadline = time.monotonic() + give_up
        while time.monotonic() < deadline:
            try:
                async with self.http.post(f"{self.url}/v1/runs/ingest", data=orjson.dumps({"events": events}),
                                          headers={"Authorization": f"Bearer {INGEST_KEY}",
                                                   "Content-Type": "application/json"},
                                          timeout=aiohttp.ClientTimeout(total=10)) as response:
                    body = await response.read()
                    if response.status == 200:
                        acked = {(event["runId"], event["event"])
                                 for event, result in zip(events, orjson.loads(body)["results"]) if result.get("success")}
                        self.acked |= acked
                        self.acked_at.append((time.monotonic(), len(acked)))
                        return
            except (aiohttp.ClientError, asyncio.TimeoutError):
                pass
            self.failed_attempts += 1
            await asyncio.sleep(0.2)

    def acked_before(self, moment: float) -> int:
        return sum(count for when, count in self.acked_at if when < moment)

    async def run(self, seconds: float, interval: float, twice: bool = False) -> None:
        """One batch every ``interval`` for ``seconds``; ``twice`` posts each batch again (a client retry)."""
        end = time.monotonic() + seconds
        tasks = []
        while time.monotonic() < end:
            events = self.batch()
            tasks.append(asyncio.create_task(self.post(events)))
            if twice:
                tasks.append(asyncio.create_task(self.post(events)))
            await asyncio.sleep(interval)
        await asyncio.gather(*tasks)


class World:
    """redis-server, simulators ``a`` and ``b``, and one gateway, all in one temp dir."""

    def __init__(self, http: aiohttp.ClientSession, root: Path):
        self.http = http
        self.root = root
        self.redis = RedisServer(str(root), free_port(), appendonly=True)
        self.sims = {name: Simulator("lunary", BACKEND_KEY, root / f"sim-{name}.log") for name in BACKENDS}
        self.gateway: Gateway | None = None

    async def __aenter__(self) -> "World":
        self.redis.start()
        for sim in self.sims.values():
            await sim.start(self.http)
        config = {
            "store": self.redis.url, "log_level": "WARNING",
            "delivery": {"lease_ttl": 2.0, "reclaim_idle": 2.0},
            "tenants": [{"name": "t", "keys": [INGEST_KEY], "backends": list(BACKENDS)}],
            "backends": [{"name": name, "dialect": "lunary", "url": sim.url, "api_key": BACKEND_KEY,
                          "timeout": BACKEND_TIMEOUT, "retry": RETRY, "batch_size": 50}
                         for name, sim in self.sims.items()],
        }
        path = self.root / "rosetta.yaml"
        path.write_text(yaml.safe_dump(config))
        self.gateway = Gateway(path, self.root / "gateway.log", free_port()).spawn()
        await self.gateway.ready(self.http)
        return self

    async def __aexit__(self, *exc) -> None:
        self.gateway.stop()
        for sim in self.sims.values():
            sim.stop()
        self.redis.kill()

    async def restart_gateway(self) -> None:
        self.gateway = Gateway(self.gateway.config_path, self.gateway.log_path, self.gateway.port).spawn()
        await self.gateway.ready(self.http)

    async def queue(self, backend: str) -> tuple[int, int, int]:
        """(events queued and not acknowledged, entries read and not acknowledged, dead letters)."""
        client = aioredis.from_url(self.redis.url)
        try:
            depth = int(await client.get(keys.depth(backend)) or 0)
            try:
                pending = (await client.xpending(keys.queue(backend), keys.GROUP))["pending"]
            except aioredis.ResponseError:
                pending = 0
            dead = await client.xlen(keys.dead(backend))
            return depth, pending, dead
        finally:
            await client.aclose()

    async def drained(self, timeout: float = 180.0) -> None:
        async def empty():
            return all([(await self.queue(b))[:2] == (0, 0) for b in BACKENDS])
        await until(empty, timeout=timeout, what="every queue drained")

    async def count(self, name: str, loader: Loader) -> Row:
        scenario_row = Row(name, sent=len(loader.sent), acked=len(loader.acked))
        for backend, sim in self.sims.items():
            snapshot = await sim.received(self.http)
            received = snapshot["records"]
            got = [(e["runId"], e["event"]) for e in received.get("events", [])]
            repeats = sum(ALREADY_EXISTS in r["error"] for r in received.get("rejected", []))
            dead = (await self.queue(backend))[2]
            scenario_row.delivered[backend] = len(set(got) & loader.sent)
            scenario_row.duplicates[backend] = len(got) - len(set(got)) + repeats
            scenario_row.dead[backend] = dead
            scenario_row.lost[backend] = max(0, len(loader.acked - set(got)) - dead)
            faulted = snapshot["faults"]["faulted"]
            if faulted:
                scenario_row.notes.append(f"{backend} faulted {faulted} requests")
            if received.get("orphans"):
                scenario_row.notes.append(f"FAIL {backend}: {len(received['orphans'])} ends before their start")
        return scenario_row


# scenarios ------------------------------------------------------------------------


async def with_fault(world: World, loader: Loader, fault: dict, fault_seconds: float,
                     interval: float = 0.25) -> list[str]:
    """Load before, during and after ``fault`` on simulator ``a``; checks that ``b``
    kept pace meanwhile (events acked 2 s before the fault ends are all at ``b`` by then)."""
    load = asyncio.create_task(loader.run(fault_seconds + 4, interval))
    await asyncio.sleep(2)
    await world.sims["a"].faults(world.http, **fault)
    await asyncio.sleep(fault_seconds)
    due = loader.acked_before(time.monotonic() - 2.0)
    at_b = len((await world.sims["b"].received(world.http))["records"].get("events", []))
    await world.sims["a"].faults(world.http)
    await load
    await world.drained()
    notes = [f"b had {at_b} of the {due} events acked 2 s before a healed"]
    if at_b < due:
        notes.append("FAIL b fell behind while a was faulty")
    return notes


def pacing(faulted_at: list[float], at_least: float) -> tuple[float, int]:
    """The shortest gap between consecutive faulted requests, and how many gaps were shorter than ``at_least``."""
    gaps = [later - earlier for earlier, later in zip(faulted_at, faulted_at[1:])]
    return (min(gaps) if gaps else float("nan")), sum(gap < at_least for gap in gaps)


def fault_scenario(fault: dict, seconds_full: float, seconds_short: float, min_gap: float = 0.0):
    """``min_gap``: the retry policy's least wait between attempts under this fault."""
    async def scenario(world: World, loader: Loader, short: bool) -> list[str]:
        notes = await with_fault(world, loader, fault, seconds_short if short else seconds_full)
        if min_gap:
            faulted_at = (await world.sims["a"].received(world.http))["faults"]["faulted_at"]
            shortest, early = pacing(faulted_at, min_gap * 0.95)
            notes.append(f"shortest gap between faulted attempts {shortest:.2f}s")
            if early:
                notes.append(f"FAIL {early} retries sooner than {min_gap:g}s")
        return notes
    return scenario


async def per_event_rejections(world: World, loader: Loader, short: bool) -> list[str]:
    notes = await with_fault(world, loader, {"reject": True}, 3 if short else 8)
    dead = (await world.queue("a"))[2]
    return notes + [f"a dead-lettered {dead}" if dead else "FAIL nothing dead-lettered at a"]


async def redis_restart(world: World, loader: Loader, short: bool) -> list[str]:
    load = asyncio.create_task(loader.run(8 if short else 15, 0.25))
    await asyncio.sleep(3)
    world.redis.kill()
    await asyncio.sleep(2 if short else 5)
    restarted = time.monotonic()
    world.redis.start()
    await load
    await world.drained()
    after = loader.acked_before(float("inf")) - loader.acked_before(restarted)
    notes = [f"{loader.failed_attempts} refused attempts retried"]
    if after == 0:
        notes.append("FAIL the gateway acked nothing after redis came back")
    if world.gateway.process.poll() is not None:
        notes.append("FAIL the gateway exited")
    return notes


async def gateway_sigkill(world: World, loader: Loader, short: bool) -> list[str]:
    load = asyncio.create_task(loader.run(8 if short else 15, 0.1))
    await asyncio.sleep(3)
    world.gateway.signal(signal.SIGKILL)
    await world.gateway.exited()
    await world.restart_gateway()
    await load
    await world.drained()
    return [f"{loader.failed_attempts} refused attempts retried"]


async def client_retry(world: World, loader: Loader, short: bool) -> list[str]:
    await loader.run(3 if short else 8, 0.25, twice=True)
    await world.drained()
    return []


async def soak(world: World, loader: Loader, short: bool, seconds: float) -> list[str]:
    """Steady load (200 events/s) for ``seconds`` while ``b`` is down the first sixth of
    every flap period (30 s; a quarter of a shorter soak). The first and last periods are
    compared: peak queue depth and median RSS must not grow."""
    process = psutil.Process(world.gateway.pid)
    period = 30.0 if seconds >= 120 else seconds / 4
    samples: list[tuple[int, int, int]] = []  # (period number, rss, queue depth)
    load = asyncio.create_task(loader.run(seconds, 0.05))
    began = time.monotonic()
    while not load.done():
        elapsed = time.monotonic() - began
        await world.sims["b"].faults(world.http, **({"down": True} if elapsed % period < period / 6 else {}))
        depth = sum([(await world.queue(b))[0] for b in BACKENDS])
        samples.append((int(elapsed // period), process.memory_info().rss, depth))
        await asyncio.sleep(0.5)
    await world.sims["b"].faults(world.http)
    await load
    await world.drained()
    complete = [n for n in range(int(seconds // period)) if any(s[0] == n for s in samples)]
    first, last = ([s for s in samples if s[0] == n] for n in (complete[0], complete[-1]))
    rss_first, rss_last = statistics.median(s[1] for s in first), statistics.median(s[1] for s in last)
    depth_first, depth_last = max(s[2] for s in first), max(s[2] for s in last)
    notes = [f"{len(complete)} flaps of b", f"RSS {rss_first / 2**20:.0f} -> {rss_last / 2**20:.0f} MiB",
             f"peak queue depth per flap {depth_first} -> {depth_last}"]
    if rss_last > rss_first * 1.25 + 20 * 2**20:
        notes.append("FAIL RSS grew")
    if depth_last > 1.5 * depth_first + 200:
        notes.append("FAIL queue depth grew")
    return notes


SCENARIOS = {
    "backend-down": fault_scenario({"down": True}, 30, 5),
    "backend-500": fault_scenario({"status": 500}, 10, 3),
    "backend-429": fault_scenario({"retry_after": 2}, 8, 3, min_gap=2.0),
    "backend-timeout": fault_scenario({"delay": BACKEND_TIMEOUT + 2}, 8, 3),
    "backend-slow": fault_scenario({"delay": BACKEND_TIMEOUT / 2}, 10, 3),
    "per-event-rejections": per_event_rejections,
    "redis-restart": redis_restart,
    "gateway-sigkill": gateway_sigkill,
    "client-retry": client_retry,
    "soak": soak,
}


async def run_one(name: str, short: bool, soak_seconds: float) -> Row:
    scenario = SCENARIOS[name]
    with tempfile.TemporaryDirectory(prefix=f"rosetta-{name}-") as root:
        async with aiohttp.ClientSession() as http:
            async with World(http, Path(root)) as world:
                loader = Loader(http, world.gateway.url)
                try:
                    if name == "soak":
                        notes = await scenario(world, loader, short, soak_seconds)
                    else:
                        notes = await scenario(world, loader, short)
                except AssertionError as exc:
                    notes = [f"FAIL {exc}"]
                    try:
                        await world.drained(timeout=30)
                    except AssertionError:
                        pass
                row = await world.count(name, loader)
                row.notes = notes + row.notes
                return row


def table(rows: list[Row]) -> str:
    head = ["scenario", "sent", "acked", *(f"delivered {b}" for b in BACKENDS), "duplicates", "dead-lettered",
            "lost", "notes"]
    lines = [head]
    for r in rows:
        per = lambda d: "/".join(str(d.get(b, 0)) for b in BACKENDS)  # noqa: E731
        lines.append([r.scenario, str(r.sent), str(r.acked), *(str(r.delivered.get(b, 0)) for b in BACKENDS),
                      per(r.duplicates), per(r.dead), per(r.lost), "; ".join(r.notes)])
    widths = [max(len(line[i]) for line in lines) for i in range(len(head) - 1)]
    out = []
    for n, line in enumerate(lines):
        out.append(" | ".join(cell.ljust(w) for cell, w in zip(line, widths)) + " | " + line[-1])
        if n == 0:
            out.append("-+-".join("-" * w for w in widths) + "-+-" + "-" * 5)
    return "\n".join(out)


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.reliability.run", description=__doc__.split("\n")[0])
    parser.add_argument("--soak-seconds", type=float, default=600.0)
    parser.add_argument("--only", action="append", choices=sorted(SCENARIOS), help="run only this scenario (repeatable)")
    parser.add_argument("--short", action="store_true", help="short fault windows (for the pytest wrapper)")
    args = parser.parse_args(argv)
    rows = []
    for name in args.only or list(SCENARIOS):
        started = time.monotonic()
        row = await run_one(name, args.short, args.soak_seconds)
        rows.append(row)
        print(f"{name}: {'FAIL' if row.failed else 'ok'} in {time.monotonic() - started:.0f}s", flush=True)
    print("(duplicates, dead-lettered and lost are per backend a/b; a takes the fault, b stays healthy)")
    print(table(rows), flush=True)
    return 1 if any(r.failed for r in rows) else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
