"""Config reload on SIGHUP: the new config takes effect without a restart or a dropped request.

Tenants, keys, routes, rate limits and queue bounds switch at once (requests read them
from the app state per request). A backend added gets a forwarder, a removed one has its
forwarder stopped (its queue stays in the store, for a later config or `rosetta dlq`),
a changed one is restarted with its new settings. A config that does not load is
rejected with a log line naming the error, and the running one stays. The store and
the listen address are fixed for the life of the process.
"""
import asyncio
import logging
import signal

from aiohttp import web

from . import config as config_mod
from . import logs
from .admin import FORWARDERS
from .app import FORWARDING, start_forwarder, stop_forwarder
from .auth import Auth
from .config import Config
from .ingress.state import STATE
from .operations import SYNC

log = logging.getLogger("rosetta.reload")


async def apply(app: web.Application, new: Config) -> None:
    state = app[STATE]
    old = state.config
    if new.store != old.store:
        log.warning("reload: the store cannot change while running; keeping the current one",
                    extra={"event": "reload_ignored", "key": "store"})
        new = new.model_copy(update={"store": old.store})
    if new.listen != old.listen:
        log.warning("reload: the listen address cannot change while running; restart to move it",
                    extra={"event": "reload_ignored", "key": "listen"})
    # one synchronous step: no request sees new routes with old credentials or the reverse
    state.pipeline.reconfigure(new)
    state.auth = Auth(new)
    state.config = new
    _refresh_logging(app, old, new)
    if app[FORWARDING]:
        await _reconcile(app, old, new)
    log.info("reload: config applied", extra={"event": "reload_applied", "tenants": len(new.tenants),
                                              "backends": len(new.backends)})


async def _reconcile(app: web.Application, old: Config, new: Config) -> None:
    before = {b.name: b for b in old.backends}
    after = {b.name: b for b in new.backends}
    delivery_changed = new.delivery != old.delivery
    stale = [name for name in app[FORWARDERS]
             if name not in after or after[name] != before.get(name) or delivery_changed]
    sync = app.get(SYNC)
    if sync is not None:
        sync.sync()  # count what the old forwarders did before their stats go
    await asyncio.gather(*(stop_forwarder(app, name) for name in stale))
    for name in stale:
        if sync is not None:
            sync.seen.pop(name, None)
    for name, backend in after.items():
        if name not in app[FORWARDERS]:
            start_forwarder(app, backend)
    for name in stale:
        log.info("reload: backend %s %s", name, "restarted" if name in after else "stopped; its queue stays",
                 extra={"event": "reload_backend", "backend": name})


def _refresh_logging(app: web.Application, old: Config, new: Config) -> None:
    """Log lines keep masking the old secrets (in-flight work may still print them) and mask the new."""
    secrets = sorted(set(logs.secrets_of(old)) | set(logs.secrets_of(new)), key=len, reverse=True)
    redactors = [app[STATE].extras.get("redact")]
    redactors += [getattr(h.formatter, "redact", None) for h in logging.getLogger().handlers]
    for redactor in redactors:
        if isinstance(redactor, logs.Redactor):
            redactor.secrets = secrets
    logging.getLogger().setLevel(logs.level_of(new))


async def reload_from(app: web.Application, path: str) -> bool:
    """Load `path` and apply it; on any error keep the running config and say why."""
    try:
        new = config_mod.load(path)
    except config_mod.ConfigError as exc:
        log.error("reload: %s rejected, keeping the running config: %s", path, exc,
                  extra={"event": "reload_rejected", "path": path})
        return False
    await apply(app, new)
    return True


def install(app: web.Application, path: str) -> None:
    """Reload `path` on SIGHUP while the app runs; reloads run one at a time, in order."""
    lock = asyncio.Lock()
    running: set[asyncio.Task] = set()

    def signalled() -> None:
        task = asyncio.ensure_future(run())
        running.add(task)
        task.add_done_callback(running.discard)

    async def run() -> None:
        async with lock:
            try:
                await reload_from(app, path)
            except Exception:
                log.exception("reload: %s failed", path, extra={"event": "reload_failed", "path": path})

    async def on_startup(app: web.Application) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, signalled)

    async def on_cleanup(app: web.Application) -> None:
        asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
