"""The aiohttp application: ingress routes, the store, and one forwarder per backend.

Resources are opened and closed with `cleanup_ctx`; one ClientSession serves every
forwarder. Forwarders start and stop one by one (`start_forwarder`, `stop_forwarder`),
so a config reload can change some without touching the others. On shutdown ingress stops first (aiohttp finishes in-flight requests),
then forwarders stop, leaving undelivered entries in the queues.
"""
import asyncio
import logging

import aiohttp
from aiohttp import web

from . import operations, turns
from .admin import DELIVERY_LISTENERS, FORWARDERS
from .auth import Auth
from .config import Backend, Config
from .delivery.forwarder import Forwarder
from .ingress import honeyhive, lunary, otlp, passthrough, voker
from .ingress.state import STATE, State
from .pipeline import Pipeline
from .store import Store, open_store

log = logging.getLogger("rosetta")
INGRESS_MODULES = (lunary, honeyhive, voker, otlp)
FORWARDER_TASKS = web.AppKey("rosetta_forwarder_tasks", dict)  # backend name -> the forwarder's task
FORWARDING = web.AppKey("rosetta_forwarding", bool)  # build_app(forward=...): reloads start forwarders too
DELIVERY_SESSION = web.AppKey("rosetta_delivery_session", aiohttp.ClientSession)


def build_app(config: Config, store: Store | None = None, forward: bool = True) -> web.Application:
    max_body = config.limits.max_body_bytes
    # the ingress inflates bodies itself, bounded by limits.max_decompressed_bytes;
    # aiohttp's own decoding would apply max_body_bytes to the inflated size instead
    app = web.Application(client_max_size=max_body + 1, handler_args={"auto_decompress": False})
    store = store or open_store(config.store, config.limits.memory_claims, config.limits.memory_queue_bytes)
    state = State(config=config, store=store, pipeline=Pipeline(config, store), auth=Auth(config))
    app[STATE] = state
    app[FORWARDERS] = {}
    app[FORWARDER_TASKS] = {}
    app[DELIVERY_LISTENERS] = []
    app[FORWARDING] = forward
    for module in INGRESS_MODULES:
        app.add_routes(module.routes())

    async def resources(app: web.Application):
        await store.start()
        app[DELIVERY_SESSION] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256))
        if forward:
            for backend in config.backends:
                start_forwarder(app, backend)
        yield
        await asyncio.gather(*(stop_forwarder(app, name) for name in list(app[FORWARDERS])))
        await app[DELIVERY_SESSION].close()
        await store.close()

    app.cleanup_ctx.append(resources)
    app.cleanup_ctx.append(passthrough.session_ctx)
    operations.install(app)
    app.middlewares.append(turns.answers_together())
    app.add_routes(passthrough.routes())
    return app


def start_forwarder(app: web.Application, backend: Backend) -> Forwarder:
    """Start delivering a backend's queue (at start-up, or when a reload adds or changes it)."""
    state = app[STATE]
    delivery = state.config.delivery
    forwarder = Forwarder(backend, state.store, app[DELIVERY_SESSION], lease_ttl=delivery.lease_ttl,
                          reclaim_idle=delivery.reclaim_idle, linger=delivery.linger, exact_o200k=delivery.exact_o200k)
    forwarder.listeners = app[DELIVERY_LISTENERS]
    app[FORWARDERS][backend.name] = forwarder
    app[FORWARDER_TASKS][backend.name] = asyncio.create_task(forwarder.run(), name=f"forward:{backend.name}")
    return forwarder


async def stop_forwarder(app: web.Application, name: str, timeout: float = 10.0) -> None:
    """Stop a backend's forwarder; what it has not acknowledged stays queued in the store."""
    forwarder = app[FORWARDERS].pop(name)
    task = app[FORWARDER_TASKS].pop(name)
    await forwarder.stop()
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
