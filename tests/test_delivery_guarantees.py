"""At-least-once delivery with dedupe, across gateway instances sharing one Redis.

Gateways run as real `rosetta serve` processes where a test kills or stops one, and
in-process otherwise; the backend is the Lunary (or Voker) simulator, and every
assertion counts what it received. Lunary makes duplicates and losses visible: a second
``start`` is recorded as ``rejected``, an ``end`` whose start it never saw as an orphan.
"""
import asyncio
import signal
import subprocess
import sys
import time
import uuid

import aiohttp
import orjson
import pytest
import redis.asyncio as aioredis
import yaml

from gateway.app import build_app
from gateway.config import Config
from gateway.delivery import forwarder
from gateway.store import keys
from tests.backends import Backend, run_backend
from tests.processes import ROOT, Gateway, RedisServer, free_port, until

LUNARY_KEY = "c9625a97-ec9f-47ad-8e22-8cc32a66c2f6"
VOKER_KEY = "vk-backend"
INGEST_KEY = "pk-tenant"
VOKER_INGEST_KEY = "vk-tenant"
BACKEND = "lunary"
FAST_RETRY = {"initial_backoff": 0.05, "max_backoff": 0.3, "breaker_cooldown": 0.3}
LEASE = {"lease_ttl": 1.0, "reclaim_idle": 1.0}


# helpers --------------------------------------------------------------------------


def gateway_config(redis_url: str, lunary: Backend, voker: Backend | None = None, **backend_options) -> dict:
    tenants = [{"name": "lu", "keys": [INGEST_KEY], "backends": [BACKEND]}]
    backends = [{"name": BACKEND, "dialect": "lunary", "url": lunary.url, "api_key": LUNARY_KEY,
                 "retry": FAST_RETRY, **backend_options}]
    if voker is not None:
        tenants.append({"name": "vk", "keys": [VOKER_INGEST_KEY], "backends": ["voker"]})
        backends.append({"name": "voker", "dialect": "voker", "url": voker.url, "api_key": VOKER_KEY,
                         "retry": FAST_RETRY})
    return {"store": redis_url, "delivery": LEASE, "tenants": tenants, "backends": backends,
            "log_level": "WARNING"}


def lunary_batch(runs: int) -> tuple[list[dict], set[tuple[str, str]]]:
    """``runs`` LLM runs, each a start and an end; and the (runId, event) pairs they are."""
    events = []
    for n in range(runs):
        run_id = str(uuid.uuid4())
        events.append({"type": "llm", "event": "start", "runId": run_id, "name": "gpt-4o",
                       "timestamp": f"2025-01-01T00:00:{n % 60:02d}.000Z",
                       "input": [{"role": "user", "content": f"question {n}"}]})
        events.append({"type": "llm", "event": "end", "runId": run_id,
                       "timestamp": f"2025-01-01T00:00:{n % 60:02d}.500Z",
                       "output": {"role": "assistant", "content": f"answer {n}"}})
    return events, {(e["runId"], e["event"]) for e in events}


def delivered(backend: Backend) -> list[tuple[str, str]]:
    return [(e["runId"], e["event"]) for e in backend.received.records("events")]


def assert_exactly_once(backend: Backend, expected: set) -> None:
    got = delivered(backend)
    assert set(got) == expected, f"missing {len(expected - set(got))}, unexpected {len(set(got) - expected)}"
    assert len(got) == len(expected), "an event was delivered twice"
    assert backend.received.count("rejected") == 0, "a run was started twice or refused"
    assert backend.received.count("orphans") == 0, "an end arrived without its start"


async def post(http: aiohttp.ClientSession, base: str, path: str, body, key: str = INGEST_KEY):
    async with http.post(f"{base}{path}", data=orjson.dumps(body), headers={
            "Authorization": f"Bearer {key}", "Content-Type": "application/json"}) as response:
        return response.status, await response.json(content_type=None), response.headers


async def ingest(http, base: str, events: list[dict]) -> None:
    status, body, _ = await post(http, base, "/v1/runs/ingest", {"events": events})
    assert status == 200, body
    assert all(r["success"] for r in body["results"]), body


