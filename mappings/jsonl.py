"""The archive dialect: canonical events as JSON lines, one per event, nothing dropped."""
from collections.abc import Iterator

import orjson

NAME = "jsonl"
SHAPE = "stream"


def lines(events: list[dict]) -> Iterator[bytes]:
    return (orjson.dumps(e, option=orjson.OPT_APPEND_NEWLINE) for e in events)


def encode_lines(events: list[dict]) -> bytes:
    return b"".join(lines(events))
