"""Run one simulator as its own process, for fault scripts and benchmarks.

    python -m tests.backends.serve --dialect lunary --port 18080 --key pk

Read what arrived with ``GET /_received`` (``?records=0`` for counts only), inject
faults with ``POST /_control`` (e.g. ``{"status": 503, "times": 3}``; ``{}`` heals) and
start over with ``POST /_reset``.
"""

from __future__ import annotations

import argparse
import sys

from aiohttp import web

from .faults import Faults
from .recorder import Received
from .server import DEFAULT_KEY, HOST, SIMULATORS, build_app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.backends.serve", description=__doc__.split("\n")[0])
    parser.add_argument("--dialect", required=True, choices=sorted(SIMULATORS))
    parser.add_argument("--host", default=HOST)
    parser.add_argument("--port", type=int, default=18080)
    parser.add_argument("--key", action="append", help=f"accepted key, repeatable (default {DEFAULT_KEY})")
    parser.add_argument("--open", action="store_true", help="accept any key")
    args = parser.parse_args(argv)
    keys = None if args.open else args.key or [DEFAULT_KEY]
    app = build_app(args.dialect, Received(), Faults(), keys)

    def announce(line: str) -> None:
        print(f"{args.dialect} simulator: {line}", flush=True, file=sys.stdout)

    web.run_app(app, host=args.host, port=args.port, access_log=None, print=announce)


if __name__ == "__main__":
    main()
