"""Vendor backend simulators: real HTTP servers that check what Rosetta forwards.

Each one answers as the vendor's server does (DIALECTS.md), records what it accepted in
a shared ``Received`` and injects ``Faults`` on demand. Start one with ``run_backend``.
"""

from .faults import Fault, Faults, FaultSettings
from .recorder import Received
from .server import DEFAULT_KEY, SIMULATORS, Backend, build_app, run_backend

__all__ = [
    "DEFAULT_KEY",
    "SIMULATORS",
    "Backend",
    "Fault",
    "FaultSettings",
    "Faults",
    "Received",
    "build_app",
    "run_backend",
]
