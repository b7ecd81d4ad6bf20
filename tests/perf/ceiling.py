"""The ceiling: the least an aiohttp + orjson endpoint can do for a request (parse the
body, answer), run like ``rosetta serve`` (own process, uvloop, no access log).

It doubles as the counting backend of the drain measurement: it answers a Lunary
batch with one success per event and ``GET /_count`` says how many events arrived,
and when the first and last did.

    python -m tests.perf.ceiling --port 18090
"""
import argparse
import time

import orjson
from aiohttp import web

_FINGERPRINT = b'{"fingerprint_id":"00000000-0000-4000-8000-000000000001"}'
_SUCCESS = b'{"success":true}'


def build_app() -> web.Application:
    counted = {"events": 0, "first": 0.0, "last": 0.0}

    async def parse(request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        events = body.get("events") if isinstance(body, dict) else None
        if isinstance(events, list):
            now = time.time()
            counted["first"] = counted["first"] or now
            counted["last"] = now
            counted["events"] += len(events)
            answer = b'{"results":[' + b",".join([_SUCCESS] * len(events)) + b"]}"
        else:
            answer = _FINGERPRINT
        return web.Response(body=answer, content_type="application/json")

    async def count(request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(counted), content_type="application/json")

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.add_routes([web.get("/_count", count), web.get("/healthz", count),
                    web.post("/{tail:.*}", parse), web.put("/{tail:.*}", parse)])
    return app


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.perf.ceiling")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    web.run_app(build_app(), host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
