"""Config reload on SIGHUP, against a real `rosetta serve` process: requests in flight
while it reloads all succeed, the new key and backend work at once, and a config that
does not load is refused with a log line saying why while the running one stays."""
import asyncio
import os
import signal
import socket
import sys
import uuid

import aiohttp
import pytest

from gateway import reload
from gateway.admin import FORWARDERS
from gateway.app import FORWARDER_TASKS, build_app
from gateway.config import parse
from gateway.ingress.state import STATE
from tests.backends import run_backend

KEY = "pk-acme-reload-1111"
NEW_KEY = "pk-acme-reload-2222"
BACKEND_KEY = "sk-lunary-backend-3333"
SENDERS = 8
WAIT = 30.0  # a guard against a hang, not a timing assertion


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _config(archive, keys, lunary_url=None) -> str:
    backends = ["archive"] + (["fresh"] if lunary_url else [])
    text = f"""
tenants:
  - name: acme
    keys: [{", ".join(keys)}]
    backends: [{", ".join(backends)}]
backends:
  - {{name: archive, dialect: jsonl, path: {archive}}}
"""
    if lunary_url:
        text += f"  - {{name: fresh, dialect: lunary, url: \"{lunary_url}\", api_key: {BACKEND_KEY}}}\n"
    return text


def _run(run_id: str) -> dict:
    start = {"type": "llm", "event": "start", "runId": run_id, "name": "gpt-4o",
             "timestamp": "2026-11-23T13:03:45.000Z", "input": [{"role": "user", "content": "hi"}]}
    end = {"type": "llm", "event": "end", "runId": run_id, "timestamp": "2026-11-23T13:03:46.000Z",
           "output": {"role": "assistant", "content": "hello"}}
    return {"events": [start, end]}


async def _ingest(http: aiohttp.ClientSession, url: str, key: str) -> int:
    async with http.post(f"{url}/v1/runs/ingest", json=_run(str(uuid.uuid4())),
                         headers={"Authorization": f"Bearer {key}"}) as resp:
        await resp.read()
        return resp.status


async def _until(predicate, what: str):
    """Wait for a predicate, plain or async."""
    deadline = asyncio.get_running_loop().time() + WAIT
    while not await _value(predicate()):
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@pytest.fixture
async def gateway(tmp_path):
    config = tmp_path / "rosetta.yaml"
    config.write_text(_config(tmp_path / "archive.jsonl", [KEY]))
    log = tmp_path / "gateway.log"
    port = _free_port()
    with open(log, "wb") as stderr:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway.cli", "serve", "--config", str(config), "--port", str(port),
            stdout=asyncio.subprocess.DEVNULL, stderr=stderr, env={**os.environ, "ROSETTA_LOG_LEVEL": "INFO"})
    url = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as http:
        async def ready():
            try:
                async with http.get(f"{url}/readyz") as resp:
                    return resp.status == 200
            except aiohttp.ClientConnectionError:
                assert process.returncode is None, log.read_text()
                return False
        await _until(ready, "the gateway to start")
        try:
            yield process, config, url, http, log
        finally:
            process.terminate()
            await process.wait()


async def test_sighup_applies_a_new_key_and_backend_without_failing_a_request(gateway, tmp_path):
    process, config, url, http, log = gateway
    statuses: list = []
    stop = asyncio.Event()

    async def sender():
        while not stop.is_set():
            try:
                statuses.append(await _ingest(http, url, KEY))
            except aiohttp.ClientError as exc:
                statuses.append(repr(exc))

    async with run_backend("lunary", key=BACKEND_KEY) as lunary:
        senders = [asyncio.create_task(sender()) for _ in range(SENDERS)]
        await _until(lambda: len(statuses) >= 50, "load before the reload")
        assert await _ingest(http, url, NEW_KEY) == 401
        config.write_text(_config(tmp_path / "archive.jsonl", [KEY, NEW_KEY], lunary.url))
        process.send_signal(signal.SIGHUP)
        await _until(lambda: _status_is(http, url, NEW_KEY, 200), "the new key to work")
        after = len(statuses)
        await _until(lambda: len(statuses) >= after + 50, "load after the reload")
        stop.set()
        await asyncio.gather(*senders)
        await lunary.received.wait_until(lambda r: r.count("events") >= 2, timeout=WAIT)
    assert set(statuses) == {200}, [s for s in statuses if s != 200][:5]
    assert "reload_applied" in log.read_text()


