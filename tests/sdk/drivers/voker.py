"""Drive the real ``voker`` 0.0.15 SDK (Voker dialect) against a base URL.

SDK APIs used: ``VokerClient(base_url=..., api_key=...)``; its OpenAI wrapper
``voker.ai.provider_openai.OpenAI(voker_client=...)`` — a real ``openai`` client whose
HTTP transport is an ``httpx.MockTransport`` answering with canned provider JSON, so no
provider is called but the wrapper records exactly what it records for a real call —
for ``chat.completions.create`` and ``responses.create``; ``client.events.create``
directly for an Anthropic Messages call (the SDK's generic entry point, used with the
provider's own request/response shapes); ``client.people.create``/``update``,
``client.agents.create``, ``client.agent_versions.create``; ``client.close()`` to flush.

Scenarios: ``llm`` (one chat completion with system + user messages and usage),
``agent`` (agent + agent version, a completion answering with a tool call, then the
completion after the tool result), ``thread`` (two turns in one session), ``users``
(person created and updated, then an event for that person), ``responses`` (OpenAI
Responses API), ``anthropic`` (``anthropic-messages`` event). Voker has no error and no
feedback concept (a failing provider call records nothing), so those do not exist here.

Voker sends no event id: each run in the JSON line has ``run_id`` null and names the
session, agent, person, ``api`` and the provider response id that identify the event.

SDK quirks found in the source:
- One background worker thread first calls ``PUT /api/v1/fingerprints`` (with every
  installed package and the git remote/branch/commit of the working directory); if that
  fails the worker thread dies with an exception and every queued and later request is
  silently dropped (``close()`` still returns normally). This driver reports the dead
  thread and anything left in the queue.
- Each request failure is logged at WARNING ``voker: failed to process event`` (logger
  ``voker.api.batch``) and dropped: no retries, so no duplicates.
- ``POST /api/v1/events`` parses the answer as JSON *before* checking the status, so an
  empty or non-JSON 200 is a failure; people/agents/agent-version answers must carry
  ``created_at`` (and ``deprecated_at``, numbers) or parsing fails.
- ``voker.__version__`` says 0.0.3 while the distribution is 0.0.15 (the fingerprint
  reports the distribution's).
"""

from __future__ import annotations

import json
import uuid

import httpx
from _support import ErrorCapture, expected_run, finish, import_sdk, parse_args, selected

AGENT = "weather-agent"
PERSON = "user-vk"
PERSON_PROPS = {"name": "Ada", "plan": "pro"}
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}


class FakeProvider:
    """The provider's side of the HTTP exchange: answers each call with the next canned body."""

    def __init__(self):
        self.replies = []

    def reply(self, body):
        self.replies.append(body)
        return body["id"]

    def __call__(self, request):
        return httpx.Response(200, json=self.replies.pop(0))


