"""The vendors' real SDKs against the real gateway process: every run they report lands, canonical.

`rosetta serve` runs as a subprocess (a keyed tenant, a `jsonl` backend archiving the
canonical events); each driver in `tests/sdk` drives its vendor's published SDK at it
and prints the runs it sent. The SDK must report no error (the driver exits 0), and
the archived events must carry those runs: kind, phase, parent links, names, messages
in the canonical shape, users, tags, feedback, errors and token usage.

The HoneyHive tracer scenarios export spans to the OTLP route, one run per span: the
run id is the span id in hex.
"""
from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession, web

from tests.sdk.runner import run_driver

pytestmark = pytest.mark.sdk

KEY = "key-conformance-123"
ROSETTA = Path(sys.executable).with_name("rosetta")
CONFIG = """
tenants:
  - name: acme
    keys: [{key}]
    backends: [archive]
backends:
  - name: archive
    dialect: jsonl
    path: {path}
"""


class Gateway:
    """A running `rosetta serve` and the JSONL file its archive backend appends to."""

    def __init__(self, url: str, events_path: Path, output: Path):
        self.url = url
        self.events_path = events_path
        self.output = output

    def events(self) -> list[dict]:
        if not self.events_path.exists():
            return []
        return [json.loads(line) for line in self.events_path.read_text().splitlines() if line]

    def wait_for_runs(self, run_ids: set[str], timeout: float = 20) -> list[dict]:
        """Every archived event once all of ``run_ids`` are there (delivery is asynchronous)."""
        deadline = time.monotonic() + timeout
        while True:
            events = self.events()
            missing = run_ids - {e["run_id"] for e in events}
            if not missing or time.monotonic() > deadline:
                assert not missing, f"runs never archived: {sorted(missing)}"
                return events
            time.sleep(0.1)

    def get(self, path: str) -> Any:
        request = urllib.request.Request(self.url + path, headers={"Authorization": f"Bearer {KEY}"})
        with urllib.request.urlopen(request, timeout=5) as answer:
            return json.loads(answer.read())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serve(workdir: Path, config: str | None) -> Iterator[Gateway]:
    """Run `rosetta serve` until the block ends; ``config`` None is the no-config default mode."""
    assert ROSETTA.exists(), f"{ROSETTA} missing: install the project (pip install -e .)"
    port = free_port()
    command = [str(ROSETTA), "serve", "--port", str(port)]
    events_path = workdir / "events.jsonl"
    if config is not None:
        path = workdir / "rosetta.yaml"
        path.write_text(config.format(key=KEY, path=events_path))
        command += ["--config", str(path)]
    else:
        events_path = workdir / "rosetta-events.jsonl"
    env = {k: v for k, v in os.environ.items() if k != "ROSETTA_EVENTS"}
    output = workdir / "rosetta.out"
    with output.open("wb") as sink:
        process = subprocess.Popen(command, cwd=workdir, env=env, stdout=sink, stderr=subprocess.STDOUT)
    gateway = Gateway(f"http://127.0.0.1:{port}", events_path, output)
    try:
        deadline = time.monotonic() + 20
        while True:
            assert process.poll() is None, f"rosetta exited {process.returncode}:\n{output.read_text()}"
            try:
                with urllib.request.urlopen(gateway.url + "/healthz", timeout=1):
                    break
            except OSError:
                assert time.monotonic() < deadline, f"rosetta never answered:\n{output.read_text()}"
                time.sleep(0.1)
        yield gateway
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory) -> Iterator[Gateway]:
    with serve(tmp_path_factory.mktemp("rosetta"), CONFIG) as running:
        yield running


def by_run(events: list[dict], run_id: str) -> list[dict]:
    return [e for e in events if e["run_id"] == run_id]


def one(events: list[dict], run_id: str, phase: str) -> dict:
    (event,) = [e for e in by_run(events, run_id) if e["phase"] == phase]
    return event


def assert_usage(event: dict) -> None:
    """An LLM call's usage is reported, or estimated (and said so) where the client sent none."""
    usage = event["usage"]
    assert usage is not None, event
    assert usage["prompt_tokens"] or usage["completion_tokens"], event
    assert usage["total_tokens"] == (usage["prompt_tokens"] or 0) + (usage["completion_tokens"] or 0)