async def test_sighup_with_a_bad_config_keeps_the_running_one(gateway):
    process, config, url, http, log = gateway
    good = config.read_text()
    config.write_text(good.replace("keys:", "keyz:"))
    process.send_signal(signal.SIGHUP)
    await _until(lambda: "reload_rejected" in log.read_text(), "the rejection to be logged")
    [line] = [l for l in log.read_text().splitlines() if "reload_rejected" in l]
    assert "tenants.0.keyz" in line and "Extra inputs are not permitted" in line
    assert await _ingest(http, url, KEY) == 200
    # and the process still reloads a good one afterwards
    config.write_text(good.replace(f"[{KEY}]", f"[{KEY}, {NEW_KEY}]"))
    process.send_signal(signal.SIGHUP)
    await _until(lambda: _status_is(http, url, NEW_KEY, 200), "the corrected config to apply")


async def _value(result):
    return await result if asyncio.iscoroutine(result) else result


async def _status_is(http, url, key, status) -> bool:
    return await _ingest(http, url, key) == status


async def test_apply_keeps_unchanged_restarts_changed_and_stops_removed_backends(aiohttp_client, tmp_path):
    """In process, to look at the forwarders: and the new rate limit and redaction apply at once."""
    kept, changed = tmp_path / "kept.jsonl", tmp_path / "changed.jsonl"
    before = parse(f"""
tenants: [{{name: acme, keys: [{KEY}], backends: [kept, changed, gone]}}]
backends:
  - {{name: kept, dialect: jsonl, path: {kept}}}
  - {{name: changed, dialect: jsonl, path: {changed}}}
  - {{name: gone, dialect: lunary, url: "http://127.0.0.1:{_free_port()}", api_key: k}}
""")
    app = build_app(before)
    client = await aiohttp_client(app)
    url = str(client.make_url("")).rstrip("/")
    assert await _ingest(client.session, url, KEY) == 200
    await _until(lambda: _lines(changed) == 2, "the first run to be delivered")
    forwarders, tasks = dict(app[FORWARDERS]), dict(app[FORWARDER_TASKS])
    await reload.apply(app, parse(f"""
tenants:
  - {{name: acme, keys: [{KEY}], backends: [kept, changed], rate_limit: {{requests_per_second: 1}}}}
backends:
  - {{name: kept, dialect: jsonl, path: {kept}}}
  - {{name: changed, dialect: jsonl, path: {changed}, redact: {{builtin: [email]}}}}
"""))
    assert app[FORWARDERS]["kept"] is forwarders["kept"]
    assert app[FORWARDERS]["changed"] is not forwarders["changed"] and tasks["changed"].done()
    assert "gone" not in app[FORWARDERS] and "gone" not in app[FORWARDER_TASKS] and tasks["gone"].done()
    assert await app[STATE].store.depth("gone") == 2  # the undelivered run (start and end) stays queued

    mail = {"events": [{**_run(str(uuid.uuid4()))["events"][0], "input": "write to bob@example.com"}]}
    resp = await client.post("/v1/runs/ingest", json=mail, headers={"Authorization": f"Bearer {KEY}"})
    assert resp.status == 200
    await _until(lambda: _lines(changed) == 3 and _lines(kept) == 3, "the second run to be delivered")
    assert "bob@example.com" in kept.read_text().splitlines()[-1]
    assert "bob@example.com" not in changed.read_text().splitlines()[-1]
    burst = [await _ingest(client.session, url, KEY) for _ in range(5)]
    assert 429 in burst


def _lines(path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0
