"""``ensure_venv``: built once, reused while the requirement file is unchanged, rebuilt
when it changes, one build for concurrent callers, and pip's own words on failure.

The venvs here live in a temporary directory and need nothing from the network: the
only requirement is ``pip``, which a new venv already has.
"""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from . import venvs

pytestmark = pytest.mark.sdk


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    requirements = tmp_path / "requirements"
    requirements.mkdir()
    monkeypatch.setattr(venvs, "REQUIREMENTS_DIR", requirements)
    monkeypatch.setattr(venvs, "VENV_ROOT", tmp_path / "venvs")
    return requirements


def test_built_once_then_reused_until_the_file_changes(scratch: Path) -> None:
    (scratch / "demo.txt").write_text("pip\n")
    python = venvs.ensure_venv("demo")
    assert python == venvs.VENV_ROOT / "demo" / "bin" / "python"
    assert subprocess.run([python, "-c", "import pip"]).returncode == 0
    sentinel = python.parent.parent / "sentinel"
    sentinel.touch()

    assert venvs.ensure_venv("demo") == python
    assert sentinel.exists()

    (scratch / "demo.txt").write_text("pip\n# changed\n")
    assert venvs.ensure_venv("demo") == python
    assert not sentinel.exists()
    assert (python.parent.parent / venvs.STAMP_NAME).is_file()


def test_concurrent_callers_share_one_build(scratch: Path) -> None:
    (scratch / "shared.txt").write_text("pip\n")
    with ThreadPoolExecutor(max_workers=3) as pool:
        pythons = list(pool.map(venvs.ensure_venv, ["shared"] * 3))
    assert len(set(pythons)) == 1
    assert subprocess.run([pythons[0], "-c", "import pip"]).returncode == 0


def test_a_failed_install_raises_with_pip_output(scratch: Path) -> None:
    (scratch / "broken.txt").write_text("not a valid requirement!!\n")
    with pytest.raises(venvs.VenvBuildError, match="Invalid requirement"):
        venvs.ensure_venv("broken")
    assert not (venvs.VENV_ROOT / "broken" / venvs.STAMP_NAME).exists()


def test_unknown_name_is_refused(scratch: Path) -> None:
    with pytest.raises(FileNotFoundError):
        venvs.ensure_venv("nope")
