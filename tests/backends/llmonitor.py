"""An LLMonitor v0 server: only ``POST /api/report``, as the Lunary server still serves it.

The v0 SDK sends no key: each event names its app in ``app``, checked against the
configured app ids. Answers are a bare array; records are those of ``lunary``.
"""

from __future__ import annotations

from collections.abc import Collection

from aiohttp import web

from .app import new_app
from .faults import Faults
from .lunary import add_report_route
from .recorder import Received


def make_app(received: Received, faults: Faults, *, keys: Collection[str]) -> web.Application:
    app = new_app(received, faults)
    add_report_route(app, keys)
    return app
