"""Passthrough: a dialect's non-ingest routes go to the tenant's backend of that dialect,
with the backend's key (never the client's) and bodies streamed both ways.

The upstream here is a real aiohttp server that refuses any key but the backend's and,
for the streaming cases, only finishes its half once the other side has seen the first
chunk: a gateway that buffered a whole body would never get there.
"""
import asyncio
import hashlib
import socket

import aiohttp
import pytest
from aiohttp import web

from gateway.app import build_app
from gateway.config import parse

LUNARY_CLIENT = "pk-client-lunary-1a2b"
HH_CLIENT = "hh-client-key-3c4d"
BARE_CLIENT = "pk-client-bare-5e6f"
LUNARY_BACKEND = "sk-backend-lunary-7a8b"
HH_BACKEND = "hh-backend-key-9c0d"
CHUNK = 256 * 1024
WAIT = 10.0  # a guard against a hang, not a timing assertion


class Upstream:
    """A vendor API stand-in: records each request, serves large bodies chunk by chunk."""

    def __init__(self, key: str):
        self.key = key
        self.seen: list[dict] = []
        self.first_chunk_read = asyncio.Event()  # the client got the start of a download
        self.first_chunk_received = asyncio.Event()  # the start of an upload arrived here

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append({"method": request.method, "path_qs": request.rel_url.path_qs,
                          "headers": dict(request.headers)})
        if request.headers.get("Authorization") != f"Bearer {self.key}":
            return web.json_response({"error": "wrong key"}, status=401)
        if request.method == "POST":
            first = await request.content.readexactly(CHUNK)
            self.first_chunk_received.set()
            rest = await request.content.read()
            return web.json_response({"bytes": len(first) + len(rest),
                                      "sha256": hashlib.sha256(first + rest).hexdigest()}, status=201)
        if request.path == "/v1/datasets/broken":
            response = web.StreamResponse()
            await response.prepare(request)
            await response.write(_blob(0))
            request.transport.close()
            return response
        if request.path.startswith("/v1/datasets/"):
            response = web.StreamResponse(headers={"Content-Type": "application/octet-stream", "X-Dataset": "big"})
            await response.prepare(request)
            await response.write(_blob(0))
            await asyncio.wait_for(self.first_chunk_read.wait(), WAIT)
            for index in range(1, 8):
                await response.write(_blob(index))
            await response.write_eof()
            return response
        response = web.json_response({"path": request.rel_url.path_qs}, headers={"X-Upstream": "yes"})
        if request.query.get("compress"):
            response.enable_compression(web.ContentCoding.gzip)
        return response


def _blob(index: int) -> bytes:
    return bytes([index]) * CHUNK


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
async def setup(aiohttp_client, aiohttp_server, tmp_path):
    lunary, honeyhive = Upstream(LUNARY_BACKEND), Upstream(HH_BACKEND)
    lunary_server = await aiohttp_server(lunary.app(), host="127.0.0.1")
    hh_server = await aiohttp_server(honeyhive.app(), host="127.0.0.1")
    config = parse(f"""
tenants:
  - name: acme
    keys: {{lunary: [{LUNARY_CLIENT}], honeyhive: [{HH_CLIENT}]}}
    backends: [archive, lunary-up]
    routes: [{{backend: hh-up, kinds: [llm]}}]
  - name: bare
    keys: [{BARE_CLIENT}]
    backends: [archive]
  - name: stranded
    keys: [pk-stranded-0000]
    backends: [lunary-down]
backends:
  - {{name: archive, dialect: jsonl, path: {tmp_path / 'out.jsonl'}}}
  - {{name: lunary-up, dialect: lunary, url: "http://127.0.0.1:{lunary_server.port}", api_key: {LUNARY_BACKEND}}}
  - {{name: hh-up, dialect: honeyhive, url: "http://127.0.0.1:{hh_server.port}", api_key: {HH_BACKEND}}}
  - {{name: lunary-down, dialect: lunary, url: "http://127.0.0.1:{_closed_port()}", api_key: x, timeout: 2}}
""")
    client = await aiohttp_client(build_app(config, forward=False))
    return client, lunary, honeyhive


async def test_lunary_template_fetch_goes_to_the_backend_with_its_key(setup):
    client, lunary, _ = setup
    resp = await client.get("/v1/templates/support-reply/compiled?version=3",
                            headers={"Authorization": f"Bearer {LUNARY_CLIENT}", "X-Trace": "t-1"})
    assert resp.status == 200
    assert await resp.json() == {"path": "/v1/templates/support-reply/compiled?version=3"}
    assert resp.headers["X-Upstream"] == "yes"
    [seen] = lunary.seen
    assert seen["headers"]["Authorization"] == f"Bearer {LUNARY_BACKEND}"
    assert seen["headers"]["X-Trace"] == "t-1"
    assert LUNARY_CLIENT not in str(seen["headers"])


