"""Every ingress dialect × every egress dialect, through the real gateway to real simulators.

One gateway serves the whole module: a tenant per egress dialect (its key picks the
backend), each backend a vendor simulator from ``tests/backends`` (the JSONL archive a
file). A cell sends a scenario as a client of the ingress dialect would, waits until the
backend's queue is drained, reads the simulator back into one normalized shape and
checks every field the pair can carry (``tests/matrix/facts``), plus that the backend
refused nothing, dropped nothing as an orphan and dead-lettered nothing.
"""
import asyncio
import json
import re
import time
import uuid
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestServer

from gateway.app import FORWARDERS, build_app
from gateway.config import Backend, Config, Retry, Tenant
from gateway.ingress.state import STATE
from mappings.ids import as_uuid, derived_uuid
from mappings.otlp import span_id_of
from tests.backends import run_backend
from tests.backends.lunary import server_run_id
from tests.matrix import facts as F
from tests.matrix import observe

pytestmark = pytest.mark.asyncio(loop_scope="module")

PAYLOADS = Path(__file__).parent / "matrix" / "payloads"
SIM_KEY = "sim-key"
SIMULATED = ("lunary", "llmonitor", "honeyhive", "voker", "otlp")
RUN_TIMEOUT = 1.0
# what a backend must never see grow: refused, dropped or duplicated deliveries
TROUBLE = {
    "lunary": ("rejected", "orphans", "unknown_parents"),
    "llmonitor": ("rejected", "orphans", "unknown_parents"),
    "honeyhive": ("duplicates", "updates_unknown", "unknown_sessions"),
    "voker": (),
    "otlp": (),
    "jsonl": (),
}
_PLACEHOLDER = re.compile(r"\{(\w+)(?::(span|trace))?\}")
_FRESH = {None: lambda: str(uuid.uuid4()), "span": lambda: uuid.uuid4().hex[:16], "trace": lambda: uuid.uuid4().hex}


class World:
    def __init__(self, sims, app, server, client, jsonl_path):
        self.sims, self.app, self.server, self.client, self.jsonl_path = sims, app, server, client, jsonl_path

    @property
    def store(self):
        return self.app[STATE].store

    def forwarder(self, egress):
        return self.app[FORWARDERS][egress]

    def view(self, egress):
        if egress == "jsonl":
            return observe.jsonl_runs(self.jsonl_path)
        received = self.sims[egress].received
        if egress in ("lunary", "llmonitor"):
            return observe.lunary_runs(received, "v0" if egress == "llmonitor" else "openai")
        if egress == "otlp":
            return observe.otlp_runs(received)
        return observe.honeyhive_runs(received) if egress == "honeyhive" else observe.voker_runs(received)

    def trouble(self, egress) -> dict:
        sim = self.sims.get(egress)
        return {kind: sim.received.count(kind) for kind in TROUBLE[egress]} if sim else {}

    async def drained(self, egress: str, timeout: float = 10.0) -> None:
        """Wait until every event queued for the backend was delivered and acknowledged."""
        deadline = time.monotonic() + timeout
        while await self.store.depth(egress):
            assert time.monotonic() < deadline, f"backend {egress} still has queued events"
            await asyncio.sleep(0.01)


def _config(sims: dict, jsonl_path: Path) -> Config:
    retry = Retry(initial_backoff=0.01, max_backoff=0.05)
    backends = [Backend(name=d, dialect=d, url=sims[d].url, api_key=SIM_KEY, run_timeout=RUN_TIMEOUT, retry=retry,
                        app_id=SIM_KEY if d == "llmonitor" else None) for d in SIMULATED]
    backends.append(Backend(name="jsonl", dialect="jsonl", path=str(jsonl_path)))
    tenants = [Tenant(name=f"to-{e}", keys=[f"key-{e}"], backends=[e]) for e in F.EGRESS]
    return Config(tenants=tenants, backends=backends)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory):
    jsonl_path = tmp_path_factory.mktemp("matrix") / "archive.jsonl"
    sims = {}
    managers = [run_backend(d, key=SIM_KEY) for d in SIMULATED]
    for dialect, manager in zip(SIMULATED, managers):
        sims[dialect] = await manager.__aenter__()
    app = build_app(_config(sims, jsonl_path))
    server = TestServer(app)
    await server.start_server()
    async with aiohttp.ClientSession() as client:
        yield World(sims, app, server, client, jsonl_path)
    await server.close()
    for manager in reversed(managers):
        await manager.__aexit__(None, None, None)


def fill(value, subs: dict):
    """Placeholders in braces: {tag} and {key} as given, any other name a fresh UUID per cell
    ({name:span} and {name:trace} fresh OTLP span and trace ids, in hex)."""
    if isinstance(value, str):
        return _PLACEHOLDER.sub(lambda m: subs.setdefault(m.group(1), _FRESH[m.group(2)]()), value)
    if isinstance(value, list):
        return [fill(v, subs) for v in value]
    if isinstance(value, dict):
        return {k: fill(v, subs) for k, v in value.items()}
    return value