async def queue_state(redis_url: str, backend: str = BACKEND) -> tuple[int, int]:
    """(events queued and not yet acknowledged, entries read but not acknowledged)."""
    client = aioredis.from_url(redis_url)
    try:
        depth = int(await client.get(keys.depth(backend)) or 0)
        try:
            pending = (await client.xpending(keys.queue(backend), keys.GROUP))["pending"]
        except aioredis.ResponseError:
            pending = 0
        return depth, pending
    finally:
        await client.aclose()


async def drained(redis_url: str, backend: str = BACKEND) -> None:
    """Wait until every queued event is acknowledged: nothing more can be delivered after."""
    async def empty():
        return await queue_state(redis_url, backend) == (0, 0)
    await until(empty, what=f"queue of {backend} drained")


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def lunary():
    async with run_backend("lunary", key=LUNARY_KEY) as backend:
        yield backend


@pytest.fixture
async def gateways(tmp_path, http, unused_tcp_port_factory):
    """``await start(config)`` runs a gateway process; every one is killed at the end."""
    started: list[Gateway] = []

    async def start(config: dict, count: int = 1) -> list[Gateway]:
        path = tmp_path / f"rosetta-{len(started)}.yaml"
        path.write_text(yaml.safe_dump(config))
        batch = [Gateway(path, tmp_path / f"gateway-{len(started) + i}.log", unused_tcp_port_factory()).spawn()
                 for i in range(count)]
        started.extend(batch)
        return [await g.ready(http) for g in batch]

    yield start
    for gateway in started:
        gateway.stop()


async def lease_holder(redis_url: str) -> int:
    """The pid of the gateway process that forwards the backend now."""
    client = aioredis.from_url(redis_url)
    try:
        owner = await until(lambda: client.get(keys.lease(BACKEND)), what="a lease holder")
    finally:
        await client.aclose()
    return int(owner.decode().split(":")[1])