async def test_compressed_answer_keeps_its_content_encoding(setup):
    client, lunary, _ = setup
    resp = await client.get("/v1/templates/greet?compress=1",
                            headers={"Authorization": f"Bearer {LUNARY_CLIENT}", "Accept-Encoding": "gzip"})
    assert resp.status == 200
    assert resp.headers["Content-Encoding"] == "gzip"
    assert await resp.json() == {"path": "/v1/templates/greet?compress=1"}


async def test_lunary_x_api_key_is_replaced_not_forwarded(setup):
    client, lunary, _ = setup
    resp = await client.get("/v1/template-versions/latest?slug=greet", headers={"X-API-Key": LUNARY_CLIENT})
    assert resp.status == 200
    assert "X-API-Key" not in lunary.seen[0]["headers"]
    assert LUNARY_CLIENT not in str(lunary.seen[0]["headers"])


async def test_dataset_download_is_streamed_back(setup):
    client, lunary, _ = setup
    resp = await client.get("/v1/datasets/eval-set", headers={"Authorization": f"Bearer {LUNARY_CLIENT}"})
    assert resp.status == 200
    assert resp.headers["X-Dataset"] == "big"
    first = await asyncio.wait_for(resp.content.readexactly(CHUNK), WAIT)
    lunary.first_chunk_read.set()
    rest = await asyncio.wait_for(resp.content.read(), WAIT)
    assert first + rest == b"".join(_blob(i) for i in range(8))


async def test_upstream_dying_mid_body_cuts_the_answer_short(setup):
    client, _, _ = setup
    resp = await client.get("/v1/datasets/broken", headers={"Authorization": f"Bearer {LUNARY_CLIENT}"})
    assert resp.status == 200
    with pytest.raises(aiohttp.ClientPayloadError):
        await asyncio.wait_for(resp.read(), WAIT)


async def test_post_body_is_streamed_up(setup):
    client, lunary, _ = setup
    body = [_blob(1), _blob(2), _blob(3)]

    async def chunks():
        yield body[0]
        await asyncio.wait_for(lunary.first_chunk_received.wait(), WAIT)
        for part in body[1:]:
            yield part

    resp = await client.post("/v1/datasets/eval-set/items", data=chunks(),
                             headers={"Authorization": f"Bearer {LUNARY_CLIENT}",
                                      "Content-Type": "application/octet-stream"})
    assert resp.status == 201
    assert await resp.json() == {"bytes": 3 * CHUNK, "sha256": hashlib.sha256(b"".join(body)).hexdigest()}
    assert lunary.seen[0]["headers"]["Authorization"] == f"Bearer {LUNARY_BACKEND}"


async def test_honeyhive_reads_reach_the_routed_honeyhive_backend(setup):
    client, _, honeyhive = setup
    headers = {"Authorization": f"Bearer {HH_CLIENT}"}
    session = await client.get("/session/0b6d0f4e-7c1a-4bbd-9e0a-1f2e3d4c5b6a", headers=headers)
    events = await client.get("/events?project=demo&limit=5", headers=headers)
    assert (session.status, events.status) == (200, 200)
    assert (await events.json())["path"] == "/events?project=demo&limit=5"
    assert [s["path_qs"] for s in honeyhive.seen] == ["/session/0b6d0f4e-7c1a-4bbd-9e0a-1f2e3d4c5b6a",
                                                      "/events?project=demo&limit=5"]
    assert {s["headers"]["Authorization"] for s in honeyhive.seen} == {f"Bearer {HH_BACKEND}"}


async def test_no_backend_of_the_dialect_answers_501_in_its_shape(setup):
    client, lunary, honeyhive = setup
    resp = await client.get("/v1/templates/x", headers={"Authorization": f"Bearer {BARE_CLIENT}"})
    assert resp.status == 501
    assert "no lunary backend" in (await resp.json())["message"]
    resp = await client.get("/events?project=demo", headers={"Authorization": f"Bearer {BARE_CLIENT}"})
    assert resp.status == 501
    body = await resp.json()
    assert body["success"] is False and "no honeyhive backend" in body["error"]
    assert lunary.seen == [] and honeyhive.seen == []


async def test_unknown_credential_answers_401_in_the_dialect_shape(setup):
    client, lunary, honeyhive = setup
    resp = await client.get("/v1/datasets/eval-set", headers={"Authorization": "Bearer pk-nobody"})
    assert resp.status == 401
    assert "message" in await resp.json()
    # a key given for lunary only does not open the honeyhive routes
    resp = await client.get("/session/abc", headers={"Authorization": f"Bearer {LUNARY_CLIENT}"})
    assert resp.status == 401
    assert (await resp.json())["success"] is False
    assert lunary.seen == [] and honeyhive.seen == []


async def test_backend_down_answers_502(setup):
    client, _, _ = setup
    resp = await client.get("/v1/templates/x", headers={"Authorization": "Bearer pk-stranded-0000"})
    assert resp.status == 502
    assert "lunary-down" in (await resp.json())["message"]


async def test_ingest_routes_are_not_passed_through(setup):
    client, lunary, _ = setup
    resp = await client.post("/v1/runs/ingest", json={"events": []},
                             headers={"Authorization": f"Bearer {LUNARY_CLIENT}"})
    assert resp.status == 200
    assert lunary.seen == []
