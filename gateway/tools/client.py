"""`rosetta tap` and `rosetta status`: clients of a running gateway's admin endpoints.

aiohttp is imported when a command runs, not with this module: `rosetta serve
--workers N` builds the whole command line in its supervisor process, which serves
nothing but counts in the gateway's memory (its RSS 49 -> 39 MB without the HTTP stack).
"""
import asyncio
import os
import sys

import orjson

DEFAULT_URL = "http://127.0.0.1:8080"


def _headers(token: str | None) -> dict:
    return {"Authorization": f"Bearer {token}"} if token else {}


async def tap(url: str, tenant: str | None, backend: str | None, token: str | None, out=None) -> int:
    """Print the gateway's live events, one JSON object a line, until it closes or Ctrl-C."""
    import aiohttp
    out = out or sys.stdout
    params = {k: v for k, v in (("tenant", tenant), ("backend", backend)) if v}
    timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.get(url.rstrip("/") + "/_rosetta/tap", params=params, headers=_headers(token)) as resp:
            if resp.status != 200:
                print(f"rosetta tap: HTTP {resp.status}: {(await resp.text())[:300]}", file=sys.stderr)
                return 1
            async for line in resp.content:
                if line.strip():
                    out.write(line.decode())
                    out.flush()
    return 0


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f}s"
    if seconds < 7200:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"


def format_status(body: dict) -> str:
    lines = [f"store: {body['store']}   ready: {'yes' if body['ready'] else 'no'}   "
             f"accepted: {body['accepted']}   duplicates: {body['duplicates']}", ""]
    columns = ("BACKEND", "DIALECT", "CIRCUIT", "QUEUED", "OLDEST", "DEAD", "DELIVERED", "RETRIED", "LAST ERROR")
    rows = [columns]
    for b in body["backends"]:
        rows.append((b["name"], b["dialect"], b.get("circuit", "-"), str(b["depth"]), _age(b["oldest_age"]),
                     str(b["dead_letters"]), str(b.get("delivered", "-")), str(b.get("retried", "-")),
                     (b.get("last_error") or "")[:60]))
    widths = [max(len(r[i]) for r in rows) for i in range(len(columns) - 1)]
    for row in rows:
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1])
    return "\n".join(line.rstrip() for line in lines)


async def status(url: str, token: str | None, as_json: bool) -> int:
    import aiohttp
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        async with session.get(url.rstrip("/") + "/_rosetta/status", headers=_headers(token)) as resp:
            if resp.status != 200:
                print(f"rosetta status: HTTP {resp.status}: {(await resp.text())[:300]}", file=sys.stderr)
                return 1
            body = await resp.json()
    print(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode() if as_json else format_status(body))
    return 0


def _run(coroutine) -> int:
    import aiohttp
    try:
        return asyncio.run(coroutine)
    except KeyboardInterrupt:
        return 0
    except aiohttp.ClientError as exc:
        print(f"rosetta: cannot reach the gateway: {exc}", file=sys.stderr)
        return 1


def add_parsers(sub) -> None:
    token_help = "admin token (default: $ROSETTA_ADMIN_TOKEN)"
    tap_parser = sub.add_parser("tap", help="stream live canonical events from a running gateway")
    tap_parser.add_argument("--url", default=DEFAULT_URL)
    tap_parser.add_argument("--tenant")
    tap_parser.add_argument("--backend")
    tap_parser.add_argument("--token", default=os.environ.get("ROSETTA_ADMIN_TOKEN"), help=token_help)
    tap_parser.set_defaults(func=lambda a: _run(tap(a.url, a.tenant, a.backend, a.token)))
    status_parser = sub.add_parser("status", help="backends, circuits, queues and dead letters of a running gateway")
    status_parser.add_argument("--url", default=DEFAULT_URL)
    status_parser.add_argument("--json", action="store_true")
    status_parser.add_argument("--token", default=os.environ.get("ROSETTA_ADMIN_TOKEN"), help=token_help)
    status_parser.set_defaults(func=lambda a: _run(status(a.url, a.token, a.json)))
