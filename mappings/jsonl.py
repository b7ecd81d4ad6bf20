"""The archive dialect: canonical events as JSON lines, one per event, nothing dropped."""
import orjson

NAME = "jsonl"
SHAPE = "stream"


def encode_lines(events: list[dict]) -> bytes:
    return b"".join([orjson.dumps(e, option=orjson.OPT_APPEND_NEWLINE) for e in events])
