"""The typed application state every handler reads (aiohttp AppKey)."""
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from ..auth import Auth
from ..config import Config
from ..pipeline import Pipeline
from ..store import Store


@dataclass
class State:
    config: Config
    store: Store
    pipeline: Pipeline
    auth: Auth
    extras: dict[str, Any] = field(default_factory=dict)

    @staticmethod
    def of(request: web.Request) -> "State":
        return request.app[STATE]


STATE = web.AppKey("rosetta_state", State)