REPORTED = {"prompt_tokens": 12, "completion_tokens": 3, "cached_prompt_tokens": None, "total_tokens": 15,
            "estimated": False}
KINDS = {"model": "llm", "chain": "chain", "tool": "tool", "session": "session"}


def assert_stream_runs(runs: list[dict], events: list[dict], source: str) -> None:
    """LLMonitor/Lunary: each reported run arrived once per phase, with its kind, links and fields."""
    for run in runs:
        got = by_run(events, run["run_id"])
        assert [e["phase"] for e in got] == run["phases"], run
        first = got[0]
        assert {e["source"] for e in got} == {source} and {e["tenant"] for e in got} == {"acme"}
        assert first["kind"] == ("chat" if run["kind"] == "thread" else run["kind"]), run
        assert first["parent_run_id"] == run.get("parent_run_id"), run
        for field in ("name", "user_id", "tags"):
            if field in run:
                assert first[field] == run[field], (field, run)
        if "feedback" in run:
            assert one(events, run["run_id"], "feedback")["feedback"] == run["feedback"]
        if run["phases"][-1] == "error":
            assert got[-1]["error"]["message"]
        for event in got:
            if event["kind"] == "llm" and event["phase"] == "end":
                assert_usage(event)
            elif event["kind"] == "llm" and event["phase"] == "start":
                assert event["usage"] is None, "a call's usage is on the event that ends it, counted once"


