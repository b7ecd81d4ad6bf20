"""Drive the plain OpenTelemetry SDK (GenAI semantic conventions over OTLP/HTTP) against a base URL.

No vendor SDK: this is an app instrumented by hand with ``opentelemetry-sdk`` 1.45.2,
exporting with ``opentelemetry-exporter-otlp-proto-http`` (protobuf) to
``{url}/v1/traces`` with ``Authorization: Bearer <key>``, through a
``BatchSpanProcessor``; ``force_flush()`` then ``shutdown()`` deliver everything.
Spans follow the GenAI conventions: ``chat <model>`` (CLIENT) with
``gen_ai.operation.name``, ``gen_ai.provider.name`` (and the older ``gen_ai.system``),
request/response model, ``gen_ai.response.id``/``finish_reasons``,
``gen_ai.usage.input_tokens``/``output_tokens``, ``gen_ai.system_instructions``,
``gen_ai.input.messages``/``gen_ai.output.messages`` as JSON strings of role + parts;
``invoke_agent <name>`` and ``execute_tool <name>`` spans with ``gen_ai.agent.*`` and
``gen_ai.tool.*``; failures as span status ERROR plus ``error.type``.

Scenarios: ``llm`` (one chat span with a user id), ``agent`` (invoke_agent -> chat with
a tool call -> execute_tool -> chat), ``error`` (a chat span that failed with a rate
limit), ``feedback`` (a ``gen_ai.evaluation.result`` event on a chat span), ``thread``
(two chat spans sharing ``gen_ai.conversation.id`` and ``session.id``). User properties
have no convention; only ``user.id`` is set.

SDK quirks found in the source:
- Any 2xx/3xx answer counts as success; the body is never read.
- 429/502/503/504 and connection errors are retried with exponential backoff (honouring
  ``Retry-After``; a connection error is first retried once at once), each retry logged
  at WARNING ``Transient error ... retrying``: a request the server did process before a
  lost answer arrives again (duplicates). Other statuses log ERROR ``Failed to export
  spans batch code: N`` and drop the batch. All on ``opentelemetry.exporter.*`` loggers,
  which propagate to the root.
"""

from __future__ import annotations

import json
import uuid
from contextlib import contextmanager

from _support import ErrorCapture, expected_run, finish, parse_args, selected
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

MODEL = "gpt-4o-mini"


def text_message(role, text, **extra):
    return {"role": role, "parts": [{"type": "text", "content": text}], **extra}


def ids(span):
    context = span.get_span_context()
    return format(context.span_id, "016x"), format(context.trace_id, "032x")


@contextmanager
def chat(tracer, messages, answer, attributes=None, output_message=None):
    """A ``chat <model>`` span for one provider call, open while the block runs."""
    finish_reason = "tool_call" if output_message else "stop"
    with tracer.start_as_current_span(f"chat {MODEL}", kind=SpanKind.CLIENT) as span:
        span.set_attributes({
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
            "gen_ai.system": "openai", "gen_ai.request.model": MODEL,
            "gen_ai.request.temperature": 0.2, "gen_ai.request.max_tokens": 256,
            "gen_ai.response.model": MODEL,
            "gen_ai.response.id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
            "gen_ai.response.finish_reasons": [finish_reason],
            "gen_ai.usage.input_tokens": 12, "gen_ai.usage.output_tokens": 3,
            "gen_ai.system_instructions": json.dumps(
                [{"type": "text", "content": "You are terse."}]),
            "gen_ai.input.messages": json.dumps(messages),
            "gen_ai.output.messages": json.dumps([output_message or text_message(
                "assistant", answer, finish_reason=finish_reason)]),
            **(attributes or {}),
        })
        yield span


def span_run(span, scenario, kind, **fields):
    span_id, trace_id = ids(span)
    parent = format(span.parent.span_id, "016x") if span.parent else None
    return expected_run(scenario, kind, span_id, ["span"], trace_id=trace_id,
                        parent_run_id=parent, name=span.name, **fields)


def chat_run(span, scenario, **fields):
    return span_run(span, scenario, "llm", response_id=span.attributes["gen_ai.response.id"],
                    **fields)


def record_chat(tracer, scenario, messages, answer, attributes=None, output_message=None, **fields):
    with chat(tracer, messages, answer, attributes, output_message) as span:
        pass
    return chat_run(span, scenario, **fields)


