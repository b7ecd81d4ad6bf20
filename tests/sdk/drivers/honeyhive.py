"""Drive the real ``honeyhive`` 1.7.0 SDK (HoneyHive dialect) against a base URL.

Two transports of the same SDK, one scenario each:

- ``client``: the REST client ``HoneyHive(api_key=..., server_url=...)``:
  ``sessions.start`` (``POST /session/start``), ``events.create`` (``POST /events``),
  ``events.create_batch`` (``POST /events/batch``) and ``events.update``
  (``PUT /events``). It records a session with user properties and two turns (model
  events with a growing chat history), an agent (chain -> tool + model, sent as one
  batch), a failed tool (``error``), feedback and metrics on the first model event, and
  the session's outputs at its end.
- ``tracer`` / ``tracer_protobuf``: ``HoneyHiveTracer.init(api_key=..., server_url=...,
  project=..., session_name=...)`` with ``@trace``-decorated functions, ``enrich_span``
  and ``tracer.enrich_session``; the tracer starts the session over REST, exports spans
  over OTLP/HTTP to ``/opentelemetry/v1/traces`` (each scenario sets
  ``HH_OTLP_PROTOCOL`` to ``http/json`` or ``http/protobuf`` before building its tracer), and
  enriches the session with ``PUT /events``. It records an agent (chain -> tool +
  model), two model turns, a tool that raises, span feedback and session feedback.

The JSON line lists, per scenario, the session id and every event/span as sent: event
ids for ``client`` (the driver chooses them), span ids in hex for the tracer.

SDK quirks found in the source:
- The REST client accepts only HTTP 200 (201/204 raise) and parses every answer as
  JSON, ``PUT /events`` included; ``sessions.start`` validates ``event_id``,
  ``session_id``, ``org_id``, ``workspace_id`` and ``project_id`` and raises a pydantic
  ``ValidationError`` when one is missing. Inside the tracer that failure is only a
  WARNING and the tracer goes on with a random session id of its own.
- The tracer never raises: export failures are logged (ERROR ``OTLP JSON export failed
  with status N``; only exactly 200 counts as success) on the ``honeyhive.*`` loggers,
  which do not propagate and print JSON lines to stdout.
- The OTLP session retries connection errors (urllib3 ``Retry``, 3 attempts); 5xx
  answers to the POST are not retried (POST is not in urllib3's retryable methods).
- A decorated function's arguments become ``honeyhive_inputs.<arg>`` attributes. The
  JSON exporter stringifies what is not a scalar (a dict becomes its JSON text, ``None``
  becomes ``"None"``); over protobuf a ``None`` argument is an AnyValue with no value.
- A span that raises is exported twice: the decorated span with ``STATUS_CODE_ERROR``
  and a second span ``<name>_error`` carrying ``honeyhive_error``.
- After ``shutdown()`` of one tracer, a second tracer built later in the same process
  exports nothing at all, silently (``flush()`` still returns True); so this driver
  shuts its tracers down only after all scenarios ran.
- ``HoneyHiveTracer.init(project=...)`` emits a DeprecationWarning (not an error here).
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid

from _support import ErrorCapture, expected_run, finish, import_sdk, parse_args, selected
from opentelemetry import trace as otel_trace

PROJECT = "rosetta-conformance"
USER_PROPS = {"user_id": "user-hh", "plan": "pro"}
OPEN_TRACERS = []
"""Tracers are shut down only after every scenario: see the shutdown quirk above."""


def now_ms():
    return time.time() * 1000


def model_event(session_id, parent_id, history, answer, **fields):
    start = now_ms()
    return {
        "event_id": str(uuid.uuid4()), "project": PROJECT, "source": "dev",
        "event_type": "model", "event_name": "openai.chat",
        "session_id": session_id, "parent_id": parent_id,
        "config": {"model": "gpt-4o", "provider": "openai",
                   "hyperparameters": {"temperature": 0.2}},
        "inputs": {"chat_history": history},
        "outputs": {"role": "assistant", "content": answer},
        "metrics": {"prompt_tokens": 12, "completion_tokens": 3},
        "start_time": start, "end_time": start + 250, "duration": 250,
        **fields,
    }


def scenario_client(hh, args):
    models = hh.models
    client = hh.HoneyHive(api_key=args.key, server_url=args.base_url)
    started = client.sessions.start(models.StartSessionRequest(session={
        "session_id": str(uuid.uuid4()), "session_name": "conformance-client",
        "project": PROJECT, "source": "dev", "start_time": now_ms(),
        "inputs": {"question": "Hi"}, "metadata": {"case": "client"},
        "user_properties": USER_PROPS,
    }))
    session_id = started.session_id
    runs = [expected_run("client", "session", session_id, ["start", "update"],
                         session_id=session_id, user_properties=USER_PROPS)]

    history = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hi"}]
    turn1 = model_event(session_id, session_id, history, "Hello!", user_properties=USER_PROPS)
    client.events.create(models.PostEventRequest(event=turn1))
    runs.append(expected_run("client", "model", turn1["event_id"], ["create", "update"],
                             case="llm", session_id=session_id, parent_run_id=session_id,
                             feedback={"liked": True}, turn=1))

    chain_id, tool_id = str(uuid.uuid4()), str(uuid.uuid4())
    start = now_ms()
    agent_llm = model_event(session_id, chain_id,
                            [{"role": "user", "content": "Weather in Paris? Data: 21 C"}],
                            "It is 21 C in Paris.")
    chain = {"event_id": chain_id, "event_type": "chain", "event_name": "weather_agent",
             "session_id": session_id, "parent_id": session_id,
             "children_ids": [tool_id, agent_llm["event_id"]],
             "inputs": {"question": "Weather in Paris?"}, "outputs": {"answer": "It is 21 C."},
             "start_time": start, "end_time": start + 400, "duration": 400}
    tool = {"event_id": tool_id, "event_type": "tool", "event_name": "get_weather",
            "session_id": session_id, "parent_id": chain_id,
            "inputs": {"city": "Paris"}, "outputs": {"temp_c": 21},
            "start_time": start + 10, "end_time": start + 60, "duration": 50}
    client.events.create_batch(models.PostEventBatchRequest(
        events=[chain, tool, agent_llm], is_single_session=True,
        session_properties={"session_name": "conformance-client"},
    ))
    runs += [
        expected_run("client", "chain", chain_id, ["create"], case="agent",
                     session_id=session_id, parent_run_id=session_id),
        expected_run("client", "tool", tool_id, ["create"], case="agent",
                     session_id=session_id, parent_run_id=chain_id),
        expected_run("client", "model", agent_llm["event_id"], ["create"], case="agent",
                     session_id=session_id, parent_run_id=chain_id),
    ]

    failed = {"event_id": str(uuid.uuid4()), "project": PROJECT, "source": "dev",
              "event_type": "tool", "event_name": "flaky_tool", "session_id": session_id,
              "parent_id": session_id, "inputs": {"text": "boom"},
              "error": "RuntimeError: tool exploded", "start_time": now_ms(), "duration": 5}
    client.events.create(models.PostEventRequest(event=failed))
    runs.append(expected_run("client", "tool", failed["event_id"], ["create"], case="error",
                             session_id=session_id, parent_run_id=session_id,
                             error="RuntimeError: tool exploded"))

    client.events.update(models.UpdateEventRequest(
        event_id=turn1["event_id"], feedback={"liked": True}, metrics={"helpfulness": 5}))

    history = history + [{"role": "assistant", "content": "Hello!"},
                         {"role": "user", "content": "Weather?"}]
    turn2 = model_event(session_id, session_id, history, "Sunny.")
    client.events.create(models.PostEventRequest(event=turn2))
    runs.append(expected_run("client", "model", turn2["event_id"], ["create"], case="thread",
                             session_id=session_id, parent_run_id=session_id, turn=2))

    client.events.update(models.UpdateEventRequest(
        event_id=session_id, outputs={"answer": "Sunny."}, user_properties=USER_PROPS,
        end_time=now_ms()))
    return runs


def span_ids():
    context = otel_trace.get_current_span().get_span_context()
    return format(context.span_id, "016x"), format(context.trace_id, "032x")


def run_tracer(hh, args, scenario, protocol):
    os.environ["HH_OTLP_PROTOCOL"] = protocol
    tracer = hh.HoneyHiveTracer.init(api_key=args.key, server_url=args.base_url, project=PROJECT,
                                     session_name=f"conformance-{scenario}", source="dev")
    session_id = tracer.session_id
    seen = {}

    @hh.trace(tracer=tracer, event_type="tool", event_name="get_weather")
    def get_weather(city):
        seen["tool"] = span_ids()
        return {"city": city, "temp_c": 21}

    @hh.trace(tracer=tracer, event_type="model", event_name="openai.chat")
    def call_llm(key, history, answer, feedback=None):
        seen[key] = span_ids()
        hh.enrich_span(
            config={"model": "gpt-4o", "provider": "openai", "temperature": 0.2},
            inputs={"chat_history": history},
            outputs={"role": "assistant", "content": answer},
            metrics={"prompt_tokens": 12, "completion_tokens": 3},
            user_properties=USER_PROPS, metadata={"case": key}, feedback=feedback,
        )
        return answer

    @hh.trace(tracer=tracer, event_type="chain", event_name="weather_agent")
    def weather_agent(question):
        seen["agent"] = span_ids()
        weather = get_weather("Paris")
        return call_llm("agent_llm", [{"role": "user", "content": f"{question} Data: {weather}"}],
                        "It is 21 C in Paris.")

    @hh.trace(tracer=tracer, event_type="tool", event_name="flaky_tool")
    def flaky_tool(text):
        seen["error"] = span_ids()
        raise RuntimeError("tool exploded")

    history = [{"role": "user", "content": "Hi"}]
    call_llm("turn1", history, "Hello!", feedback={"liked": True})
    weather_agent("Weather in Paris?")
    with contextlib.suppress(RuntimeError):
        flaky_tool("boom")
    history = history + [{"role": "assistant", "content": "Hello!"},
                         {"role": "user", "content": "Weather?"}]
    call_llm("turn2", history, "Sunny.")
    tracer.enrich_session(metadata={"case": scenario}, user_properties=USER_PROPS,
                          feedback={"rating": 5})
    if not tracer.flush():
        raise RuntimeError("HoneyHiveTracer.flush() reported failure")
    OPEN_TRACERS.append(tracer)

    def span(key, kind, **fields):
        span_id, trace_id = seen[key]
        return expected_run(scenario, kind, span_id, ["span"], session_id=session_id,
                            trace_id=trace_id, **fields)

    return [
        expected_run(scenario, "session", session_id, ["start", "update"], session_id=session_id,
                     user_properties=USER_PROPS, feedback={"rating": 5}),
        span("turn1", "model", case="llm", name="openai.chat", turn=1, feedback={"liked": True}),
        span("agent", "chain", case="agent", name="weather_agent"),
        span("tool", "tool", case="agent", name="get_weather", parent_run_id=seen["agent"][0]),
        span("agent_llm", "model", case="agent", name="openai.chat",
             parent_run_id=seen["agent"][0]),
        span("error", "tool", case="error", name="flaky_tool", error="tool exploded"),
        span("turn2", "model", case="thread", name="openai.chat", turn=2),
    ]


def scenario_tracer(hh, args):
    return run_tracer(hh, args, "tracer", "http/json")


def scenario_tracer_protobuf(hh, args):
    return run_tracer(hh, args, "tracer_protobuf", "http/protobuf")


SCENARIOS = {"client": scenario_client, "tracer": scenario_tracer,
             "tracer_protobuf": scenario_tracer_protobuf}


def main():
    args = parse_args(__doc__.splitlines()[0], SCENARIOS)
    capture = ErrorCapture(
        logger_prefixes=("honeyhive",),
        patterns=[r'"level": "(WARNING|ERROR|CRITICAL)"'],
    ).install()
    hh = import_sdk("honeyhive")
    capture.watch_sdk_loggers()
    names = selected(args, SCENARIOS)
    runs = []
    for name in names:
        runs += SCENARIOS[name](hh, args)
        capture.watch_sdk_loggers()
    for tracer in OPEN_TRACERS:
        tracer.shutdown()
    finish(capture, "honeyhive", names, runs, project=PROJECT)


if __name__ == "__main__":
    main()
