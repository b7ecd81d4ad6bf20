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
