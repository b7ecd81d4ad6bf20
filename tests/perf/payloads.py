"""Request bodies shaped like real SDK traffic, as byte templates.

Each template carries the marker ``MARK`` wherever an id must differ between requests;
the load generator replaces it with a request counter (one ``bytes.replace``), so every
request carries new events and texts of its own (only the system prompt repeats), and
neither dedupe nor the remembered token counts short-circuit the work.
"""
import orjson

MARK = b"@@@@@@@@@@"
_ID = MARK.decode()
KINDS = ("lunary", "honeyhive", "voker", "otlp")
PATHS = {
    "lunary": ("POST", "/v1/runs/ingest"),
    "honeyhive": ("POST", "/events/batch"),
    "voker": ("POST", "/api/v1/events"),
    "otlp": ("POST", "/v1/traces"),
}
_WORDS = "the quick brown fox jumps over the lazy dog while the model thinks about tokens "


def _text(size: int, n: int = 0) -> str:
    """Text unique to the request and the event (the system prompt is the only text that repeats)."""
    text = f"{_ID}/{n} " + _WORDS * (size // len(_WORDS) + 1)
    return text[:max(size, 16)]


def _messages(size: int, n: int = 0) -> list[dict]:
    return [{"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": _text(size, n)}]


def _lunary(batch: int, size: int) -> list[dict]:
    """Half llm starts carrying the prompt, half their ends with the reply and usage."""
    events = []
    for i in range(batch):
        run = f"{_ID}-{i // 2:04d}"
        if i % 2 == 0:
            events.append({"type": "llm", "event": "start", "runId": run, "name": "gpt-4o-mini",
                           "timestamp": "2026-01-05T10:00:00.000Z", "input": _messages(size - 400, i),
                           "params": {"temperature": 0.2}, "userId": "user-7", "tags": ["bench"],
                           "metadata": {"feature": "chat"}})
        else:
            events.append({"type": "llm", "event": "end", "runId": run, "timestamp": "2026-01-05T10:00:01.250Z",
                           "output": {"role": "assistant", "content": _text(size - 300, i)},
                           "tokensUsage": {"prompt": 120, "completion": 80}})
    return events


def _honeyhive(batch: int, size: int) -> dict:
    events = [{"project": "demo", "source": "prod", "event_name": "gpt", "event_type": "model",
               "event_id": f"00000000-0000-4000-8000-{_ID}{i:02d}", "session_id": f"00000000-1111-4000-8000-{_ID}00",
               "config": {"model": "gpt-4o", "provider": "openai", "hyperparameters": {"temperature": 0}},
               "inputs": {"chat_history": _messages(size // 2 - 300, i)},
               "outputs": {"role": "assistant", "content": _text(size // 2 - 300, i)},
               "start_time": 1767607200000 + i, "end_time": 1767607200500 + i, "duration": 500.0,
               "metrics": {"latency_ms": 500}, "metadata": {"n": i}} for i in range(batch)]
    return {"events": events, "is_single_session": False}


def _voker(size: int) -> dict:
    return {"event_name": "llm", "fingerprint_id": "FINGERPRINT", "session": f"s-{_ID}",
            "properties": {"api": "openai-chat-completions",
                           "inputs": {"model": "gpt-4o-mini", "messages": _messages(size // 2 - 200)},
                           "output": {"id": f"chatcmpl-{_ID}", "object": "chat.completion", "created": 1767607200,
                                      "model": "gpt-4o-mini",
                                      "choices": [{"index": 0, "finish_reason": "stop",
                                                   "message": {"role": "assistant", "content": _text(size // 2 - 200)}}],
                                      "usage": {"prompt_tokens": 120, "completion_tokens": 80, "total_tokens": 200}}}}


def _otlp(batch: int, size: int) -> dict:
    def attr(key, value):
        kind = "intValue" if isinstance(value, int) else "stringValue"
        return {"key": key, "value": {kind: value}}

    spans = [{"traceId": f"{_ID}{i:022d}", "spanId": f"{i:06d}{_ID}", "name": "chat gpt-4o-mini", "kind": 3,
              "startTimeUnixNano": "1767607200000000000", "endTimeUnixNano": "1767607201250000000",
              "attributes": [attr("gen_ai.operation.name", "chat"), attr("gen_ai.request.model", "gpt-4o-mini"),
                             attr("gen_ai.usage.input_tokens", 120), attr("gen_ai.usage.output_tokens", 80),
                             attr("gen_ai.prompt.0.role", "user"), attr("gen_ai.prompt.0.content", _text(size // 2 - 300, i)),
                             attr("gen_ai.completion.0.role", "assistant"),
                             attr("gen_ai.completion.0.content", _text(size // 2 - 300, i))]} for i in range(batch)]
    return {"resourceSpans": [{"resource": {"attributes": [attr("service.name", "bench")]},
                               "scopeSpans": [{"scope": {"name": "bench"}, "spans": spans}]}]}


def template(kind: str, batch: int = 10, size: int = 1024) -> tuple[str, str, bytes, int]:
    """(method, path, body template, events per request); voker sends one event per request."""
    method, path = PATHS[kind]
    if kind == "lunary":
        body, events = {"events": _lunary(batch, size)}, batch
    elif kind == "honeyhive":
        body, events = _honeyhive(batch, size), batch
    elif kind == "voker":
        body, events = _voker(size), 1
    else:
        body, events = _otlp(batch, size), batch
    return method, path, orjson.dumps(body), events
