"""The load generator: an async aiohttp client in its own process, bounded in requests
and time, 127.0.0.1 only. The bench hands it a JSON spec as argv[1]; it prints ``go``
when the measured window opens, ``done`` when it closes, then one JSON result line.

Closed loop (``rate`` null): ``concurrency`` clients send back to back. Open loop
(``rate`` in requests/s): sends are scheduled, and latency counts from the scheduled
time, so a stalled server is not hidden by a client that waited for it.
"""
import asyncio
import itertools
import sys
import time

import aiohttp
import orjson

from .payloads import MARK, template


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def _setup(session: aiohttp.ClientSession, base: str, headers: dict, body: bytes) -> bytes:
    """Voker events name a fingerprint the SDK registered first."""
    if b"FINGERPRINT" not in body:
        return body
    async with session.put(f"{base}/api/v1/fingerprints", headers=headers,
                           data=orjson.dumps({"language": "python", "language_version": "3.11", "system": "Linux"})) as r:
        fingerprint = (await r.json())["fingerprint_id"]
    return body.replace(b"FINGERPRINT", fingerprint.encode())


async def run(spec: dict) -> dict:
    method, path, body, events_per = template(spec["kind"], spec.get("batch", 10), spec.get("size", 1024))
    base = spec["url"]
    assert base.startswith("http://127.0.0.1:"), "load goes to this machine only"
    headers = {"Authorization": f"Bearer {spec['key']}", "Content-Type": "application/json"}
    counter = itertools.count(spec.get("start", 0) * 10_000_000 + 1)
    concurrency, rate = spec.get("concurrency", 32), spec.get("rate")
    max_requests, duration = spec.get("max_requests", 10**9), spec["duration"]
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    sent = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
        body = await _setup(session, base, headers, body)
        url = base + path

        async def one(record: bool, scheduled: float | None = None) -> None:
            data = body.replace(MARK, b"%010d" % next(counter))
            started = scheduled if scheduled is not None else time.perf_counter()
            try:
                async with session.request(method, url, data=data, headers=headers) as response:
                    await response.read()
                    status = response.status
            except aiohttp.ClientError:
                status = 0
            if record:
                latencies.append(time.perf_counter() - started)
                statuses[status] = statuses.get(status, 0) + 1

        warm_end = time.perf_counter() + spec.get("warmup", 0.3)
        while time.perf_counter() < warm_end:
            await asyncio.gather(*(one(False) for _ in range(min(concurrency, 8))))
        print("go", flush=True)
        start = time.perf_counter()
        end = start + duration
        if rate is None:
            async def client() -> None:
                nonlocal sent
                while sent < max_requests and time.perf_counter() < end:
                    sent += 1
                    await one(True)
            await asyncio.gather(*(client() for _ in range(concurrency)))
        else:
            tasks = set()
            interval = 1.0 / rate
            while sent < max_requests:
                scheduled = start + sent * interval
                if scheduled >= end:
                    break
                delay = scheduled - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                sent += 1
                task = asyncio.create_task(one(True, scheduled))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            if tasks:
                await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
        print("done", flush=True)
    ok = sum(n for s, n in statuses.items() if 200 <= s < 300)
    return {"requests": sent, "ok": ok, "statuses": {str(k): v for k, v in statuses.items()},
            "elapsed": elapsed, "events_per_request": events_per, "bytes": len(body),
            "rps": ok / elapsed if elapsed else 0.0, "eps": ok * events_per / elapsed if elapsed else 0.0,
            "p50": _quantile(latencies, 0.50), "p99": _quantile(latencies, 0.99)}


def main() -> None:
    spec = orjson.loads(sys.argv[1])
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(run(spec))
    print(orjson.dumps(result).decode(), flush=True)


if __name__ == "__main__":
    main()
