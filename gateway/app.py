"""The aiohttp application: ingress routes, the store, and one forwarder per backend.

Resources are opened and closed with `cleanup_ctx`; one ClientSession serves every
forwarder. On shutdown ingress stops first (aiohttp finishes in-flight requests),
then forwarders stop, leaving undelivered entries in the queues.
"""
import asyncio
import logging

import aiohttp
from aiohttp import web

from .auth import Auth
from .config import Config
from .delivery.forwarder import Forwarder
from .ingress import honeyhive, lunary, voker
from .ingress.state import STATE, State
from .pipeline import Pipeline
from .store import Store, open_store

log = logging.getLogger("rosetta")
FORWARDERS = web.AppKey("rosetta_forwarders", dict)
INGRESS_MODULES = (lunary, honeyhive, voker)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    state = request.app[STATE]
    store_ok = await state.store.ping()
    body = {"status": "ok" if store_ok else "unavailable", "store": "ok" if store_ok else "unreachable",
            "config": "loaded"}
    return web.json_response(body, status=200 if store_ok else 503)


def build_app(config: Config, store: Store | None = None, forward: bool = True) -> web.Application:
    max_body = config.limits.max_body_bytes
    app = web.Application(client_max_size=max_body + 1)
    store = store or open_store(config.store)
    state = State(config=config, store=store, pipeline=Pipeline(config, store), auth=Auth(config))
    app[STATE] = state
    app[FORWARDERS] = {}
    for module in INGRESS_MODULES:
        app.add_routes(module.routes())
    app.add_routes([web.get("/healthz", healthz), web.get("/readyz", readyz)])

    async def resources(app: web.Application):
        await store.start()
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256))
        tasks = []
        if forward:
            for backend in config.backends:
                forwarder = Forwarder(backend, store, session)
                app[FORWARDERS][backend.name] = forwarder
                tasks.append(asyncio.create_task(forwarder.run(), name=f"forward:{backend.name}"))
        yield
        for forwarder in app[FORWARDERS].values():
            await forwarder.stop()
        if tasks:
            done, still = await asyncio.wait(tasks, timeout=10)
            for task in still:
                task.cancel()
            await asyncio.gather(*still, return_exceptions=True)
        await session.close()
        await store.close()

    app.cleanup_ctx.append(resources)
    return app
