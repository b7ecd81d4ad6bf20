"""Operability: probes, /metrics moving with real traffic, request ids, JSON logs without
secrets, and the translate / tap / status tools against a live in-process gateway."""
import asyncio
import io
import json
import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

import gateway
from gateway import cli, logs
from gateway.app import build_app
from gateway.config import parse
from tests.backends.server import run_backend

INBOUND = "inbound-secret-key-1"
OTHER_INBOUND = "inbound-secret-key-2"
OUTBOUND = "backend-secret-key-1"
ADMIN = "admin-secret-token-1"
SECRETS = (INBOUND, OTHER_INBOUND, OUTBOUND, ADMIN)


def config(tmp_path, url="http://127.0.0.1:9", store="memory"):
    return parse(f"""
store: {store}
admin_token: {ADMIN}
tenants:
  - {{name: acme, keys: [{INBOUND}], backends: [archive, flaky]}}
  - {{name: other, keys: [{OTHER_INBOUND}], backends: [archive]}}
backends:
  - {{name: archive, dialect: jsonl, path: {tmp_path / 'events.jsonl'}}}
  - name: flaky
    dialect: lunary
    url: {url}
    api_key: {OUTBOUND}
    retry: {{initial_backoff: 0.01, max_backoff: 0.02, breaker_failures: 2, breaker_cooldown: 0.05}}
""")


def run(run_id: str, bad: bool = False) -> dict:
    events = [{"type": "llm", "event": "start", "runId": run_id, "timestamp": "2026-11-23T13:03:45.000Z",
               "name": "gpt-4o", "input": [{"role": "user", "content": "hi"}]},
              {"type": "llm", "event": "end", "runId": run_id, "timestamp": "2026-11-23T13:03:46.000Z",
               "output": {"role": "assistant", "content": "hello"}}]
    if bad:
        events.append({"event": "start", "runId": run_id + "-bad", "timestamp": "not a time"})
    return {"events": events}


async def ingest(client, body, key=INBOUND, **headers):
    resp = await client.post("/v1/runs/ingest", json=body, headers={"Authorization": f"Bearer {key}", **headers})
    assert resp.status < 500, await resp.text()
    return resp


