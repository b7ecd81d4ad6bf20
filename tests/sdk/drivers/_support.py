"""Scaffolding shared by the SDK drivers: command line, error capture, the closing JSON line.

Drivers run as scripts under an SDK's own venv, so they import this module from their
own directory and it uses the standard library only.

The SDKs report failures in many ways, and several never raise: log records (some on
loggers that do not propagate to the root and print to stdout themselves), ``print``
to stdout or stderr, warnings, and exceptions that kill a background thread.
``ErrorCapture`` collects all of them: a WARNING handler on the root logger and on the
SDK's non-propagating loggers, a scan of every line written to stdout/stderr for the
SDK's known error messages, a ``threading.excepthook`` and a ``warnings.showwarning``
hook (deprecation warnings are not delivery errors and are let through). It must be
installed before the SDK is imported, so the SDK's stream handlers bind to the
scanning streams.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import re
import sys
import threading
import traceback
import warnings
from collections.abc import Callable, Iterable
from typing import Any, NoReturn, TextIO

NOT_ERRORS = (DeprecationWarning, PendingDeprecationWarning, FutureWarning, ImportWarning)


class ErrorCapture(logging.Handler):
    """Every failure the SDK reports, in whatever form; see the module docstring."""

    def __init__(self, logger_prefixes: Iterable[str] = (), patterns: Iterable[str] = ()) -> None:
        super().__init__(level=logging.WARNING)
        self.logger_prefixes = tuple(logger_prefixes)
        self.patterns = [re.compile(p) for p in patterns]
        self.errors: list[str] = []

    def install(self) -> ErrorCapture:
        logging.getLogger().addHandler(self)
        sys.stdout = _ScanningStream(sys.stdout, self)
        sys.stderr = _ScanningStream(sys.stderr, self)
        threading.excepthook = self._thread_exception
        warnings.showwarning = self._warning
        return self

    def watch_sdk_loggers(self) -> None:
        """Attach to the SDK's loggers that keep their records from the root logger.

        Called again after each SDK set-up step, since SDKs create loggers lazily.
        """
        for name, logger in list(logging.root.manager.loggerDict.items()):
            if (
                isinstance(logger, logging.Logger)
                and name.startswith(self.logger_prefixes)
                and not logger.propagate
                and self not in logger.handlers
            ):
                logger.addHandler(self)

    def record(self, message: str) -> None:
        self.errors.append(message)

    def emit(self, record: logging.LogRecord) -> None:
        text = f"log {record.name} {record.levelname}: {record.getMessage()}"
        if record.exc_info:
            text += "\n" + "".join(traceback.format_exception(*record.exc_info))
        self.record(text)

    def scan_line(self, stream_name: str, line: str) -> None:
        if any(p.search(line) for p in self.patterns):
            self.record(f"{stream_name}: {line}")

    def _thread_exception(self, args: threading.ExceptHookArgs) -> None:
        thread = args.thread.name if args.thread else "?"
        detail = "".join(
            traceback.format_exception(args.exc_type, args.exc_value, args.exc_traceback))
        self.record(f"exception in thread {thread}:\n{detail}")

    def _warning(self, message: Warning | str, category: type[Warning], filename: str,
                 lineno: int, file: TextIO | None = None, line: str | None = None) -> None:
        if issubclass(category, NOT_ERRORS):
            return
        self.record(f"warning {category.__name__}: {message} ({filename}:{lineno})")


class _ScanningStream:
    """Writes through to the real stream and hands each complete line to the capture."""

    def __init__(self, stream: TextIO, capture: ErrorCapture) -> None:
        self._stream = stream
        self._capture = capture
        self._name = "stdout" if stream is sys.__stdout__ else "stderr"
        self._pending = ""

    def write(self, text: str) -> int:
        written = self._stream.write(text)
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            self._capture.scan_line(self._name, line)
        return written

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def import_sdk(name: str) -> Any:
    """Import the SDK package ``name``, which the driver script itself is named after.

    The script's directory comes first on ``sys.path``, where ``<name>.py`` would shadow
    the SDK, so it is taken off before the import (``_support`` is already loaded).
    """
    here = os.path.dirname(os.path.abspath(sys.argv[0]))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    return importlib.import_module(name)


def parse_args(description: str, scenarios: Iterable[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--base-url", required=True, help="gateway (or recorder) base URL")
    parser.add_argument("--key", required=True, help="API key / app id / public key to send")
    parser.add_argument("--scenario", choices=sorted(scenarios),
                        help="run one scenario (default: all of them)")
    args = parser.parse_args()
    args.base_url = args.base_url.rstrip("/")
    return args


def selected(args: argparse.Namespace, scenarios: dict[str, Callable[..., Any]]) -> list[str]:
    return [args.scenario] if args.scenario else list(scenarios)


def finish(capture: ErrorCapture, sdk: str, scenarios: list[str],
           runs: list[dict[str, Any]], **extra: Any) -> NoReturn:
    """Exit 1 with the captured errors, or print the closing JSON line and exit 0."""
    sys.stdout.flush()
    if capture.errors:
        print(f"{sdk}: the SDK reported {len(capture.errors)} error(s):", file=sys.__stderr__)
        for error in capture.errors:
            print(f"  - {error}", file=sys.__stderr__)
        sys.exit(1)
    result = {"sdk": sdk, "scenarios": scenarios, "runs": runs, **extra}
    sys.__stdout__.write(json.dumps(result, sort_keys=True) + "\n")
    sys.__stdout__.flush()
    sys.exit(0)


def expected_run(scenario: str, kind: str, run_id: str | None, phases: list[str],
                 **fields: Any) -> dict[str, Any]:
    """One run the gateway should have received: its id as sent, its kind and phases."""
    return {"scenario": scenario, "kind": kind, "run_id": run_id, "phases": phases,
            **{k: v for k, v in fields.items() if v is not None}}
