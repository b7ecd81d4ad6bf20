"""What an ingress mapping produces: per-item canonical events or errors."""
from dataclasses import dataclass, field
from typing import Any

from .errors import MappingError


@dataclass(slots=True)
class Parsed:
    """The events of one request, in order; an item that failed to map is its error."""

    items: list[dict | MappingError]
    ids: list[Any] = field(default_factory=list)  # the client's id per item, echoed in answers
    credential: str | None = None  # a credential carried in the payload (LLMonitor app id)
    context: dict[str, Any] = field(default_factory=dict)

    @property
    def events(self) -> list[dict]:
        return [i for i in self.items if not isinstance(i, MappingError)]


def each(raws: list, convert, id_keys: tuple[str, ...] = ()) -> Parsed:
    """Map every raw item, keeping a failure in its slot with the item's index in its path."""
    items: list[dict | MappingError] = []
    ids: list[Any] = []
    for index, raw in enumerate(raws):
        ids.append(_client_id(raw, id_keys))
        try:
            items.append(convert(raw))
        except MappingError as exc:
            items.append(exc.within(f"events[{index}]"))
    return Parsed(items, ids)


def _client_id(raw: Any, id_keys: tuple[str, ...]) -> Any:
    if id_keys and isinstance(raw, dict):
        for key in id_keys:
            value = raw.get(key)
            if value is not None:
                return value
    return None