def payloads(ingress: str) -> dict:
    return json.loads((PAYLOADS / f"{ingress}.json").read_text())


async def send(world: World, ingress: str, requests: list, subs: dict) -> list:
    """Send the requests as the client would; every answer must be the dialect's success."""
    sent = []
    for spec in requests:
        body = fill(spec["body"], subs)
        sent.append(body)
        url = world.server.make_url(spec["path"])
        async with world.client.request(spec["method"], url, json=body,
                                        headers=fill(spec.get("headers", {}), subs)) as resp:
            answer = await resp.json()
            assert resp.status == 200, (spec["path"], answer)
        results = answer.get("results") if isinstance(answer, dict) and "results" in answer else answer
        if isinstance(results, list):
            assert all(r["success"] for r in results), results
        for name, key in spec.get("capture", {}).items():
            subs[name] = answer[key]
    return sent


def new_subs(egress: str) -> dict:
    return {"tag": uuid.uuid4().hex[:10], "key": f"key-{egress}"}


def _session_of(ingress: str, egress: str, subs: dict) -> str:
    """A LLMonitor conversation root opens a HoneyHive session of its own (its id derived)."""
    if ingress == "llmonitor" and egress == "honeyhive":
        return derived_uuid("session", subs["thread"])
    return as_uuid(subs["thread"])


def _id_at(egress: str, run_id: str) -> str:
    """A run's id as the backend holds it: a span id for OTLP, the id itself in the archive,
    the Lunary server's own UUID for what LLMonitor sends as is, a UUID elsewhere."""
    if egress == "otlp":
        return span_id_of(run_id)
    if egress == "jsonl":
        return run_id
    return server_run_id(run_id) if egress == "llmonitor" else as_uuid(run_id)


def _find(runs: list, ingress: str, egress: str, role: str, expected: dict, subs: dict) -> dict:
    if "id" in F.CAN_SEND[ingress] and "id" in F.CAN_CARRY[egress]:
        wanted = _id_at(egress, subs[role])
        found = [r for r in runs if r["id"] == wanted]
    else:
        found = [r for r in runs if r["input"] == expected["input"]]
    assert len(found) == 1, f"{role}: {len(found)} runs found, want 1"
    return found[0]


def _check(run: dict, field: str, want, ingress: str, egress: str, subs: dict) -> None:
    got = run[field]
    if field in ("params", "metadata", "user_props", "feedback"):
        assert got and all(got.get(k) == v for k, v in want.items()), f"{field}: {got!r} lacks {want!r}"
    elif field == "tags":
        assert got and set(want) <= set(got), f"tags: {got!r}"
    elif field == "parent":
        assert got == _id_at(egress, subs[want]), f"parent: {got!r}"
    elif field == "session":
        assert got == _session_of(ingress, egress, subs), f"session: {got!r}"
    else:
        assert got == want, f"{field}: {got!r} != {want!r}"


@pytest.mark.parametrize("ingress,egress,scenario", F.cells(), ids=lambda v: v)
async def test_cell(world: World, ingress: str, egress: str, scenario: str):
    """The scenario's fields arrive at the backend in its own shape, nothing refused or dropped."""
    subs = new_subs(egress)
    before = world.trouble(egress)
    dead_before = await world.store.dead_count(egress)
    skipped_before = world.forwarder(egress).stats.skipped if egress != "jsonl" else 0
    await send(world, ingress, payloads(ingress)[scenario], subs)
    await world.drained(egress)
    runs, threads = world.view(egress)
    roles = fill(F.facts(ingress, scenario), subs)
    dropped = 0
    for role, role_facts in roles.items():
        expected = F.asserted(ingress, egress, role_facts)
        if "thread" in expected:
            assert threads.get(as_uuid(subs["thread"])) == expected["thread"], threads.get(as_uuid(subs["thread"]))
            continue
        if (egress == "voker" and role_facts.get("kind") != "llm") or "thread" in role_facts:  # no counterpart
            dropped += 1
            continue
        run = _find(runs, ingress, egress, role, role_facts, subs)
        for field, want in expected.items():
            if field != "id":
                _check(run, field, want, ingress, egress, subs)
        assert not run["incomplete"], f"{role} arrived marked incomplete"
    assert world.trouble(egress) == before
    assert await world.store.dead_count(egress) == dead_before
    if dropped:
        assert world.forwarder(egress).stats.skipped >= skipped_before + dropped


def _subset(sent: dict, got: dict, skip: tuple = ()) -> None:
    """Every field the client sent is there, unchanged."""
    for key, value in sent.items():
        if key not in skip:
            assert got.get(key) == value, f"{key}: {got.get(key)!r} != {value!r}"