def test_llmonitor(gateway: Gateway) -> None:
    result = run_driver("llmonitor", gateway.url, KEY)
    runs = result["runs"]
    events = gateway.wait_for_runs({run["run_id"] for run in runs})
    assert_stream_runs(runs, events, "llmonitor")

    llm = next(run for run in runs if run["scenario"] == "llm")
    start, end = one(events, llm["run_id"], "start"), one(events, llm["run_id"], "end")
    assert start["input"] == [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hi"}]
    assert end["output"] == {"role": "assistant", "content": "Hello!"}
    assert (start["model"], start["params"], start["metadata"]) == ("gpt-4o", {"temperature": 0.2}, {"case": "llm"})
    assert start["user_props"] == {"name": "Ada", "plan": "pro"}
    assert start["tags"] == ["conformance", "llm"]
    assert end["usage"] == REPORTED
    errors = {run["name"]: one(events, run["run_id"], "error")["error"]["message"]
              for run in runs if run["scenario"] == "error"}
    assert errors == {"gpt-4o": "rate limited", "failing-chain": "chain exploded"}
    assert KEY not in gateway.events_path.read_text(), "the app id is a credential: never archived"


def test_lunary(gateway: Gateway) -> None:
    result = run_driver("lunary", gateway.url, KEY)
    runs = result["runs"]
    events = gateway.wait_for_runs({run["run_id"] for run in runs})
    assert_stream_runs(runs, events, "lunary")

    llm = next(run for run in runs if run["scenario"] == "llm")
    start, end = one(events, llm["run_id"], "start"), one(events, llm["run_id"], "end")
    assert start["input"] == [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hi"}]
    assert start["params"] == {"temperature": 0.2, "max_tokens": 64}
    assert (start["user_props"], start["metadata"]) == ({"name": "Ada", "plan": "pro"}, {"case": "llm"})
    assert end["output"] == {"role": "assistant", "content": "Hello!"} and end["usage"] == REPORTED
    chats = [run for run in runs if run["kind"] == "thread"]
    thread_id = chats[0]["parent_run_id"]
    for run in chats:
        chat = one(events, run["run_id"], "chat")
        assert chat["session_id"] == thread_id and chat["message"]["role"] == run["role"]
        assert chat["user_id"] == "user-thread" and chat["extra"]["threadTags"] == ["support"]
    answers = [one(events, run["run_id"], "chat")["message"]["content"] for run in chats if run["role"] == "assistant"]
    assert answers == ["Hello!", "Sunny."]
    errors = {run["name"]: one(events, run["run_id"], "error")["error"]["message"]
              for run in runs if run["scenario"] == "error"}
    assert errors == {"gpt-4o": "rate limited", "flaky_tool": "tool exploded"}
    assert KEY not in gateway.events_path.read_text(), "the public key (the SDK's appId) is never archived"


def test_honeyhive_client(gateway: Gateway) -> None:
    result = run_driver("honeyhive", gateway.url, KEY, "client")
    session_run, *event_runs = result["runs"]
    session_id = session_run["run_id"]
    events = gateway.wait_for_runs({run["run_id"] for run in result["runs"]})
    assert [e["run_id"] for e in events if e["kind"] == "session" and e["name"] == "conformance-client"] == [
        session_id], "one session: a batch's is_single_session means the session its events already name"
    started = one(events, session_id, "start")
    assert (started["kind"], started["session_id"], started["name"]) == ("session", session_id, "conformance-client")
    assert (started["user_id"], started["user_props"]) == ("user-hh", session_run["user_properties"])
    assert one(events, session_id, "update")["output"] == {"answer": "Sunny."}
    for run in event_runs:
        event = one(events, run["run_id"], "complete")
        assert (event["kind"], event["session_id"], event["parent_run_id"]) == (
            KINDS[run["kind"]], session_id, run["parent_run_id"]), run
        assert event["started_at"] and event["ended_at"]
        assert event["error"] == ({"message": run["error"]} if "error" in run else None)
        if run["kind"] == "model":
            assert (event["model"], event["provider"], event["params"]) == ("gpt-4o", "openai", {"temperature": 0.2})
            assert event["input"][-1]["role"] == "user" and event["output"]["role"] == "assistant"
            assert event["usage"] == REPORTED, "tokens reported in metrics are the call's usage"
    turn1 = next(run for run in event_runs if run.get("turn") == 1)
    assert one(events, turn1["run_id"], "feedback")["feedback"] == turn1["feedback"]
    assert one(events, turn1["run_id"], "update")["metrics"] == {"helpfulness": 5}


def test_honeyhive_logger(gateway: Gateway) -> None:
    result = run_driver("honeyhive_logger", gateway.url, KEY)
    runs = result["runs"]
    events = gateway.wait_for_runs({run["run_id"] for run in runs})
    for run in runs:
        got = by_run(events, run["run_id"])
        phases = [e["phase"] for e in got]
        if run["kind"] == "session":
            assert phases[0] == "start" and got[0]["user_props"] == run["user_properties"]
            assert got[0]["user_id"] == "user-hhl" and got[0]["name"] == f"conformance-{run['scenario']}"
            continue
        event = one(events, run["run_id"], "complete")
        assert (event["kind"], event["name"], event["session_id"]) == (KINDS[run["kind"]], run["name"], run["session_id"])
        if event["kind"] == "llm":
            assert event["output"]["role"] == "assistant"
            assert event["usage"]["estimated"] is True, "the logger reports no usage: it is counted"
            assert_usage(event)
        if "feedback" in run:
            assert one(events, run["run_id"], "feedback")["feedback"] == run["feedback"]


async def test_honeyhive_logger_retry_is_deduplicated(gateway: Gateway, aiohttp_server) -> None:
    """The logger retries an event whose answer was lost, with no event id: it must land once."""
    seen: list[bytes] = []

    async def relay(request: web.Request) -> web.Response:
        body = await request.read()
        async with ClientSession() as session:
            async with session.request(request.method, gateway.url + request.path, data=body,
                                       headers={k: v for k, v in request.headers.items()
                                                if k in ("Authorization", "Content-Type")}) as answer:
                text = await answer.read()
        if (request.method, request.path) == ("POST", "/events"):
            seen.append(body)
            if len(seen) == 1:
                return web.json_response({"error": "answer lost on the way back"}, status=502)
        return web.Response(body=text, status=answer.status, content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", relay)
    proxy = await aiohttp_server(app, host="127.0.0.1")
    result = await asyncio.to_thread(run_driver, "honeyhive_logger", str(proxy.make_url("")).rstrip("/"), KEY, "llm")

    assert len(seen) == 2 and seen[0] == seen[1], "the logger re-sent the same event"
    (model,) = [run for run in result["runs"] if run["kind"] == "model"]
    events = gateway.wait_for_runs({run["run_id"] for run in result["runs"]})
    assert [e["phase"] for e in by_run(events, model["run_id"])] == ["complete"]


def test_voker(gateway: Gateway) -> None:
    result = run_driver("voker", gateway.url, KEY)
    llm_runs = [run for run in result["runs"] if run["kind"] == "llm"]
    sessions = {run["session"] for run in llm_runs}
    deadline = time.monotonic() + 20
    while len([e for e in gateway.events() if e["session_id"] in sessions]) < len(llm_runs):
        assert time.monotonic() < deadline, "voker events never archived"
        time.sleep(0.1)
    events = gateway.events()
    assert len([e for e in events if e["session_id"] in sessions]) == len(llm_runs)

    (person,) = [run for run in result["runs"] if run["kind"] == "person"]
    for run in llm_runs:
        in_session = [e for e in events if e["session_id"] == run["session"]]
        turn = run.get("turn") or run.get("step") or 1
        event = in_session[turn - 1]
        assert (event["kind"], event["phase"], event["tenant"]) == ("llm", "complete", "acme")
        assert event["user_id"] == run.get("person")
        assert event["metadata"]["api"] == run["api"] and event["metadata"]["agent"] == run["agent"]
        assert event["metadata"].get("agent_version") == run.get("agent_version")
        assert event["output"]["role"] == "assistant" and event["usage"]["estimated"] is False
        assert_usage(event)
        if run.get("person") == person["run_id"]:
            assert event["user_props"] == person["properties"], "the person's properties ride along"
    anthropic = next(run for run in llm_runs if run["api"] == "anthropic-messages")
    assert [e for e in events if e["session_id"] == anthropic["session"]][0]["model"] == "claude-sonnet-4-5"

    assert gateway.get(f"/api/v1/people/{person['run_id']}")["properties"] == person["properties"]
    assert gateway.get("/api/v1/agents/weather-agent")["agent_name"] == "weather-agent"
    assert gateway.get("/api/v1/agents/weather-agent/agent-versions/v1")["agent_version_number"] == 1


@pytest.mark.parametrize("scenario", ["tracer", "tracer_protobuf"])
def test_honeyhive_tracer(gateway: Gateway, scenario: str) -> None:
    result = run_driver("honeyhive", gateway.url, KEY, scenario)
    session_run, *span_runs = result["runs"]
    session_id = session_run["session_id"]
    events = gateway.wait_for_runs({run["run_id"] for run in result["runs"]})

    started = one(events, session_id, "start")
    assert (started["kind"], started["name"]) == ("session", f"conformance-{scenario}")
    assert any(e["feedback"] == session_run["feedback"] for e in by_run(events, session_id))
    for run in span_runs:
        event = one(events, run["run_id"], "complete")
        assert (event["source"], event["kind"], event["name"]) == ("otlp", KINDS[run["kind"]], run["name"])
        assert (event["session_id"], event["extra"]["trace_id"]) == (session_id, run["trace_id"])
        assert event["parent_run_id"] == run.get("parent_run_id"), "a root span has no parent"
        if "error" in run:
            assert run["error"] in event["error"]["message"] and event["error"]["type"] == "RuntimeError"
        else:
            assert event["error"] is None
        if "feedback" in run:
            assert event["feedback"] == run["feedback"]
        if event["kind"] == "llm":
            assert (event["model"], event["provider"], event["params"]) == ("gpt-4o", "openai", {"temperature": 0.2})
            assert event["usage"] == REPORTED, "tokens reported in metrics are the call's usage"
            assert event["input"][-1]["role"] == "user" and event["output"]["role"] == "assistant"
    turn1 = next(run for run in span_runs if run.get("turn") == 1)
    llm = one(events, turn1["run_id"], "complete")
    assert llm["input"] == [{"role": "user", "content": "Hi"}]
    assert llm["output"] == {"role": "assistant", "content": "Hello!"}
    assert (llm["user_id"], llm["user_props"]) == ("user-hh", session_run["user_properties"])
    assert llm["metadata"]["case"] == "turn1"
    assert llm["metadata"]["honeyhive_inputs.key"] == "turn1", "the traced function's other arguments are kept"


def test_default_mode(tmp_path: Path) -> None:
    """With no config: open access, memory store, events appended to a file it names at start."""
    with serve(tmp_path, None) as gateway:
        result = run_driver("lunary", gateway.url, "any-key-at-all", "llm")
        (run,) = result["runs"]
        events = gateway.wait_for_runs({run["run_id"]})
        assert f"events appended to {gateway.events_path}" in gateway.output.read_text()
    assert [(e["tenant"], e["phase"]) for e in events] == [("default", "start"), ("default", "end")]