def cli(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "gateway.cli", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


# (a) several instances ------------------------------------------------------------


async def test_two_instances_given_the_same_batches_deliver_each_event_once(redis_url, lunary, gateways, http):
    a, b = await gateways(gateway_config(redis_url, lunary), count=2)
    batches = [lunary_batch(10) for _ in range(3)]
    await asyncio.gather(*(ingest(http, g.url, events) for events, _ in batches for g in (a, b)))
    expected = set().union(*(pairs for _, pairs in batches))
    await lunary.received.wait_until(lambda r: r.count("events") >= len(expected), timeout=20)
    await drained(redis_url)
    assert_exactly_once(lunary, expected)


# (b) crash ------------------------------------------------------------------------


async def test_sigkill_mid_delivery_loses_nothing_the_other_instance_takes_over(redis_url, lunary, gateways, http):
    first, second = await gateways(gateway_config(redis_url, lunary), count=2)
    lunary.faults.set(delay=30, times=1)
    events, expected = lunary_batch(5)
    await ingest(http, first.url, events)
    await lunary.received.wait_until(lambda r: lunary.faults.faulted == 1, timeout=20)
    holder = await lease_holder(redis_url)
    victim, survivor = (first, second) if holder == first.pid else (second, first)
    assert victim.pid == holder
    victim.signal(signal.SIGKILL)
    assert await victim.exited() == -signal.SIGKILL
    assert await queue_state(redis_url) == (10, 1), "the batch in flight stays pending"
    more, more_expected = lunary_batch(3)
    await ingest(http, survivor.url, more)
    expected |= more_expected
    await lunary.received.wait_until(lambda r: r.count("events") >= len(expected), timeout=20)
    await drained(redis_url)
    assert_exactly_once(lunary, expected)
    assert await lease_holder(redis_url) == survivor.pid


# (c) backend outage ---------------------------------------------------------------


async def test_backend_outage_longer_than_the_lease_delivers_everything_once(redis_url, lunary, gateways, http):
    """The holder keeps renewing its lease while it retries, so the other instance
    never re-claims the batch in hand and sends it a second time."""
    a, b = await gateways(gateway_config(redis_url, lunary), count=2)
    await lunary.stop()
    events, expected = lunary_batch(5)
    await ingest(http, a.url, events)
    await until(lambda: _pending(redis_url), what="the batch read while the backend is down")
    outage_began = time.monotonic()
    lunary.faults.set(down=True)
    await lunary.start()
    longer_than_a_takeover = 2 * (LEASE["lease_ttl"] + LEASE["reclaim_idle"])
    await lunary.received.wait_until(
        lambda r: lunary.faults.faulted >= 3 and time.monotonic() - outage_began > longer_than_a_takeover,
        timeout=20)
    lunary.faults.clear()
    await lunary.received.wait_until(lambda r: r.count("events") >= len(expected), timeout=20)
    await drained(redis_url)
    assert_exactly_once(lunary, expected)


async def _pending(redis_url: str) -> bool:
    return (await queue_state(redis_url))[1] > 0


# (d) dead letters -----------------------------------------------------------------


async def test_rejected_events_are_dead_lettered_and_replayed_with_the_cli(redis_url, lunary, gateways, http):
    (gateway,) = await gateways(gateway_config(redis_url, lunary))
    config_path = gateway.config_path
    lunary.faults.set(reject=True)
    events, expected = lunary_batch(3)
    await ingest(http, gateway.url, events)
    await drained(redis_url)

    listed = cli("dlq", "list", "--config", str(config_path), "--backend", BACKEND).splitlines()
    assert len(listed) == 6 and all(line.startswith(f"{BACKEND}\t") for line in listed)
    assert all("Event rejected by the server." in line for line in listed)
    ids = [line.split("\t")[1] for line in listed]
    shown = [orjson.loads(block) for block in _json_blocks(
        cli("dlq", "show", ids[-1], "--config", str(config_path), "--backend", BACKEND))]
    assert len(shown) == 1 and shown[0]["id"] == ids[-1]
    dropped_event = shown[0]["event"]
    dropped = (dropped_event["run_id"], dropped_event["phase"])
    assert dropped[1] == "end", "the last dead letter is the last run's end"
    assert cli("dlq", "drop", ids[-1], "--config", str(config_path)).strip() == f"{BACKEND}: dropped 1"
    assert lunary.received.count("events") == 0

    lunary.faults.clear()
    replayed = cli("dlq", "replay", "--config", str(config_path), "--backend", BACKEND)
    assert replayed.strip() == f"{BACKEND}: replayed 5"
    expected = {pair for pair in expected if pair != (dropped[0], "end")}
    await lunary.received.wait_until(lambda r: r.count("events") >= 5, timeout=20)
    await drained(redis_url)
    assert set(delivered(lunary)) == expected and len(delivered(lunary)) == 5
    assert lunary.received.count("orphans") == 0
    assert cli("dlq", "list", "--config", str(config_path), "--backend", BACKEND) == ""


def _json_blocks(text: str) -> list[str]:
    """`dlq show` prints indented JSON objects one after another."""
    blocks, current = [], []
    for line in text.splitlines():
        current.append(line)
        if line == "}":
            blocks.append("\n".join(current))
            current = []
    return blocks


# (e) backpressure -----------------------------------------------------------------


async def test_full_queue_answers_429_and_drops_nothing(redis_url, lunary, aiohttp_client):
    lunary.faults.set(down=True)
    client = await aiohttp_client(build_app(Config.model_validate(gateway_config(redis_url, lunary, max_queue=4))))
    base = str(client.make_url("")).rstrip("/")
    http = client.session
    first, first_pairs = lunary_batch(2)
    await ingest(http, base, first)
    refused, refused_pairs = lunary_batch(1)
    status, body, headers = await post(http, base, "/v1/runs/ingest", {"events": refused})
    assert status == 429
    assert set(body) == {"message"} and "full" in body["message"]
    assert int(headers["Retry-After"]) >= 1
    assert (await queue_state(redis_url))[0] == 4, "the refused batch was not queued"

    lunary.faults.clear()
    await lunary.received.wait_until(lambda r: r.count("events") >= 4, timeout=20)
    await drained(redis_url)
    assert_exactly_once(lunary, first_pairs)
    await ingest(http, base, refused)
    await lunary.received.wait_until(lambda r: r.count("events") >= 6, timeout=20)
    await drained(redis_url)
    assert_exactly_once(lunary, first_pairs | refused_pairs)


async def test_redis_restart_while_a_batch_is_at_the_backend_delivers_it_once(tmp_path, lunary, aiohttp_client):
    """The backend accepts a batch while Redis is down: the acknowledgement waits for Redis
    to return instead of leaving the entries pending, to be delivered a second time."""
    redis = RedisServer(str(tmp_path), free_port(), appendonly=True).start()
    try:
        lunary.faults.set(delay=1.5, times=1)
        app = build_app(Config.model_validate(gateway_config(redis.url, lunary, timeout=10)))
        client = await aiohttp_client(app)
        events, pairs = lunary_batch(3)
        await ingest(client.session, str(client.make_url("")).rstrip("/"), events)
        await until(lambda: asyncio.sleep(0, lunary.faults.faulted == 1), what="the batch at the backend")
        redis.kill()
        await lunary.received.wait_until(lambda r: r.count("events") >= 6, timeout=20)
        await asyncio.sleep(0.5)  # the acknowledgement fails while Redis is down
        redis.start()
        await drained(redis.url)
        await asyncio.sleep(LEASE["reclaim_idle"] * 2)  # time enough for a re-claim to deliver again
        assert_exactly_once(lunary, pairs)
    finally:
        redis.kill()


# (f) graceful shutdown ------------------------------------------------------------


async def test_sigterm_finishes_requests_in_flight_and_leaves_the_rest_to_the_next_instance(
        redis_url, lunary, gateways, http):
    """A request is held in flight by pausing Redis writes, so its handler is inside
    the store call when SIGTERM arrives; the instance stops listening, still answers it,
    and exits without delivering, acknowledging or losing anything."""
    config = gateway_config(redis_url, lunary)
    (old,) = await gateways(config)
    lunary.faults.set(down=True)
    queued, expected = lunary_batch(3)
    await ingest(http, old.url, queued)
    await until(lambda: _pending(redis_url), what="the old instance holding a batch")

    in_flight, in_flight_pairs = lunary_batch(2)
    control = aioredis.from_url(redis_url)
    try:
        await control.client_pause(10_000, all=False)
        await until(lambda: _blocked_at_least(control, 1), what="the forwarder's next write to wait")
        request = asyncio.create_task(post(http, old.url, "/v1/runs/ingest", {"events": in_flight}))
        await until(lambda: _blocked_at_least(control, 2), what="the request to reach the store")
        old.signal(signal.SIGTERM)
        await until(lambda: _refuses_connections(old.port), what="the old instance to stop listening")
        assert not request.done()
    finally:
        await control.client_unpause()
        await control.aclose()
    status, body, _ = await asyncio.wait_for(request, 15)
    assert status == 200 and all(r["success"] for r in body["results"]), body
    assert await old.exited() == 0
    expected |= in_flight_pairs
    assert (await queue_state(redis_url))[0] == len(expected), "nothing delivered, nothing lost"
    assert lunary.received.count("events") == 0

    lunary.faults.clear()
    await gateways(config)
    await lunary.received.wait_until(lambda r: r.count("events") >= len(expected), timeout=20)
    await drained(redis_url)
    assert_exactly_once(lunary, expected)


async def _blocked_at_least(control, count: int) -> bool:
    return (await control.info("clients"))["blocked_clients"] >= count


async def _refuses_connections(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return True
    writer.close()
    return False


# (g) dedupe -----------------------------------------------------------------------


async def test_a_lunary_batch_and_a_voker_event_sent_twice_are_delivered_once(redis_url, lunary, aiohttp_client):
    async with run_backend("voker", key=VOKER_KEY) as voker:
        config = Config.model_validate(gateway_config(redis_url, lunary, voker))
        client = await aiohttp_client(build_app(config))
        base = str(client.make_url("")).rstrip("/")
        events, expected = lunary_batch(3)
        await ingest(client.session, base, events)
        await ingest(client.session, base, events)

        auth = {"Authorization": f"Bearer {VOKER_INGEST_KEY}"}
        async with client.put("/api/v1/fingerprints", json={"language": "python", "language_version": "3.11",
                                                           "system": "Linux"}, headers=auth) as response:
            assert response.status == 200
            fingerprint = (await response.json())["fingerprint_id"]
        event = {"event_name": "llm", "fingerprint_id": fingerprint, "properties": {
            "api": "openai-chat-completions",
            "inputs": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]},
            "output": {"id": "chatcmpl-1", "choices": [], "usage": {"prompt_tokens": 9}}}}
        answers = []
        for _ in range(2):
            async with client.post("/api/v1/events", json=event, headers=auth) as response:
                assert response.status == 200
                answers.append(await response.json())
        assert answers[0] == answers[1] and answers[0]["success"] is True

        await lunary.received.wait_until(lambda r: r.count("events") >= len(expected), timeout=20)
        await voker.received.wait_until(lambda r: r.count("events") >= 1, timeout=20)
        await drained(redis_url)
        await drained(redis_url, "voker")
        assert_exactly_once(lunary, expected)
        assert voker.received.count("events") == 1