def scenario_llm(tracer, args):
    return [record_chat(tracer, "llm", [text_message("user", "Hi")], "Hello!",
                        {"user.id": "user-otel"}, user_id="user-otel")]


def scenario_agent(tracer, args):
    with tracer.start_as_current_span("invoke_agent weather-agent") as agent:
        agent.set_attributes({"gen_ai.operation.name": "invoke_agent",
                              "gen_ai.provider.name": "openai",
                              "gen_ai.agent.name": "weather-agent", "gen_ai.agent.id": "agent-1",
                              "gen_ai.request.model": MODEL})
        agent_id, _ = ids(agent)
        call = {"type": "tool_call", "id": "call_weather_1", "name": "get_weather",
                "arguments": {"city": "Paris"}}
        question = [text_message("user", "Weather in Paris?")]
        first = record_chat(tracer, "agent", question, None,
                            output_message={"role": "assistant", "parts": [call],
                                            "finish_reason": "tool_call"}, step=1)
        with tracer.start_as_current_span("execute_tool get_weather") as tool:
            tool.set_attributes({"gen_ai.operation.name": "execute_tool",
                                 "gen_ai.tool.name": "get_weather", "gen_ai.tool.type": "function",
                                 "gen_ai.tool.call.id": "call_weather_1",
                                 "gen_ai.tool.call.arguments": json.dumps({"city": "Paris"}),
                                 "gen_ai.tool.call.result": json.dumps({"temp_c": 21})})
        history = question + [
            {"role": "assistant", "parts": [call]},
            {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_weather_1",
                                        "response": {"temp_c": 21}}]},
        ]
        second = record_chat(tracer, "agent", history, "It is 21 C in Paris.", step=2)
    return [span_run(agent, "agent", "agent"), first, span_run(tool, "agent", "tool"), second]


def scenario_error(tracer, args):
    with chat(tracer, [text_message("user", "Fail please")], None) as span:
        span.set_attribute("error.type", "RateLimitError")
        span.record_exception(RuntimeError("429 Too Many Requests"))
        span.set_status(Status(StatusCode.ERROR, "429 Too Many Requests"))
    return [chat_run(span, "error", error="RateLimitError")]


def scenario_feedback(tracer, args):
    with chat(tracer, [text_message("user", "Rate me")], "Sure.") as span:
        span.add_event("gen_ai.evaluation.result", {
            "gen_ai.evaluation.name": "user_rating", "gen_ai.evaluation.score.value": 1.0,
            "gen_ai.evaluation.score.label": "thumbs_up",
            "gen_ai.evaluation.explanation": "helpful"})
    return [chat_run(span, "feedback",
                     feedback={"name": "user_rating", "score": 1.0, "label": "thumbs_up"})]


def scenario_thread(tracer, args):
    conversation = f"conv-{uuid.uuid4().hex[:8]}"
    thread = {"gen_ai.conversation.id": conversation, "session.id": conversation,
              "user.id": "user-otel"}
    history = [text_message("user", "Hi")]
    first = record_chat(tracer, "thread", history, "Hello!", thread, session_id=conversation,
                        turn=1)
    history += [text_message("assistant", "Hello!"), text_message("user", "Weather?")]
    second = record_chat(tracer, "thread", history, "Sunny.", thread, session_id=conversation,
                         turn=2)
    return [first, second]


SCENARIOS = {"llm": scenario_llm, "agent": scenario_agent, "error": scenario_error,
             "feedback": scenario_feedback, "thread": scenario_thread}


def main():
    args = parse_args(__doc__.splitlines()[0], SCENARIOS)
    capture = ErrorCapture(logger_prefixes=("opentelemetry",)).install()
    provider = TracerProvider(resource=Resource.create({"service.name": "rosetta-conformance"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(
        endpoint=f"{args.base_url}/v1/traces", headers={"Authorization": f"Bearer {args.key}"})))
    tracer = provider.get_tracer("rosetta.conformance.genai")
    names = selected(args, SCENARIOS)
    runs = [run for name in names for run in SCENARIOS[name](tracer, args)]
    if not provider.force_flush():
        capture.record("TracerProvider.force_flush() timed out")
    provider.shutdown()
    finish(capture, "otel", names, runs, service_name="rosetta-conformance")


if __name__ == "__main__":
    main()