async def scrape(client) -> dict:
    resp = await client.get("/metrics")
    assert resp.status == 200
    samples = {}
    for family in text_string_to_metric_families(await resp.text()):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def until(predicate, timeout=15.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await predicate()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def test_metrics_follow_events_through_ingest_and_delivery(tmp_path, aiohttp_client):
    async with run_backend("lunary", key=OUTBOUND) as sim:
        client = await aiohttp_client(build_app(config(tmp_path, sim.url)))
        before = await scrape(client)
        lunary_acme = {"dialect": "lunary", "tenant": "acme"}

        sim.faults.set(status=500, times=2)
        await ingest(client, run("m1", bad=True))
        await ingest(client, run("m1"))
        after = await scrape(client)

        def grown(name, samples, **labels):
            return value(samples, name, **labels) - value(before, name, **labels)
        assert grown("rosetta_events_received_total", after, **lunary_acme) == 5
        assert grown("rosetta_events_accepted_total", after, **lunary_acme) == 2
        assert grown("rosetta_events_duplicate_total", after, **lunary_acme) == 2
        assert grown("rosetta_events_rejected_total", after, **lunary_acme) == 1
        route = {"route": "/v1/runs/ingest", "method": "POST", "status": "200"}
        assert grown("rosetta_http_requests_total", after, **route) == 2

        async def delivered():
            now = await scrape(client)
            return now if all(grown("rosetta_delivery_delivered_total", now, backend=b) >= 2
                              for b in ("flaky", "archive")) else None
        now = await until(delivered)
        assert grown("rosetta_delivery_retried_total", now, backend="flaky") >= 2
        assert grown("rosetta_delivery_failed_attempts_total", now, backend="flaky") == 2
        assert grown("rosetta_delivery_duration_seconds_count", now, backend="flaky") >= 1
        assert value(now, "rosetta_queue_depth", backend="flaky") == 0

        sim.faults.set(status=400, times=1)
        await ingest(client, run("m2"))

        async def dead():
            now = await scrape(client)
            return now if grown("rosetta_delivery_dead_lettered_total", now, backend="flaky") >= 2 else None
        now = await until(dead)
        assert value(now, "rosetta_dead_letters", backend="flaky") == 2
        assert value(now, "rosetta_circuit_open", backend="flaky") == 0


async def test_queue_depth_and_oldest_age_are_read_from_the_store(tmp_path, aiohttp_client):
    client = await aiohttp_client(build_app(config(tmp_path), forward=False))
    await ingest(client, run("q1"))
    await ingest(client, run("q2"), key=OTHER_INBOUND)
    samples = await scrape(client)
    assert value(samples, "rosetta_queue_depth", backend="archive") == 4
    assert value(samples, "rosetta_queue_depth", backend="flaky") == 2
    assert value(samples, "rosetta_queue_oldest_age_seconds", backend="archive") >= 0
    assert ("rosetta_queue_oldest_age_seconds", (("backend", "flaky"),)) in samples


async def test_readyz_fails_when_the_store_is_gone_and_during_shutdown(tmp_path, aiohttp_client, start_redis):
    redis = start_redis()
    client = await aiohttp_client(build_app(config(tmp_path, store=redis.url), forward=False))
    assert (await client.get("/readyz")).status == 200
    redis.kill()
    resp = await client.get("/readyz")
    assert resp.status == 503 and (await resp.json())["store"] == "unreachable"
    assert (await client.get("/healthz")).status == 200

    memory = await aiohttp_client(build_app(config(tmp_path), forward=False))
    assert (await memory.get("/readyz")).status == 200
    await memory.app.shutdown()
    assert (await memory.get("/readyz")).status == 503
    assert (await memory.get("/healthz")).status == 200


async def test_request_id_is_honoured_or_made(tmp_path, aiohttp_client):
    client = await aiohttp_client(build_app(config(tmp_path), forward=False))
    resp = await ingest(client, run("r1"), **{"X-Request-Id": "req-from-lb-1"})
    assert resp.headers["X-Request-Id"] == "req-from-lb-1"
    made = (await client.get("/healthz")).headers["X-Request-Id"]
    assert len(made) == 32 and made != (await client.get("/healthz")).headers["X-Request-Id"]
    bad = await client.get("/healthz", headers={"X-Request-Id": "no spaces\tor tabs"})
    assert bad.headers["X-Request-Id"] != "no spaces\tor tabs"
    missing = await client.get("/no/such/route")
    assert missing.status == 404 and missing.headers["X-Request-Id"]


@pytest.fixture
def json_logs():
    """The gateway's JSON log lines, captured as `rosetta serve` installs them."""
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    yield stream, lambda cfg: logs.configure(cfg, stream)
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


async def test_json_logs_carry_request_id_and_no_secret(tmp_path, aiohttp_client, json_logs):
    stream, configure = json_logs
    async with run_backend("lunary", key=OUTBOUND) as sim:
        cfg = config(tmp_path, sim.url)
        configure(cfg)
        client = await aiohttp_client(build_app(cfg))
        sim.faults.set(status=503, times=3)
        await ingest(client, run("l1", bad=True), **{"X-Request-Id": "req-log-1"})
        assert (await client.get("/_rosetta/status", headers={"Authorization": f"Bearer {ADMIN}"})).status == 200
        logging.getLogger("rosetta.test").warning("calling with Authorization: Bearer %s and %s", OUTBOUND, INBOUND)

        async def circuit_opened():
            return '"event":"circuit_open"' in stream.getvalue()
        await until(circuit_opened)

    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    done = [l for l in lines if l.get("event") == "request_done" and l.get("request_id") == "req-log-1"]
    assert len(done) == 1 and done[0]["status"] == 200
    assert done[0]["tenant"] == "acme" and done[0]["rejected"] == 1 and done[0]["route"] == "/v1/runs/ingest"
    assert any(l.get("event") == "circuit_open" and l["backend"] == "flaky" for l in lines)
    assert any(l["logger"] == "rosetta.test" and "***" in l["msg"] for l in lines)
    text = stream.getvalue()
    for secret in SECRETS:
        assert secret not in text


def test_translate_prints_the_requests_a_backend_would_get(tmp_path, capsys):
    body = tmp_path / "lunary.json"
    body.write_text(json.dumps(run("t1")))
    assert cli.main(["translate", "--from", "lunary", "--to", "voker", str(body)]) == 0
    sent = json.loads(capsys.readouterr().out)
    assert (sent["method"], sent["path"]) == ("POST", "/api/v1/events")
    assert sent["body"]["properties"]["inputs"]["messages"] == [{"role": "user", "content": "hi"}]
    assert sent["body"]["properties"]["output"]["choices"][0]["message"]["content"] == "hello"

    assert cli.main(["translate", "--from", "lunary", "--to", "llmonitor", "--app-id", "app-1", str(body)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["path"] == "/api/report"
    assert [(e["event"], e["app"]) for e in report["body"]["events"]] == [("start", "app-1"), ("end", "app-1")]


async def _cli(*args):
    return await asyncio.create_subprocess_exec(sys.executable, "-m", "gateway.cli", *args,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)


async def test_tap_streams_events_sent_after_it_connects(tmp_path, aiohttp_client):
    client = await aiohttp_client(build_app(config(tmp_path), forward=False))
    url = str(client.make_url("/"))
    await ingest(client, run("before-tap"))
    tap = await _cli("tap", "--url", url, "--tenant", "acme", "--token", ADMIN)
    try:
        hello = json.loads(await asyncio.wait_for(tap.stdout.readline(), 30))
        assert hello == {"type": "hello", "tenant": "acme", "backend": None}
        await ingest(client, run("other-tenant"), key=OTHER_INBOUND)
        await ingest(client, run("after-tap"))
        await ingest(client, run("after-tap"))
        lines = [json.loads(await asyncio.wait_for(tap.stdout.readline(), 10)) for _ in range(4)]
    finally:
        tap.terminate()
        await tap.wait()
    assert [(l["type"], l["event"]["run_id"], l["event"]["phase"]) for l in lines] == [
        ("accepted", "after-tap", "start"), ("accepted", "after-tap", "end"),
        ("duplicate", "after-tap", "start"), ("duplicate", "after-tap", "end")]
    assert lines[0]["tenant"] == "acme" and lines[0]["backends"] == ["archive", "flaky"]


async def test_admin_endpoints_need_the_token(tmp_path, aiohttp_client):
    client = await aiohttp_client(build_app(config(tmp_path), forward=False))
    assert (await client.get("/_rosetta/status")).status == 401
    assert (await client.get("/_rosetta/tap", headers={"Authorization": "Bearer wrong"})).status == 401
    assert (await client.get("/_rosetta/status", headers={"Authorization": f"Bearer {ADMIN}"})).status == 200


async def test_status_shows_queue_depth_and_circuit_state(tmp_path, aiohttp_client):
    async with run_backend("lunary", key=OUTBOUND) as sim:
        sim.faults.set(down=True)
        client = await aiohttp_client(build_app(config(tmp_path, sim.url)))
        await ingest(client, run("s1"))

        async def opened():
            resp = await client.get("/_rosetta/status", headers={"Authorization": f"Bearer {ADMIN}"})
            body = await resp.json()
            flaky = next(b for b in body["backends"] if b["name"] == "flaky")
            return body if flaky["circuit"] != "closed" and flaky["retried"] >= 4 else None
        await until(opened)
        status = await _cli("status", "--url", str(client.make_url("/")), "--token", ADMIN)
        out, err = await asyncio.wait_for(status.communicate(), 30)
        assert status.returncode == 0, err
        rows = {line.split()[0]: line.split() for line in out.decode().splitlines()[2:]}
        assert rows["BACKEND"][:6] == ["BACKEND", "DIALECT", "CIRCUIT", "QUEUED", "OLDEST", "DEAD"]
        assert rows["flaky"][1] == "lunary" and rows["flaky"][2] in ("open", "half-open") and rows["flaky"][3] == "2"
        assert rows["archive"][2] == "closed" and rows["archive"][3] == "0"
        sim.faults.set()


async def test_dashboard_uses_only_exported_metrics(tmp_path, aiohttp_client):
    client = await aiohttp_client(build_app(config(tmp_path), forward=False))
    resp = await client.get("/metrics")
    exported = {re.sub(r"_total$", "", name) for name in re.findall(r"^# TYPE (rosetta_\w+) ", await resp.text(), re.M)}
    dashboard = json.loads((Path(gateway.__file__).parent / "dashboards" / "rosetta.json").read_text())
    used = {re.sub(r"_(bucket|total)$", "", name) for panel in dashboard["panels"] for target in panel["targets"]
            for name in re.findall(r"rosetta_\w+", target["expr"])}
    assert used and used <= exported, used - exported


MULTIPROCESS = """
import multiprocessing, sys
from gateway import metrics
metrics.setup_multiprocess(sys.argv[1])

def work():
    metrics.get().accepted.labels("lunary", "acme").inc(3)

workers = [multiprocessing.get_context("fork").Process(target=work) for _ in range(2)]
for w in workers: w.start()
for w in workers: w.join()
sys.stdout.write(metrics.exposition(metrics.get(), {})[0].decode())
"""


def test_multiprocess_workers_are_summed(tmp_path):
    out = subprocess.run([sys.executable, "-c", MULTIPROCESS, str(tmp_path / "prom")], capture_output=True,
                         text=True, timeout=60, check=True).stdout
    assert 'rosetta_events_accepted_total{dialect="lunary",tenant="acme"} 6.0' in out


def test_the_supervisor_of_several_workers_loads_no_http_stack():
    """`rosetta serve --workers N` builds the command line and sets up shared metrics in a
    process that serves nothing but counts in the gateway's memory: it imports neither
    aiohttp nor the mappings' protobuf code (each worker imports them after the fork)."""
    probe = """
import contextlib, io, sys
from gateway import cli, metrics
with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
    cli.main(["--help"])  # the whole command line built, as the supervisor builds it
print(sorted(m for m in ("aiohttp", "google.protobuf", "redis") if m in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True).stdout
    assert out.strip() == "[]"