async def _trickle(redis_url, lunary, aiohttp_client, linger: float, batches: int, within: float = 20) -> None:
    """Batches of one run sent 50 ms apart to a gateway with this linger; all delivered
    once within ``within`` seconds."""
    config = gateway_config(redis_url, lunary)
    config["delivery"] = {**LEASE, "linger": linger}
    client = await aiohttp_client(build_app(Config.model_validate(config)))
    base = str(client.make_url("")).rstrip("/")
    expected = set()
    for _ in range(batches):
        events, pairs = lunary_batch(1)
        expected |= pairs
        await ingest(client.session, base, events)
        await asyncio.sleep(0.05)
    await lunary.received.wait_until(lambda r: r.count("events") >= len(expected), timeout=within)
    await drained(redis_url)
    assert_exactly_once(lunary, expected)


@pytest.mark.parametrize("linger, most_requests", [(0.0, None), (0.4, 3)])
async def test_a_trickle_of_events_is_sent_in_batches_after_the_linger(redis_url, lunary, aiohttp_client,
                                                                        linger, most_requests):
    await _trickle(redis_url, lunary, aiohttp_client, linger, 8)
    if most_requests is None:
        assert lunary.faults.requests >= 6, "without a linger, each request's events go out on their own"
    else:
        assert lunary.faults.requests <= most_requests, f"{lunary.faults.requests} requests for 8 trickled batches"


