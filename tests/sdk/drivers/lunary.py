"""Drive the real ``lunary`` 1.4.41 SDK (Lunary dialect) against a base URL.

SDK APIs used: ``lunary.config(app_id=..., api_url=...)``, ``lunary.track_event`` for
manually tracked LLM runs, the ``@lunary.agent``, ``@lunary.tool`` and ``@lunary.chain``
decorators, ``lunary.identify`` and ``lunary.tags`` context managers,
``lunary.track_feedback``, ``lunary.open_thread`` with ``Thread.track_message`` and
``lunary.parent`` (an LLM run attached to a thread message), and
``lunary.queue.consumer.stop()`` to flush.

Scenarios: ``llm`` (start + end, OpenAI-shaped messages, params, token usage, user,
tags, metadata), ``agent`` (agent -> tool + llm), ``error`` (an llm error via
``track_event`` and a decorated tool that raises), ``feedback`` (an llm run, then
``track_feedback`` on it), ``thread`` (a thread with two turns; the second assistant
answer comes from an llm run under ``lunary.parent``), ``users`` (``identify`` + ``tags``
around a chain).

Run ids in the JSON line are the ids *as sent*: the SDK replaces every ``runId`` and
``parentRunId`` by ``uuid(sha256(id + app_id)[:32])`` (``create_uuid_from_string``).

SDK quirks found in the source:
- ``POST {url}/v1/runs/ingest`` every 0.5 s from a daemon thread, ``Authorization:
  Bearer <key>``, body serialised by jsonpickle with every ``None`` kept as ``null``.
- It only calls ``raise_for_status()``: per-event failures inside a 200
  ``{"results": [...]}`` are never looked at (silently lost). Any non-2xx or network
  error logs ``Error sending events.`` (logger ``lunary.consumer``, ERROR) and *drops*
  the batch: the re-queue line is commented out, so there are no retries and no
  duplicates, but no delivery either.
- ``track_feedback`` sends ``"type": null`` with ``event: "feedback"``.
- Thread messages are ``type: "thread", event: "chat"`` with ``parentRunId`` = the
  hashed thread id; the thread run itself is never started explicitly.
- ``import lunary`` imports langchain-core when present and re-binds ``identify`` and
  the user context variables to its callback-handler versions.
"""

from __future__ import annotations

import contextlib
import uuid

from _support import ErrorCapture, expected_run, finish, import_sdk, parse_args, selected

USER_PROPS = {"name": "Ada", "plan": "pro"}


def sent_id(lunary, run_id, args):
    return str(lunary.utils.create_uuid_from_string(str(run_id) + args.key))


def track_llm(lunary, run_id, question, answer, parent_run_id=None, **start_fields):
    lunary.track_event(
        "llm", "start", run_id, parent_run_id=parent_run_id, name="gpt-4o",
        input=[{"role": "system", "content": "You are terse."},
               {"role": "user", "content": question}],
        params={"temperature": 0.2, "max_tokens": 64}, **start_fields,
    )
    lunary.track_event(
        "llm", "end", run_id, name="gpt-4o",
        output={"role": "assistant", "content": answer},
        token_usage={"prompt": 12, "completion": 3},
    )


def scenario_llm(lunary, args):
    run_id = str(uuid.uuid4())
    track_llm(lunary, run_id, "Hi", "Hello!", user_id="user-llm", user_props=USER_PROPS,
              tags=["conformance", "llm"], metadata={"case": "llm"})
    return [expected_run("llm", "llm", sent_id(lunary, run_id, args), ["start", "end"],
                         name="gpt-4o", user_id="user-llm")]


def scenario_agent(lunary, args):
    ids = {}

    @lunary.tool(name="get_weather")
    def get_weather(city):
        ids["tool"] = lunary.run_manager.current_run_id
        return {"city": city, "temp_c": 21}

    @lunary.agent(name="weather-agent")
    def weather_agent(question):
        ids["agent"] = lunary.run_manager.current_run_id
        weather = get_weather("Paris")
        ids["llm"] = str(uuid.uuid4())
        track_llm(lunary, ids["llm"], f"{question} Data: {weather}", "It is 21 C in Paris.",
                  parent_run_id=ids["agent"])
        return "It is 21 C in Paris."

    weather_agent("Weather in Paris?")
    agent_id = sent_id(lunary, ids["agent"], args)
    return [
        expected_run("agent", "agent", agent_id, ["start", "end"], name="weather-agent"),
        expected_run("agent", "tool", sent_id(lunary, ids["tool"], args), ["start", "end"],
                     name="get_weather", parent_run_id=agent_id),
        expected_run("agent", "llm", sent_id(lunary, ids["llm"], args), ["start", "end"],
                     name="gpt-4o", parent_run_id=agent_id),
    ]


