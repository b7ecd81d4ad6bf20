"""Drive the real ``llmonitor`` 0.0.51 SDK (LLMonitor v0 dialect) against a base URL.

SDK APIs used: ``LLMONITOR_API_URL`` / ``LLMONITOR_APP_ID`` (read at import time: the
consumer thread is built when ``llmonitor`` is imported, so the environment is set
first), ``llmonitor.track_event`` for manually tracked LLM runs, the ``@llmonitor.agent``,
``@llmonitor.tool`` and ``@llmonitor.chain`` decorators, the ``llmonitor.users.identify``
(not exported at top level) and ``llmonitor.tags`` context managers, and
``llmonitor.consumer.stop()`` to flush.

Scenarios: ``llm`` (start + end with v0 chat messages, token usage, user, tags),
``agent`` (agent -> tool + llm), ``error`` (an llm error via ``track_event`` and a
decorated chain that raises), ``users`` (``identify`` + ``tags`` around a chain).
The SDK has no feedback and no thread API, so those scenarios do not exist here.

SDK quirks found in the source:
- It sends ``POST {url}/api/report`` every 0.5 s from a daemon thread, with no auth
  header; the app id travels in each event's ``app``.
- A non-200 answer prints ``Error sending events`` to *stdout* and drops the batch.
- A network error prints nothing (unless ``LLMONITOR_VERBOSE``) and re-queues the whole
  batch, so a batch that reached the server but whose answer was lost is sent again
  (duplicates). The batch is re-queued as *one element* (``append(batch)``), so the
  retry sends a nested array: ``{"events": [[e1, e2], e3]}``. After ``stop()`` a
  re-queued batch is never retried: it is lost silently. This driver reports anything
  still queued after the flush as an error.
- Decorated runs use the OpenTelemetry span id (an int, sent as a decimal string) as
  ``runId``; ``import llmonitor`` installs its own global ``TracerProvider``.
"""

from __future__ import annotations

import contextlib
import os
import uuid

from _support import ErrorCapture, expected_run, finish, import_sdk, parse_args, selected
from opentelemetry import trace

USER_PROPS = {"name": "Ada", "plan": "pro"}


def scenario_llm(llmonitor, args):
    run_id = str(uuid.uuid4())
    llmonitor.track_event(
        "llm", "start", run_id, name="gpt-4o",
        input=[{"role": "system", "text": "You are terse."}, {"role": "user", "text": "Hi"}],
        user_id="user-llm", user_props=USER_PROPS, tags=["conformance", "llm"],
        extra={"temperature": 0.2}, metadata={"case": "llm"},
    )
    llmonitor.track_event(
        "llm", "end", run_id, name="gpt-4o",
        output={"role": "ai", "text": "Hello!"}, token_usage={"prompt": 12, "completion": 3},
    )
    return [expected_run("llm", "llm", run_id, ["start", "end"], name="gpt-4o", user_id="user-llm")]


def scenario_agent(llmonitor, args):
    ids = {}

    @llmonitor.tool(name="get_weather")
    def get_weather(city):
        ids["tool"] = str(trace.get_current_span().context.span_id)
        return {"city": city, "temp_c": 21}

    @llmonitor.agent(name="weather-agent")
    def weather_agent(question):
        ids["agent"] = str(trace.get_current_span().context.span_id)
        weather = get_weather("Paris")
        ids["llm"] = str(uuid.uuid4())
        llmonitor.track_event(
            "llm", "start", ids["llm"], parent_run_id=ids["agent"], name="gpt-4o-mini",
            input=[{"role": "user", "text": f"{question} Data: {weather}"}],
        )
        llmonitor.track_event(
            "llm", "end", ids["llm"], name="gpt-4o-mini",
            output={"role": "ai", "text": "It is 21 C in Paris."},
            token_usage={"prompt": 20, "completion": 8},
        )
        return "It is 21 C in Paris."

    weather_agent("Weather in Paris?")
    return [
        expected_run("agent", "agent", ids["agent"], ["start", "end"], name="weather-agent"),
        expected_run("agent", "tool", ids["tool"], ["start", "end"], name="get_weather",
                     parent_run_id=ids["agent"]),
        expected_run("agent", "llm", ids["llm"], ["start", "end"], name="gpt-4o-mini",
                     parent_run_id=ids["agent"]),
    ]


def scenario_error(llmonitor, args):
    llm_id = str(uuid.uuid4())
    llmonitor.track_event("llm", "start", llm_id, name="gpt-4o",
                          input=[{"role": "user", "text": "Fail please"}])
    llmonitor.track_event("llm", "error", llm_id,
                          error={"message": "rate limited", "stack": "Traceback: fake"})
    ids = {}

    @llmonitor.chain(name="failing-chain")
    def failing_chain(text):
        ids["chain"] = str(trace.get_current_span().context.span_id)
        raise RuntimeError("chain exploded")

    with contextlib.suppress(RuntimeError):
        failing_chain("boom")
    return [
        expected_run("error", "llm", llm_id, ["start", "error"], name="gpt-4o"),
        expected_run("error", "chain", ids["chain"], ["start", "error"], name="failing-chain"),
    ]


def scenario_users(llmonitor, args):
    ids = {}

    @llmonitor.chain(name="personalised-chain")
    def personalised_chain(text):
        ids["chain"] = str(trace.get_current_span().context.span_id)
        return text.upper()

    with llmonitor.users.identify("user-7", user_props=USER_PROPS), llmonitor.tags(["vip", "beta"]):
        personalised_chain("hello")
    return [expected_run("users", "chain", ids["chain"], ["start", "end"],
                         name="personalised-chain", user_id="user-7", tags=["vip", "beta"])]


SCENARIOS = {"llm": scenario_llm, "agent": scenario_agent, "error": scenario_error,
             "users": scenario_users}


def main():
    args = parse_args(__doc__.splitlines()[0], SCENARIOS)
    capture = ErrorCapture(
        logger_prefixes=("llmonitor",),
        patterns=[r"Error sending events", r"\[LLMonitor\]"],
    ).install()
    os.environ["LLMONITOR_API_URL"] = args.base_url
    os.environ["LLMONITOR_APP_ID"] = args.key
    llmonitor = import_sdk("llmonitor")

    names = selected(args, SCENARIOS)
    runs = [run for name in names for run in SCENARIOS[name](llmonitor, args)]
    llmonitor.consumer.stop()
    if llmonitor.queue.events:
        capture.record(f"events still queued after the flush: {llmonitor.queue.events!r:.300}")
    finish(capture, "llmonitor", names, runs, app_id=args.key)


if __name__ == "__main__":
    main()