@pytest.mark.parametrize("store", ["memory", "redis"])
async def test_a_linger_ends_once_a_backend_batch_has_gathered(store, redis_url, lunary, aiohttp_client):
    """After a small batch the forwarder lingers (5 s here) for more; once a backend batch
    (4 events) is queued it reads on at once, so what it delivers in one go stays small."""
    config = gateway_config(redis_url if store == "redis" else "memory", lunary, batch_size=4)
    config["delivery"] = {**LEASE, "linger": 5.0}
    client = await aiohttp_client(build_app(Config.model_validate(config)))
    base = str(client.make_url("")).rstrip("/")
    first, expected = lunary_batch(1)
    await ingest(client.session, base, first)
    await lunary.received.wait_until(lambda r: r.count("events") >= len(expected), timeout=5)
    await asyncio.sleep(0.3)  # the forwarder lingers now
    trickled, pairs = lunary_batch(1)
    await ingest(client.session, base, trickled)
    await asyncio.sleep(0.5)
    assert lunary.received.count("events") == len(expected), "fewer than a batch: still lingering"
    batch, more = lunary_batch(1)
    await ingest(client.session, base, batch)
    expected |= pairs | more
    await lunary.received.wait_until(lambda r: r.count("events") >= len(expected), timeout=2.5)
    assert_exactly_once(lunary, expected)


async def test_a_read_holding_a_megabyte_is_sent_without_lingering(redis_url, lunary, aiohttp_client, monkeypatch):
    """A few large events are a backlog as surely as a backend batch of small ones: the
    forwarder reads on at once instead of lingering 5 s for more."""
    monkeypatch.setattr(forwarder, "BACKLOG_BYTES", 1)  # stands for a megabyte: every read here holds more
    await _trickle(redis_url, lunary, aiohttp_client, 5.0, 3, within=3)
