"""The archive dialect: canonical events as JSON lines, one per event, nothing dropped."""
from collections.abc import Iterator

import orjson

NAME = "jsonl"
SHAPE = "stream"


def lines(events: list[dict], encoded: list[bytes | None] | None = None) -> Iterator[bytes]:
    """Each event's line. ``encoded``: per event, its JSON as ``orjson.dumps`` made it
    already, or None; a line is not made twice."""
    if encoded is None:
        return (orjson.dumps(e, option=orjson.OPT_APPEND_NEWLINE) for e in events)
    return (orjson.dumps(e, option=orjson.OPT_APPEND_NEWLINE) if found is None else found + b"\n"
            for e, found in zip(events, encoded))


def encode_lines(events: list[dict]) -> bytes:
    return b"".join(lines(events))