def scenario_error(lunary, args):
    llm_id = str(uuid.uuid4())
    lunary.track_event("llm", "start", llm_id, name="gpt-4o",
                       input=[{"role": "user", "content": "Fail please"}])
    lunary.track_event("llm", "error", llm_id,
                       error={"message": "rate limited", "stack": "Traceback: fake"})
    ids = {}

    @lunary.tool(name="flaky_tool")
    def flaky_tool(text):
        ids["tool"] = lunary.run_manager.current_run_id
        raise RuntimeError("tool exploded")

    with contextlib.suppress(RuntimeError):
        flaky_tool("boom")
    return [
        expected_run("error", "llm", sent_id(lunary, llm_id, args), ["start", "error"],
                     name="gpt-4o"),
        expected_run("error", "tool", sent_id(lunary, ids["tool"], args), ["start", "error"],
                     name="flaky_tool"),
    ]


def scenario_feedback(lunary, args):
    run_id = str(uuid.uuid4())
    track_llm(lunary, run_id, "Rate me", "Sure.")
    lunary.track_feedback(run_id, {"thumb": "up", "comment": "helpful"})
    return [expected_run("feedback", "llm", sent_id(lunary, run_id, args),
                         ["start", "end", "feedback"], name="gpt-4o",
                         feedback={"thumb": "up", "comment": "helpful"})]


def scenario_thread(lunary, args):
    thread = lunary.open_thread(tags=["support"], user_id="user-thread",
                                user_props=USER_PROPS, metadata={"channel": "web"})
    thread_id = sent_id(lunary, thread.id, args)
    runs = []
    for turn, (question, answer) in enumerate([("Hi", "Hello!"), ("Weather?", "Sunny.")], 1):
        user_msg = thread.track_message({"role": "user", "content": question})
        llm_id = str(uuid.uuid4())
        with lunary.parent(user_msg):
            track_llm(lunary, llm_id, question, answer)
        assistant_msg = thread.track_message({"role": "assistant", "content": answer})
        runs += [
            expected_run("thread", "thread", sent_id(lunary, user_msg, args), ["chat"],
                         parent_run_id=thread_id, turn=turn, role="user"),
            expected_run("thread", "llm", sent_id(lunary, llm_id, args), ["start", "end"],
                         parent_run_id=sent_id(lunary, user_msg, args), turn=turn),
            expected_run("thread", "thread", sent_id(lunary, assistant_msg, args), ["chat"],
                         parent_run_id=thread_id, turn=turn, role="assistant"),
        ]
    return runs


def scenario_users(lunary, args):
    ids = {}

    @lunary.chain(name="personalised-chain")
    def personalised_chain(text):
        ids["chain"] = lunary.run_manager.current_run_id
        return text.upper()

    with lunary.identify("user-7", user_props=USER_PROPS), lunary.tags(["vip", "beta"]):
        personalised_chain("hello")
    return [expected_run("users", "chain", sent_id(lunary, ids["chain"], args), ["start", "end"],
                         name="personalised-chain", user_id="user-7", tags=["vip", "beta"])]


SCENARIOS = {"llm": scenario_llm, "agent": scenario_agent, "error": scenario_error,
             "feedback": scenario_feedback, "thread": scenario_thread, "users": scenario_users}


def main():
    args = parse_args(__doc__.splitlines()[0], SCENARIOS)
    capture = ErrorCapture(logger_prefixes=("lunary",),
                           patterns=[r"Error sending events"]).install()
    lunary = import_sdk("lunary")
    capture.watch_sdk_loggers()
    lunary.config(app_id=args.key, api_url=args.base_url)

    names = selected(args, SCENARIOS)
    runs = [run for name in names for run in SCENARIOS[name](lunary, args)]
    lunary.queue.consumer.stop()
    if lunary.queue.events:
        capture.record(f"events still queued after the flush: {lunary.queue.events!r:.300}")
    finish(capture, "lunary", names, runs, app_id=args.key)


if __name__ == "__main__":
    main()
