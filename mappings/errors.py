"""The one error a mapping raises: a payload that cannot be translated.

It names the offending field with a dotted path (``events[2].timestamp``) so that the
ingress layer can answer in the dialect's own error shape with a message a person can
act on.
"""


class MappingError(ValueError):
    def __init__(self, field: str, problem: str):
        super().__init__(f"{field}: {problem}" if field else problem)
        self.field = field
        self.problem = problem

    def within(self, prefix: str) -> "MappingError":
        """The same error, its field path nested under ``prefix``."""
        path = f"{prefix}.{self.field}" if self.field and not self.field.startswith("[") else f"{prefix}{self.field}"
        return MappingError(path, self.problem)


MAX_DEPTH = 64  # JSON nesting a payload may have; the store's encoder (orjson) stops at 255


def check_depth(value, limit: int = MAX_DEPTH) -> None:
    """Refuse a document nested deeper than ``limit``: stored inside an event envelope it
    could not be encoded again, and no SDK sends one."""
    level = [value]
    for _ in range(limit + 1):
        below, has_child = [], False
        for item in level:
            kind = type(item)
            if kind is dict:
                item = item.values()
            elif kind is not list:
                continue
            for child in item:
                has_child = True
                if type(child) is dict or type(child) is list:
                    below.append(child)
        if not has_child:
            return
        level = below
    raise MappingError("", f"nested deeper than {limit} levels")
