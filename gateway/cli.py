"""The `rosetta` command: serve, check, dlq."""
import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

from . import config as config_mod


def _load(path: str | None) -> config_mod.Config:
    if path:
        return config_mod.load(path)
    events = os.path.abspath(os.environ.get("ROSETTA_EVENTS", "rosetta-events.jsonl"))
    return config_mod.default(events)


def cmd_serve(args) -> int:
    from aiohttp import web

    from .app import build_app
    cfg = _load(args.config)
    host = args.host or cfg.listen.host
    port = args.port if args.port is not None else cfg.listen.port
    logging.basicConfig(level=os.environ.get("ROSETTA_LOG_LEVEL", cfg.log_level).upper(),
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if not args.config:
        print(f"rosetta: no config given; open access, in-memory store, events appended to "
              f"{cfg.backends[0].path}", flush=True)
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    print(f"rosetta: listening on http://{host}:{port}", flush=True)
    web.run_app(build_app(cfg), host=host, port=port, print=None, shutdown_timeout=10)
    return 0


def cmd_check(args) -> int:
    try:
        cfg = config_mod.load(args.config)
    except config_mod.ConfigError as exc:
        print(f"{args.config}: {exc}", file=sys.stderr)
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
    serve.set_defaults(func=cmd_serve)
    check = sub.add_parser("check", help="validate a config file")
    check.add_argument("config")
    check.set_defaults(func=cmd_check)
    dlq = sub.add_parser("dlq", help="inspect and replay dead letters")
    dlq.add_argument("action", choices=["list", "show", "replay", "drop"])
    dlq.add_argument("ids", nargs="*", help="dead-letter ids (default: all)")
    dlq.add_argument("--config", required=True)
    dlq.add_argument("--backend")
    dlq.add_argument("--limit", type=int, default=1000)
    dlq.set_defaults(func=lambda a: asyncio.run(_dlq(a)))
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except config_mod.ConfigError as exc:
        print(f"rosetta: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
