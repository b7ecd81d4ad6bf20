"""The aiohttp application: ingress routes, the store, and one forwarder per backend.

Resources are opened and closed with `cleanup_ctx`; one ClientSession serves every
forwarder. On shutdown ingress stops first (aiohttp finishes in-flight requests),
then forwarders stop, leaving undelivered entries in the queues.
"""
import asyncio
import logging

import aiohttp
from aiohttp import web

from . import operations
from .admin import FORWARDERS
from .auth import Auth
from .config import Config
from .delivery.forwarder import Forwarder
from .ingress import honeyhive, lunary, otlp, passthrough, voker
from .ingress.state import STATE, State
from .pipeline import Pipeline
from .store import Store, open_store

log = logging.getLogger("rosetta")
INGRESS_MODULES = (lunary, honeyhive, voker, otlp)


def build_app(config: Config, store: Store | None = None, forward: bool = True) -> web.Application:
    max_body = config.limits.max_body_bytes
    # the ingress inflates bodies itself, bounded by limits.max_decompressed_bytes;
    # aiohttp's own decoding would apply max_body_bytes to the inflated size instead
    app = web.Application(client_max_size=max_body + 1, handler_args={"auto_decompress": False})
    store = store or open_store(config.store)
    state = State(config=config, store=store, pipeline=Pipeline(config, store), auth=Auth(config))
    app[STATE] = state
    app[FORWARDERS] = {}
    for module in INGRESS_MODULES:
        app.add_routes(module.routes())

    async def resources(app: web.Application):
        await store.start()
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256))
        tasks = []
        if forward:
            for backend in config.backends:
                forwarder = Forwarder(backend, store, session, lease_ttl=config.delivery.lease_ttl,
                                      reclaim_idle=config.delivery.reclaim_idle)
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
    app.cleanup_ctx.append(passthrough.session_ctx)
    operations.install(app)
    app.add_routes(passthrough.routes())
    return app
