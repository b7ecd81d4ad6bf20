"""Provider payloads (OpenAI, Anthropic, Gemini request kwargs and responses) to canonical and back.

Voker ships the provider's own request and response; these converters pull model,
messages, params, output and usage out of each API's shape. A part of the wrong type
(a usage block that is not an object, a token count that is not a number) is read as
absent: the whole payload stays in the event's ``raw``.
"""
import math
from typing import Any

from . import messages

APIS = ("openai-chat-completions", "openai-responses", "anthropic-messages",
        "anthropic-beta-messages", "gemini-models", "gemini-interactions")


def provider_of(api: str) -> str:
    return api.split("-", 1)[0]


def _count(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return int(value) if 0 <= value <= 2**63 - 1 else None


def _object(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _usage(prompt, completion, cached=None, total=None) -> dict | None:
    prompt, completion, cached, total = _count(prompt), _count(completion), _count(cached), _count(total)
    if prompt is None and completion is None:
        return None
    return {"prompt_tokens": prompt, "completion_tokens": completion, "cached_prompt_tokens": cached,
            "total_tokens": total if total is not None else (prompt or 0) + (completion or 0), "estimated": False}


def _get(obj: Any, *path: Any) -> Any:
    for key in path:
        if isinstance(obj, dict):
            obj = obj.get(key)
        elif isinstance(obj, list) and isinstance(key, int) and -len(obj) <= key < len(obj):
            obj = obj[key]
        else:
            return None
    return obj


def _openai_chat(inputs: dict, output: dict) -> dict:
    usage = _object(output.get("usage"))
    return {
        "input": messages.normalize(inputs.get("messages")),
        "params": {k: v for k, v in inputs.items() if k not in ("model", "messages")},
        "output": messages.normalize(_get(output, "choices", 0, "message")),
        "usage": _usage(usage.get("prompt_tokens"), usage.get("completion_tokens"),
                        _get(usage, "prompt_tokens_details", "cached_tokens"), usage.get("total_tokens")),
    }


def _responses_items(value: Any) -> list:
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    items = []
    for item in _list(value):
        if messages.is_message(item):
            items.append(messages.normalize_message(item))
        elif isinstance(item, dict) and item.get("type") == "function_call":
            items.append({"role": "assistant", "content": None, "tool_calls": [
                {"id": item.get("call_id"), "type": "function",
                 "function": {"name": item.get("name"), "arguments": item.get("arguments", "")}}]})
        elif isinstance(item, dict) and item.get("type") == "function_call_output":
            items.append({"role": "tool", "tool_call_id": item.get("call_id"), "content": item.get("output")})
        else:
            items.append(item)
    return items


def _openai_responses(inputs: dict, output: dict) -> dict:
    history = _responses_items(inputs.get("input"))
    if isinstance(inputs.get("instructions"), str):
        history.insert(0, {"role": "system", "content": inputs["instructions"]})
    answer = _responses_items(output.get("output"))
    usage = _object(output.get("usage"))
    return {
        "input": history,
        "params": {k: v for k, v in inputs.items() if k not in ("model", "input", "instructions")},
        "output": answer[0] if len(answer) == 1 else answer,
        "usage": _usage(usage.get("input_tokens"), usage.get("output_tokens"),
                        _get(usage, "input_tokens_details", "cached_tokens"), usage.get("total_tokens")),
    }


def _anthropic(inputs: dict, output: dict) -> dict:
    history = list(_list(inputs.get("messages")))
    system = inputs.get("system")
    if system:
        history.insert(0, {"role": "system", "content": system})
    usage = _object(output.get("usage"))
    return {
        "input": messages.normalize(history),
        "params": {k: v for k, v in inputs.items() if k not in ("model", "messages", "system")},
        "output": messages.normalize({"role": output.get("role", "assistant"), "content": output.get("content") or []}),
        "usage": _usage(usage.get("input_tokens"), usage.get("output_tokens"), usage.get("cache_read_input_tokens")),
    }


def _gemini_content(content: dict, default_role: str) -> dict:
    role = content.get("role")
    return messages.normalize_message({"role": role if isinstance(role, str) else default_role,
                                       "parts": _list(content.get("parts"))})


def _gemini(inputs: dict, output: dict) -> dict:
    contents = inputs.get("contents")
    if isinstance(contents, str):
        contents = [{"role": "user", "parts": [{"text": contents}]}]
    history = [_gemini_content(c, "user") for c in _list(contents) if isinstance(c, dict)]
    config = _object(inputs.get("config"))
    system = config.get("system_instruction") or config.get("systemInstruction")
    if isinstance(system, str):
        history.insert(0, {"role": "system", "content": system})
    elif isinstance(system, dict):
        history.insert(0, _gemini_content({"parts": system.get("parts")}, "system"))
    candidate = _object(_get(output, "candidates", 0, "content"))
    usage = _object(output.get("usage_metadata") or output.get("usageMetadata"))
    return {
        "input": history,
        "params": {k: v for k, v in config.items() if k not in ("system_instruction", "systemInstruction")},
        "output": _gemini_content(candidate, "model"),
        "usage": _usage(usage.get("prompt_token_count", usage.get("promptTokenCount")),
                        usage.get("candidates_token_count", usage.get("candidatesTokenCount")),
                        usage.get("cached_content_token_count", usage.get("cachedContentTokenCount")),
                        usage.get("total_token_count", usage.get("totalTokenCount"))),
    }


def _generic(inputs: dict, output: dict) -> dict:
    return {"input": inputs, "params": {}, "output": output, "usage": None}


_BY_API = {
    "openai-chat-completions": _openai_chat, "openai-responses": _openai_responses,
    "anthropic-messages": _anthropic, "anthropic-beta-messages": _anthropic,
    "gemini-models": _gemini, "gemini-interactions": _generic,
}


def to_canonical(api: str, inputs: dict, output: dict) -> dict:
    """``{input, params, output, usage, model}`` from one provider call."""
    out = _BY_API[api](inputs, output)
    names = (output.get("model"), output.get("model_version"), output.get("modelVersion"), inputs.get("model"))
    out["model"] = next((n for n in names if isinstance(n, str) and n), None)
    return out


def to_openai_chat(event: dict) -> dict:
    """A canonical LLM run as OpenAI chat-completions request kwargs and response."""
    history = event.get("input")
    if not messages.is_message_list(history):
        history = [{"role": "user", "content": messages.text_of(history) if not isinstance(history, str) else history}]
    inputs = {"model": event.get("model") or event.get("name") or "unknown", "messages": history, **(event.get("params") or {})}
    answer = event.get("output")
    if isinstance(answer, list) and answer and messages.is_message(answer[-1]):
        answer = answer[-1]
    if not messages.is_message(answer):
        answer = {"role": "assistant", "content": answer if isinstance(answer, str) or answer is None else messages.text_of(answer)}
    usage = event.get("usage") or {}
    output = {
        "id": f"chatcmpl-{event['run_id']}", "object": "chat.completion", "model": inputs["model"],
        "choices": [{"index": 0, "message": answer, "finish_reason": "error" if event.get("error") else "stop"}],
        "usage": {"prompt_tokens": usage.get("prompt_tokens") or 0, "completion_tokens": usage.get("completion_tokens") or 0,
                  "total_tokens": usage.get("total_tokens") or 0},
    }
    return {"api": "openai-chat-completions", "inputs": inputs, "output": output}