def chat_completion(message, finish_reason="stop"):
    return {"id": f"chatcmpl-{uuid.uuid4().hex[:12]}", "object": "chat.completion",
            "created": 1700000000, "model": "gpt-4o-mini",
            "choices": [{"index": 0, "finish_reason": finish_reason, "logprobs": None,
                         "message": {"role": "assistant", **message}}],
            "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}}


def scenario_llm(sdk, args):
    session = f"vk-llm-{uuid.uuid4().hex[:8]}"
    response_id = sdk.provider.reply(chat_completion({"content": "Hello!"}))
    sdk.openai.chat.completions.create(
        voker_agent="support-bot", voker_session=session, voker_person=PERSON,
        model="gpt-4o-mini", temperature=0.2,
        messages=[{"role": "system", "content": "You are terse."},
                  {"role": "user", "content": "Hi"}],
    )
    return [expected_run("llm", "llm", None, ["event"], session=session, agent="support-bot",
                         person=PERSON, api="openai-chat-completions", response_id=response_id)]


def scenario_agent(sdk, args):
    sdk.client.agents.create(agent_name=AGENT, description="Answers weather questions")
    sdk.client.agent_versions.create(agent_name=AGENT, agent_version_name="v1",
                                     description="first version")
    session = f"vk-agent-{uuid.uuid4().hex[:8]}"
    tool_call = {"id": "call_weather_1", "type": "function",
                 "function": {"name": "get_weather", "arguments": json.dumps({"city": "Paris"})}}
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    ids = [sdk.provider.reply(chat_completion({"content": None, "tool_calls": [tool_call]},
                                              "tool_calls"))]
    first = sdk.openai.chat.completions.create(
        voker_agent=AGENT, voker_agent_version="v1", voker_session=session,
        model="gpt-4o-mini", messages=messages, tools=[WEATHER_TOOL])
    messages += [first.choices[0].message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": "call_weather_1", "content": '{"temp_c": 21}'}]
    ids.append(sdk.provider.reply(chat_completion({"content": "It is 21 C in Paris."})))
    sdk.openai.chat.completions.create(
        voker_agent=AGENT, voker_agent_version="v1", voker_session=session,
        model="gpt-4o-mini", messages=messages, tools=[WEATHER_TOOL])
    return [expected_run("agent", "llm", None, ["event"], session=session, agent=AGENT,
                         agent_version="v1", api="openai-chat-completions", response_id=rid,
                         step=step) for step, rid in enumerate(ids, 1)]


def scenario_thread(sdk, args):
    session = f"vk-thread-{uuid.uuid4().hex[:8]}"
    messages = [{"role": "user", "content": "Hi"}]
    runs = []
    for turn, (answer, follow_up) in enumerate([("Hello!", "Weather?"), ("Sunny.", None)], 1):
        response_id = sdk.provider.reply(chat_completion({"content": answer}))
        sdk.openai.chat.completions.create(voker_agent="support-bot", voker_session=session,
                                           voker_person=PERSON, model="gpt-4o-mini",
                                           messages=list(messages))
        runs.append(expected_run("thread", "llm", None, ["event"], session=session,
                                 agent="support-bot", person=PERSON,
                                 api="openai-chat-completions", response_id=response_id, turn=turn))
        if follow_up:
            messages += [{"role": "assistant", "content": answer},
                         {"role": "user", "content": follow_up}]
    return runs


def scenario_users(sdk, args):
    person = f"user-vk-{uuid.uuid4().hex[:8]}"
    sdk.client.people.create(person_id=person, properties=PERSON_PROPS)
    sdk.client.people.update(person_id=person, properties={**PERSON_PROPS, "plan": "enterprise"})
    session = f"vk-users-{uuid.uuid4().hex[:8]}"
    response_id = sdk.provider.reply(chat_completion({"content": "Welcome back, Ada."}))
    sdk.openai.chat.completions.create(voker_agent="support-bot", voker_session=session,
                                       voker_person=person, model="gpt-4o-mini",
                                       messages=[{"role": "user", "content": "Hello again"}])
    return [
        expected_run("users", "person", person, ["create", "update"],
                     properties={**PERSON_PROPS, "plan": "enterprise"}),
        expected_run("users", "llm", None, ["event"], session=session, agent="support-bot",
                     person=person, api="openai-chat-completions", response_id=response_id),
    ]


def scenario_responses(sdk, args):
    session = f"vk-responses-{uuid.uuid4().hex[:8]}"
    response_id = sdk.provider.reply({
        "id": f"resp_{uuid.uuid4().hex[:12]}", "object": "response", "created_at": 1700000000,
        "status": "completed", "model": "gpt-4o-mini", "parallel_tool_calls": True,
        "tool_choice": "auto", "tools": [],
        "output": [{"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
                    "content": [{"type": "output_text", "text": "Hello!", "annotations": []}]}],
        "usage": {"input_tokens": 5, "output_tokens": 2, "total_tokens": 7,
                  "input_tokens_details": {"cached_tokens": 0},
                  "output_tokens_details": {"reasoning_tokens": 0}},
    })
    sdk.openai.responses.create(voker_agent="support-bot", voker_session=session,
                                voker_person=PERSON, model="gpt-4o-mini", input="Hi")
    return [expected_run("responses", "llm", None, ["event"], session=session, agent="support-bot",
                         person=PERSON, api="openai-responses", response_id=response_id)]


def scenario_anthropic(sdk, args):
    session = f"vk-anthropic-{uuid.uuid4().hex[:8]}"
    response_id = f"msg_{uuid.uuid4().hex[:12]}"
    sdk.client.events.create(
        event_name="llm", session=session, agent="support-bot", person=PERSON,
        properties={
            "api": "anthropic-messages",
            "inputs": {"model": "claude-sonnet-4-5", "max_tokens": 256, "system": "You are terse.",
                       "messages": [{"role": "user", "content": "Hi"}]},
            "output": {"id": response_id, "type": "message", "role": "assistant",
                       "model": "claude-sonnet-4-5", "stop_reason": "end_turn",
                       "stop_sequence": None,
                       "content": [{"type": "text", "text": "Hello!"}],
                       "usage": {"input_tokens": 8, "output_tokens": 3}},
        },
    )
    return [expected_run("anthropic", "llm", None, ["event"], session=session, agent="support-bot",
                         person=PERSON, api="anthropic-messages", response_id=response_id)]


SCENARIOS = {"llm": scenario_llm, "agent": scenario_agent, "thread": scenario_thread,
             "users": scenario_users, "responses": scenario_responses,
             "anthropic": scenario_anthropic}


class Sdk:
    def __init__(self, args):
        voker = import_sdk("voker")
        provider_openai = import_sdk("voker.ai.provider_openai")
        self.client = voker.VokerClient(base_url=args.base_url, api_key=args.key)
        self.provider = FakeProvider()
        self.openai = provider_openai.OpenAI(
            voker_client=self.client, api_key="sk-fake", base_url="http://provider.invalid/v1",
            max_retries=0, http_client=httpx.Client(transport=httpx.MockTransport(self.provider)),
        )


def main():
    args = parse_args(__doc__.splitlines()[0], SCENARIOS)
    capture = ErrorCapture(logger_prefixes=("voker",)).install()
    sdk = Sdk(args)
    names = selected(args, SCENARIOS)
    runs = [run for name in names for run in SCENARIOS[name](sdk, args)]
    sdk.client.close()
    if not sdk.client._queue.empty():
        capture.record(
            f"{sdk.client._queue.qsize()} item(s) still queued after close(): worker gone")
    finish(capture, "voker", names, runs)


if __name__ == "__main__":
    main()
