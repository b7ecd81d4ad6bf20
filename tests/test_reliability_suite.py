"""The fault suite (tests/reliability/run.py) with short fault windows and a short soak:
every scenario must end with nothing lost and nothing delivered twice."""
import subprocess
import sys

import pytest

from tests.processes import ROOT


@pytest.mark.slow
def test_fault_suite_loses_and_duplicates_nothing():
    done = subprocess.run([sys.executable, "-m", "tests.reliability.run", "--short", "--soak-seconds", "40"],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "| soak" in done.stdout
