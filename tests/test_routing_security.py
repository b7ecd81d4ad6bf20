"""Routing filters, per-backend redaction, per-tenant rate limits, per-dialect credentials,
and secrets: an outbound key never shows in logs, metrics, stored records or dead letters, and an
inbound key is never forwarded to a backend."""
import asyncio
import dataclasses
import logging

import orjson
import pytest

from gateway.app import build_app
from gateway.config import parse
from gateway.ingress.state import STATE
from tests.backends import run_backend

LUNARY_KEY = "pk-inbound-7f3a9c2e"
OUTBOUND = "sk-outbound-secret-4b1d8e6f0a2c"


def _event(run_id, kind="llm", tags=None, metadata=None, **extra):
    body = {"type": kind, "event": "start", "runId": run_id, "name": "gpt-4o",
            "timestamp": "2026-11-23T13:03:45.000Z", "input": [{"role": "user", "content": "hi"}]}
    if tags:
        body["tags"] = tags
    if metadata:
        body["metadata"] = metadata
    body.update(extra)
    return body


async def _lines(path, count, timeout=5.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        lines = path.read_bytes().splitlines() if path.exists() else []
        if len(lines) >= count or asyncio.get_running_loop().time() > deadline:
            return [orjson.loads(line) for line in lines]
        await asyncio.sleep(0.05)


async def _post(client, events, key=LUNARY_KEY):
    resp = await client.post("/v1/runs/ingest", json={"events": events}, headers={"Authorization": f"Bearer {key}"})
    return resp.status, await resp.json(), resp.headers


async def test_routes_filter_by_kind_tags_metadata_and_sample(aiohttp_client, tmp_path):
    files = {name: tmp_path / f"{name}.jsonl" for name in ("all", "llm", "vip", "eu", "none")}
    config = parse(f"""
tenants:
  - name: acme
    keys: [{LUNARY_KEY}]
    backends: [all]
    routes:
      - {{backend: llm, kinds: [llm]}}
      - {{backend: vip, tags: [vip]}}
      - {{backend: eu, metadata: {{region: eu}}}}
      - {{backend: none, sample: 0.0}}
backends:
""" + "".join(f"  - {{name: {n}, dialect: jsonl, path: {p}}}\n" for n, p in files.items()))
    client = await aiohttp_client(build_app(config))
    status, _, _ = await _post(client, [
        _event("r-llm"), _event("r-tool", kind="tool", tags=["vip"]),
        _event("r-eu", kind="chain", metadata={"region": "eu"}), _event("r-us", kind="chain", metadata={"region": "us"}),
    ])
    assert status == 200
    everything = await _lines(files["all"], 4)
    assert sorted(e["run_id"] for e in everything) == ["r-eu", "r-llm", "r-tool", "r-us"]
    assert [e["run_id"] for e in await _lines(files["llm"], 1)] == ["r-llm"]
    assert [e["run_id"] for e in await _lines(files["vip"], 1)] == ["r-tool"]
    assert [e["run_id"] for e in await _lines(files["eu"], 1)] == ["r-eu"]
    assert not files["none"].exists()


async def test_redaction_masks_builtin_patterns_custom_regex_and_field_paths(aiohttp_client, tmp_path):
    out = tmp_path / "redacted.jsonl"
    config = parse(f"""
tenants: [{{name: acme, keys: [{LUNARY_KEY}], backends: [safe]}}]
backends:
  - name: safe
    dialect: jsonl
    path: {out}
    redact: {{builtin: [email, api_key, card], patterns: ["EMP-[0-9]{{4}}"], fields: [metadata.ssn]}}
""")
    client = await aiohttp_client(build_app(config))
    secret_text = "mail bob@example.com, key sk-abcdefghijklmnopqrstuv, card 4111 1111 1111 1111, id EMP-1234"
    await _post(client, [_event("r1", metadata={"ssn": "123-45-6789", "note": "call alice@example.org"},
                                userProps={"email": "carol@example.net"},
                                input=[{"role": "user", "content": secret_text}])])
    [event] = await _lines(out, 1)
    dumped = orjson.dumps(event).decode()
    for leaked in ("bob@example.com", "sk-abcdefghijklmnopqrstuv", "4111 1111 1111 1111", "EMP-1234",
                   "123-45-6789", "alice@example.org", "carol@example.net"):
        assert leaked not in dumped
    assert event["input"][0]["content"].count("[REDACTED]") == 4
    assert event["metadata"]["ssn"] == "[REDACTED]"
    assert event["raw"] is None


async def test_rate_limit_answers_the_dialects_429_with_retry_after(aiohttp_client, tmp_path):
    config = parse(f"""
tenants: [{{name: acme, keys: [{LUNARY_KEY}], backends: [a], rate_limit: {{requests_per_second: 2}}}}]
backends: [{{name: a, dialect: jsonl, path: {tmp_path / 'a.jsonl'}}}]
""")
    client = await aiohttp_client(build_app(config))
    answers = [await _post(client, [_event(f"r{i}")]) for i in range(4)]
    limited = [a for a in answers if a[0] == 429]
    assert limited, "a fourth request within one second must be limited"
    status, body, headers = limited[0]
    assert "rate limit" in body["message"] and headers["Retry-After"] == "1"


async def test_credentials_are_per_dialect(aiohttp_client, tmp_path):
    config = parse(f"""
tenants: [{{name: acme, keys: {{lunary: [{LUNARY_KEY}], honeyhive: [hh-key-1]}}, backends: [a]}}]
backends: [{{name: a, dialect: jsonl, path: {tmp_path / 'a.jsonl'}}}]
""")
    client = await aiohttp_client(build_app(config))
    assert (await _post(client, [_event("r1")]))[0] == 200
    assert (await _post(client, [_event("r2")], key="hh-key-1"))[:2] == (401, {"message": "Invalid API key"})
    resp = await client.post("/events", json={"event": {}}, headers={"Authorization": f"Bearer {LUNARY_KEY}"})
    assert resp.status == 401


async def test_secrets_never_leak_to_logs_records_or_dead_letters(aiohttp_client, tmp_path, caplog, monkeypatch):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("LUNARY_OUT_KEY", OUTBOUND)
    archive = tmp_path / "archive.jsonl"
    async with run_backend("lunary", key=OUTBOUND) as backend:
        backend.faults.set(reject=True)
        config = parse(f"""
tenants: [{{name: acme, keys: [{LUNARY_KEY}], backends: [archive, vendor]}}]
backends:
  - {{name: archive, dialect: jsonl, path: {archive}}}
  - {{name: vendor, dialect: lunary, url: {backend.url}, api_key: "${{LUNARY_OUT_KEY}}"}}
""")
        app = build_app(config)
        client = await aiohttp_client(app)
        assert (await _post(client, [_event("r-secret")]))[0] == 200
        store = app[STATE].store
        for _ in range(100):
            if await store.dead_count("vendor"):
                break
            await asyncio.sleep(0.05)
        letters = await store.dead_letters("vendor")
        assert letters, "the rejected event must be dead-lettered"
        scraped = await (await client.get("/metrics")).text()
        assert "rosetta_dead_letters" in scraped
    stored = orjson.dumps([dataclasses.asdict(letter) for letter in letters]).decode() + archive.read_text()
    logged = "\n".join(r.getMessage() for r in caplog.records) + scraped
    for secret in (OUTBOUND, LUNARY_KEY):
        assert secret not in stored
        assert secret not in logged
    assert letters[0].reason == "Event rejected by the server.", "the backend must get its own key, not the client's"
