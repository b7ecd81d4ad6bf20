"""Bad input never grows a gateway's memory: a `rosetta serve` process takes rounds of the
worst bodies the limits allow (near-limit invalid JSON, gzip bombs, deep nesting, huge
arrays of invalid events, invalid UTF-8) and its RSS, read from the process, settles
after the first rounds instead of growing with every round. The transient peak is
bounded by the body limit: a 5 MB body of 200,000 tiny invalid events costs about
230 MB while its 200,000 per-event errors are built and answered."""
import gzip

import aiohttp
import psutil
import yaml

from tests.perf.bench import Sampler
from tests.processes import Gateway, free_port

KEY = "pk-memory"
MB = 1024 * 1024
ROUNDS = 6  # two to settle, four measured


def bad_bodies() -> list[tuple[bytes, dict]]:
    json_type = {"Content-Type": "application/json"}
    return [
        (b'{"events": [' + b"x" * (9 * MB) + b"]}", json_type),
        (gzip.compress(b'{"events": [' + b" " * (200 * MB) + b"]}"), {**json_type, "Content-Encoding": "gzip"}),
        (b'{"events": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", json_type),
        (b'{"events": [' + b",".join([b'{"event": 7, "runId": []}'] * 200_000) + b"]}", json_type),
        (b'{"events": [{"event": "start", "type": "llm", "runId": "\xff\xfe' + b"\xc3" * (4 * MB) + b'"}]}',
         json_type),
    ]


async def test_rounds_of_bad_input_leave_memory_where_it_was(tmp_path):
    config = {"store": "memory", "log_level": "WARNING",
              "tenants": [{"name": "t", "keys": [KEY], "backends": ["archive"]}],
              "backends": [{"name": "archive", "dialect": "jsonl", "path": str(tmp_path / "events.jsonl")}]}
    (tmp_path / "rosetta.yaml").write_text(yaml.safe_dump(config))
    gateway = Gateway(tmp_path / "rosetta.yaml", tmp_path / "gateway.log", free_port()).spawn()
    bodies = bad_bodies()
    try:
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {KEY}"}) as http:
            await gateway.ready(http)
            process = psutil.Process(gateway.pid)

            async def one_round() -> set[int]:
                statuses = set()
                for body, headers in bodies:
                    async with http.post(f"{gateway.url}/v1/runs/ingest", data=body, headers=headers) as response:
                        await response.read()
                        statuses.add(response.status)
                return statuses

            statuses = await one_round() | await one_round()  # the allocator's pools reach their size
            settled = process.memory_info().rss
            with Sampler(lambda: process.memory_info().rss, interval=0.02) as sampler:
                for _ in range(ROUNDS - 2):
                    statuses |= await one_round()
            after, peak = process.memory_info().rss, sampler.peak()
    finally:
        gateway.stop()
    assert statuses <= {200, 400, 413}, statuses
    assert 200 in statuses and 400 in statuses and 413 in statuses
    assert after - settled < 40 * MB, f"RSS grew {(after - settled) / MB:.0f} MB over {ROUNDS - 2} rounds"
    assert peak - settled < 400 * MB, f"peak {(peak - settled) / MB:.0f} MB above the settled RSS"
