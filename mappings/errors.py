"""The one error a mapping raises: a payload that cannot be translated.

It names the offending field with a dotted path (``events[2].timestamp``) so that the
ingress layer can answer in the dialect's own error shape with a message a person can
act on.
"""
import threading

import orjson


class MappingError(ValueError):
    def __init__(self, field: str, problem: str):
        super().__init__(f"{field}: {problem}" if field else problem)
        self.field = field
        self.problem = problem

    def within(self, prefix: str) -> "MappingError":
        """The same error, its field path nested under ``prefix``."""
        path = f"{prefix}.{self.field}" if self.field and not self.field.startswith("[") else f"{prefix}{self.field}"
        return MappingError(path, self.problem)


MAX_DEPTH = 64  # JSON containers a payload may nest; the store's encoder (orjson) stops at 254
_ENCODER_DEPTH = 254  # orjson refuses a document nested deeper (tests/test_mappings_units.py checks it)


def _chain(links: int) -> tuple[list, list]:
    """``links`` lists each holding the next: (outermost, innermost)."""
    inner = outer = [None]
    for _ in range(links - 1):
        outer = [outer]
    return outer, inner


_WRAPPER, _HOLE = _chain(_ENCODER_DEPTH - MAX_DEPTH)
_WRAPPER_LOCK = threading.Lock()


def check_depth(value) -> None:
    """Refuse a document nested deeper than `MAX_DEPTH` containers: stored inside an
    event envelope it could not be encoded again, and no SDK sends one.

    The encoder itself counts, at C speed: placed under ``254 - MAX_DEPTH`` wrapping
    lists, a document encodes if and only if it nests at most `MAX_DEPTH` containers.
    Only a document the encoder refuses (too deep, or an integer past 64 bits) is walked."""
    with _WRAPPER_LOCK:
        _HOLE[0] = value
        try:
            orjson.dumps(_WRAPPER)
            return
        except orjson.JSONEncodeError:
            pass
        finally:
            _HOLE[0] = None
    if depth(value) > MAX_DEPTH:
        raise MappingError("", f"nested deeper than {MAX_DEPTH} levels")


def depth(value) -> int:
    """How many containers deep a JSON value nests (0 for a scalar)."""
    level = [value] if type(value) is dict or type(value) is list else []
    levels = 0
    while level:
        levels += 1
        below = []
        for item in level:
            for child in item.values() if type(item) is dict else item:
                if type(child) is dict or type(child) is list:
                    below.append(child)
        level = below
    return levels
