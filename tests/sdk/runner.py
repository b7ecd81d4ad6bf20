"""Run an SDK driver in its venv and return the JSON line it closes with.

``run_driver(name, base_url, key)`` builds (or reuses) the driver's venv, runs
``tests/sdk/drivers/<name>.py`` there as a subprocess and returns the parsed last line of
its stdout: the runs/sessions the driver expects the server to have received. Any
non-zero exit (an SDK error the driver captured, a crash, a timeout) raises
``DriverError`` carrying the driver's full stdout and stderr.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .venvs import ensure_venv

DRIVERS_DIR = Path(__file__).resolve().parent / "drivers"

VENV_OF_DRIVER = {"honeyhive_logger": "honeyhive"}
"""Drivers that share another driver's venv (``honeyhive-logger`` installs beside ``honeyhive``)."""


class DriverError(RuntimeError):
    """A driver exited non-zero, timed out, or did not end with a JSON line."""


def driver_names() -> list[str]:
    return sorted(p.stem for p in DRIVERS_DIR.glob("[!_]*.py"))


def run_driver(
    name: str,
    base_url: str,
    key: str,
    scenario: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
) -> dict[str, Any]:
    """Run driver ``name`` against ``base_url``; return its closing JSON object.

    ``env`` is added to (and overrides) the current environment for the driver process.
    """
    python = ensure_venv(VENV_OF_DRIVER.get(name, name))
    command = [str(python), str(DRIVERS_DIR / f"{name}.py"), "--base-url", base_url, "--key", key]
    if scenario is not None:
        command += ["--scenario", scenario]
    child_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    child_env.pop("PYTHONPATH", None)
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, env=child_env, timeout=timeout, cwd=DRIVERS_DIR
        )
    except subprocess.TimeoutExpired as exc:
        raise DriverError(
            f"driver {name} timed out after {timeout}s: {' '.join(command)}\n"
            f"--- stdout ---\n{_text(exc.stdout)}\n--- stderr ---\n{_text(exc.stderr)}"
        ) from exc
    report = (
        f"driver {name} exited {result.returncode}: {' '.join(command)}\n"
        f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
    )
    if result.returncode != 0:
        raise DriverError(report)
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    try:
        return json.loads(lines[-1])
    except (IndexError, ValueError) as exc:
        raise DriverError(f"no closing JSON line; {report}") from exc


def _text(output: bytes | str | None) -> str:
    if isinstance(output, bytes):
        return output.decode("utf-8", "replace")
    return output or ""
