"""One virtualenv per vendor SDK, built on demand from ``tests/sdk/requirements/<name>.txt``.

The SDKs cannot share an environment (``llmonitor`` 0.0.51 pins ``setuptools<69``,
``lunary`` 1.4.41 needs ``setuptools>=78.1.1``), so each gets its own venv under
``<repo>/.sdk-venvs/<name>``. A stamp file inside the venv holds a hash of the
requirement file (and of the base interpreter's version, since a venv is tied to it);
the venv is rebuilt only when that hash changes. An exclusive ``fcntl`` lock per venv
makes concurrent pytest processes wait for one build instead of racing it.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
VENV_ROOT = REPO_ROOT / ".sdk-venvs"
REQUIREMENTS_DIR = Path(__file__).resolve().parent / "requirements"
STAMP_NAME = "rosetta-requirements.sha256"


class VenvBuildError(RuntimeError):
    """A venv could not be created or its requirements could not be installed."""


def requirements_file(name: str) -> Path:
    path = REQUIREMENTS_DIR / f"{name}.txt"
    if not path.is_file():
        raise FileNotFoundError(f"no requirement file for SDK venv {name!r}: {path}")
    return path


def ensure_venv(name: str) -> Path:
    """Return the python of the venv ``name``, building or rebuilding it if needed."""
    requirements = requirements_file(name)
    digest = hashlib.sha256(requirements.read_bytes() + sys.version.encode()).hexdigest()
    venv_dir = VENV_ROOT / name
    python = venv_dir / "bin" / "python"
    stamp = venv_dir / STAMP_NAME
    VENV_ROOT.mkdir(parents=True, exist_ok=True)
    with open(VENV_ROOT / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if python.exists() and stamp.is_file() and stamp.read_text() == digest:
            return python
        shutil.rmtree(venv_dir, ignore_errors=True)
        _run([sys.executable, "-m", "venv", str(venv_dir)], f"creating venv {name}")
        _run(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             "-r", str(requirements)],
            f"installing {requirements.name} into venv {name}",
        )
        stamp.write_text(digest)
    return python


def _run(command: list[str], what: str) -> None:
    env = {**os.environ, "PIP_NO_INPUT": "1"}
    env.pop("PYTHONPATH", None)
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise VenvBuildError(
            f"{what} failed (exit {result.returncode}): {' '.join(command)}\n"
            f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
        )
