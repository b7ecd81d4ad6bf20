"""The `rosetta` command: serve, check, dlq, translate, tap, status."""
import argparse
import asyncio
import gc
import logging
import multiprocessing
import os
import signal
import sys
import tempfile
from pathlib import Path

from . import config as config_mod
from . import logs
from .tools import client, translate


def _load(path: str | None) -> config_mod.Config:
    if path:
        return config_mod.load(path)
    events = os.path.abspath(os.environ.get("ROSETTA_EVENTS", "rosetta-events.jsonl"))
    return config_mod.default(events)


def _tune_gc() -> None:
    """Objects alive after start-up stay out of every collection; young collections are
    kept short (measured: a few ms each, about 1% of the time under load), not rare and long."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(5_000, 20, 100)


def _serve_one(cfg: config_mod.Config, host: str, port: int, reuse_port: bool, path: str | None = None) -> None:
    from aiohttp import web

    from . import reload
    from .app import build_app
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    app = build_app(cfg)
    if path:
        reload.install(app, path)

    async def tuned(app) -> None:
        from . import enrich
        enrich.warm(o200k=cfg.delivery.exact_o200k)
        _tune_gc()

    app.on_startup.append(tuned)
    debugging = logging.getLogger().isEnabledFor(logging.DEBUG)
    # the access logger formats a line per request: a large share of a small request's cost
    access_log = logging.getLogger("aiohttp.access") if debugging else None
    web.run_app(app, host=host, port=port, print=None, shutdown_timeout=10, access_log=access_log,
                reuse_port=reuse_port or None)


def _serve_workers(count: int, serve) -> int:
    """N processes, each with its own listening socket on the shared port (SO_REUSEPORT)."""
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=serve, name=f"rosetta-worker-{i}") for i in range(count)]
    for worker in workers:
        worker.start()

    def stop(signum, frame):
        for worker in workers:
            if worker.is_alive():
                os.kill(worker.pid, signal.SIGTERM)

    def reload(signum, frame):
        for worker in workers:
            if worker.is_alive():
                os.kill(worker.pid, signal.SIGHUP)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, reload)
    for worker in workers:
        worker.join()
    return max(abs(worker.exitcode or 0) for worker in workers)


def cmd_serve(args) -> int:
    cfg = _load(args.config)
    host = args.host or cfg.listen.host
    port = args.port if args.port is not None else cfg.listen.port
    logs.configure(cfg)
    if not args.config:
        print(f"rosetta: no config given; open access, in-memory store, events appended to "
              f"{cfg.backends[0].path}", flush=True)
    if args.workers > 1:
        if port == 0:
            print("rosetta: --workers needs a fixed port (the workers share it)", file=sys.stderr)
            return 2
        if cfg.store == "memory":
            print("rosetta: each worker keeps its own in-memory store (dedupe and queues are per "
                  "worker); use a redis:// store to share them", flush=True)
        from . import metrics
        metrics.setup_multiprocess(os.environ.get("PROMETHEUS_MULTIPROC_DIR")
                                   or tempfile.mkdtemp(prefix="rosetta-metrics-"))
        print(f"rosetta: listening on http://{host}:{port} with {args.workers} workers", flush=True)
        return _serve_workers(args.workers, lambda: _serve_one(cfg, host, port, True, args.config))
    print(f"rosetta: listening on http://{host}:{port}", flush=True)
    _serve_one(cfg, host, port, False, args.config)
    return 0


def cmd_check(args) -> int:
    from . import check
    cfg, findings = check.run(args.config, args.timeout)
    for finding in findings:
        print(f"{args.config}: {finding.level}: {finding.message}", file=sys.stderr)
    if cfg is None or any(f.level == "error" for f in findings):
        return 1
    print(f"{args.config}: ok ({len(cfg.tenants)} tenants, {len(cfg.backends)} backends, store {cfg.store.split('@')[-1]})")
    return 0


async def _dlq(args) -> int:
    import orjson

    from .store import open_store
    cfg = _load(args.config)
    store = open_store(cfg.store)
    try:
        backends = [args.backend] if args.backend else [b.name for b in cfg.backends]
        ids = args.ids or None
        for name in backends:
            if args.action == "list":
                for letter in await store.dead_letters(name, args.limit):
                    print(f"{name}\t{letter.id}\tattempts={letter.attempts}\t{letter.reason[:120]}")
            elif args.action == "show":
                for letter in await store.dead_letters(name, args.limit):
                    if ids is None or letter.id in ids:
                        print(orjson.dumps({"backend": name, "id": letter.id, "reason": letter.reason,
                                            "answer": letter.answer, "attempts": letter.attempts,
                                            "event": letter.event}, option=orjson.OPT_INDENT_2).decode())
            elif args.action == "replay":
                print(f"{name}: replayed {await store.replay_dead(name, ids)}")
            elif args.action == "drop":
                print(f"{name}: dropped {await store.drop_dead(name, ids)}")
    finally:
        await store.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rosetta", description="LLM-observability ingestion gateway")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the gateway")
    serve.add_argument("--config")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int, default=1, help="processes sharing the port (SO_REUSEPORT)")
    serve.set_defaults(func=cmd_serve)
    check = sub.add_parser("check", help="validate a config file")
    check.add_argument("config")
    check.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for each backend to accept a connection")
    check.set_defaults(func=cmd_check)
    dlq = sub.add_parser("dlq", help="inspect and replay dead letters")
    dlq.add_argument("action", choices=["list", "show", "replay", "drop"])
    dlq.add_argument("ids", nargs="*", help="dead-letter ids (default: all)")
    dlq.add_argument("--config", required=True)
    dlq.add_argument("--backend")
    dlq.add_argument("--limit", type=int, default=1000)
    dlq.set_defaults(func=lambda a: asyncio.run(_dlq(a)))
    translate.add_parser(sub)
    client.add_parsers(sub)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except config_mod.ConfigError as exc:
        print(f"rosetta: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