@pytest.mark.parametrize("dialect", ["lunary", "llmonitor"])
async def test_stream_dialect_in_and_out_forwards_the_clients_own_events(world: World, dialect: str):
    """Same dialect both sides: each event the client sent arrives as it was sent (the app id aside)."""
    subs = new_subs(dialect)
    sent = await send(world, dialect, payloads(dialect)["agent"], subs)
    await world.drained(dialect)
    received = world.sims[dialect].received.records("events")
    for event in sent[0]["events"]:
        got = [e for e in received if e["runId"] == event["runId"] and e["event"] == event["event"]]
        assert len(got) == 1
        _subset(event, got[0], skip=("app",))
        assert got[0].get("app", SIM_KEY) == SIM_KEY


async def test_honeyhive_in_and_out_forwards_the_clients_own_records(world: World):
    """The session and every record arrive as sent, ids included (the session's project and source too)."""
    subs = new_subs("honeyhive")
    session, batch = await send(world, "honeyhive", payloads("honeyhive")["agent"], subs)
    await world.drained("honeyhive")
    received = world.sims["honeyhive"].received
    _subset(session["session"], received.get("sessions", subs["thread"]))
    for event in batch["events"]:
        _subset(event, received.get("events", event["event_id"]))


async def test_voker_in_and_out_forwards_the_clients_own_event(world: World):
    """Only the fingerprint differs: it is the gateway's own, issued by the backend."""
    subs = new_subs("voker")
    sent = await send(world, "voker", payloads("voker")["thread"], subs)
    await world.drained("voker")
    received = world.sims["voker"].received.records("events")
    for event in sent[1:]:
        got = [e for e in received if e["properties"] == event["properties"]]
        assert len(got) == 1
        _subset(event, got[0], skip=("fingerprint_id",))
        assert world.sims["voker"].received.get("fingerprints", got[0]["fingerprint_id"]) is not None


async def test_voker_fingerprint_is_created_once_and_reused(world: World):
    """One fingerprint per backend for the whole module's traffic, not one per event."""
    for _ in range(5):
        await send(world, "lunary", payloads("lunary")["llm_call"], new_subs("voker"))
    await world.drained("voker")
    received = world.sims["voker"].received
    assert received.count("fingerprints") == 1
    assert {e["fingerprint_id"] for e in received.records("events")} == set(received.objects("fingerprints"))


def _start_and_end() -> list[list]:
    """The llm_call scenario's start and end as two requests."""
    request = payloads("lunary")["llm_call"][0]
    return [[{**request, "body": {"events": [event]}}] for event in request["body"]["events"]]


async def test_stream_run_split_over_requests_reaches_a_record_backend_as_one_record(world: World):
    """The start waits in the store; nothing reaches HoneyHive until the end joins it."""
    subs = new_subs("honeyhive")
    start, end = _start_and_end()
    await send(world, "lunary", start, subs)
    await world.drained("honeyhive")
    received = world.sims["honeyhive"].received
    assert received.find("events", event_id=subs["llm"]) == []
    await send(world, "lunary", end, subs)
    await world.drained("honeyhive")
    [record] = received.find("events", event_id=subs["llm"])
    assert record["outputs"] == {"role": "assistant", "content": f"Hi {subs['tag']}"}
    assert record["inputs"]["chat_history"][1] == {"role": "user", "content": f"Hello {subs['tag']}"}
    assert record["start_time"] < record["end_time"]
    assert "incomplete" not in record.get("metadata", {})


async def test_run_that_never_ends_is_flushed_after_run_timeout_marked_incomplete(world: World):
    """A held start is not kept forever: it goes out alone, marked so the backend can tell."""
    subs = new_subs("honeyhive")
    start, _ = _start_and_end()
    await send(world, "lunary", start, subs)
    received = world.sims["honeyhive"].received
    await received.wait_until(lambda r: r.find("events", event_id=subs["llm"]), timeout=RUN_TIMEOUT + 10)
    [record] = received.find("events", event_id=subs["llm"])
    assert record["metadata"]["incomplete"] is True
    assert record["inputs"]["chat_history"][1]["content"] == f"Hello {subs['tag']}"
    assert "outputs" not in record


async def test_record_reaches_a_stream_backend_as_start_and_end(world: World):
    """A whole HoneyHive record is split so the Lunary server sees a run open and close."""
    subs = new_subs("lunary")
    await send(world, "honeyhive", payloads("honeyhive")["llm_call"], subs)
    await world.drained("lunary")
    received = world.sims["lunary"].received
    phases = [e["event"] for e in received.find("events", runId=subs["llm"])]
    assert phases == ["start", "end"]
    assert received.get("runs", subs["llm"])["status"] == "success"
