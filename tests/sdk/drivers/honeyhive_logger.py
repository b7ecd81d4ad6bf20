"""Drive the real ``honeyhive-logger`` 0.0.11 SDK (HoneyHive dialect) against a base URL.

It runs in the ``honeyhive`` venv (the two packages coexist). SDK APIs used, all with
``server_url=`` (the only way to point it elsewhere: its default argument is the
public URL, so ``HH_API_URL`` is never read): ``honeyhive_logger.start`` (``POST
/session/start``), ``log`` (``POST /events``) and ``update`` (``PUT /events``).

Scenarios, each in its own session started with user properties and metadata:
``llm`` (one model event, then the session's outputs), ``agent`` (chain, tool and model
events), ``feedback`` (a model event, then feedback and metrics on it), ``thread`` (two
model turns with a growing chat history). The logger has no error field, no parent id
and no event id of its own, so there is no error scenario and every event hangs off
the session; the JSON line reports the event ids the server answered with.

SDK quirks found in the source:
- Failures never raise (unless ``verbose=True``): it prints ``HoneyHive: Failed to
  start session|log event|update event. Please enable verbose mode to debug.`` to
  stdout and returns ``None``; a failed ``start`` leaves the app with no session id,
  and a later ``log`` without one invents a random session id.
- Every call retries ``urllib.error.URLError`` — which includes ``HTTPError``, so any
  4xx/5xx answer — up to 3 more times with 1 s, 2 s, 4 s backoff: duplicates of events
  the server may already have stored, with no event id to recognise them.
- ``start`` requires ``session_id`` in the answer; ``log`` requires ``event_id``; ``update``
  only needs a 200. It prints ``HoneyHive is initialized`` (ANSI orange) to stdout.
- It sends ``Connection: close`` and ``Accept-Encoding: identity`` (plain urllib).
"""

from __future__ import annotations

import uuid

from _support import ErrorCapture, expected_run, finish, import_sdk, parse_args, selected

PROJECT = "rosetta-conformance"
USER_PROPS = {"user_id": "user-hhl", "plan": "pro"}
MODEL_CONFIG = {"model": "gpt-4o-mini", "provider": "openai", "temperature": 0.2}


class Session:
    def __init__(self, hhl, args, scenario):
        self.hhl, self.args, self.scenario = hhl, args, scenario
        self.common = {"api_key": args.key, "server_url": args.base_url}
        self.id = hhl.start(project=PROJECT, session_name=f"conformance-{scenario}", source="dev",
                            session_id=str(uuid.uuid4()), config={"app_version": "1.0"},
                            inputs={"case": scenario}, metadata={"case": scenario},
                            user_properties=USER_PROPS, **self.common)
        self.runs = [expected_run(scenario, "session", self.id, ["start"], session_id=self.id,
                                  user_properties=USER_PROPS)]

    def log(self, kind, name, **fields):
        event_id = self.hhl.log(project=PROJECT, source="dev", session_id=self.id,
                                event_type=kind, event_name=name, **fields, **self.common)
        self.runs.append(expected_run(self.scenario, kind, event_id, ["create"],
                                      session_id=self.id, name=name))
        return event_id

    def model(self, history, answer):
        return self.log("model", "openai.chat", config=MODEL_CONFIG,
                        inputs={"chat_history": history},
                        outputs={"role": "assistant", "content": answer},
                        metadata={"prompt_tokens": 12, "completion_tokens": 3}, duration_ms=250)

    def update(self, event_id, **fields):
        self.hhl.update(event_id=event_id, **fields, **self.common)
        run = next(r for r in self.runs if r["run_id"] == event_id)
        run["phases"].append("update")
        if "feedback" in fields:
            run["feedback"] = fields["feedback"]


def scenario_llm(hhl, args):
    session = Session(hhl, args, "llm")
    session.model([{"role": "user", "content": "Hi"}], "Hello!")
    session.update(session.id, outputs={"answer": "Hello!"}, metadata={"finished": True})
    return session.runs


def scenario_agent(hhl, args):
    session = Session(hhl, args, "agent")
    session.log("chain", "weather_agent", inputs={"question": "Weather in Paris?"},
                outputs={"answer": "It is 21 C."}, duration_ms=400)
    session.log("tool", "get_weather", inputs={"city": "Paris"}, outputs={"temp_c": 21},
                duration_ms=50)
    session.model([{"role": "user", "content": "Weather in Paris? Data: 21 C"}], "It is 21 C.")
    return session.runs


def scenario_feedback(hhl, args):
    session = Session(hhl, args, "feedback")
    event_id = session.model([{"role": "user", "content": "Rate me"}], "Sure.")
    session.update(event_id, feedback={"rating": 5, "comment": "helpful"}, metrics={"tokens": 15})
    return session.runs


def scenario_thread(hhl, args):
    session = Session(hhl, args, "thread")
    history = [{"role": "user", "content": "Hi"}]
    session.model(history, "Hello!")
    history = history + [{"role": "assistant", "content": "Hello!"},
                         {"role": "user", "content": "Weather?"}]
    session.model(history, "Sunny.")
    for turn, run in enumerate(session.runs[1:], 1):
        run["turn"] = turn
    return session.runs


SCENARIOS = {"llm": scenario_llm, "agent": scenario_agent, "feedback": scenario_feedback,
             "thread": scenario_thread}


def main():
    args = parse_args(__doc__.splitlines()[0], SCENARIOS)
    capture = ErrorCapture(patterns=[r"HoneyHive: Failed to"]).install()
    hhl = import_sdk("honeyhive_logger")
    names = selected(args, SCENARIOS)
    runs = [run for name in names for run in SCENARIOS[name](hhl, args)]
    finish(capture, "honeyhive_logger", names, runs, project=PROJECT)


if __name__ == "__main__":
    main()
