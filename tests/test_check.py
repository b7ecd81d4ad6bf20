"""`rosetta check CONFIG`, run as operators run it: each problem is named with its key and
line, errors exit non-zero, an unreachable backend is only a warning."""
import os
import shutil
import socket
import subprocess
import sys
import textwrap

import pytest


def _rosetta(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    command = [shutil.which("rosetta")] if shutil.which("rosetta") else [sys.executable, "-m", "gateway.cli"]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def write(tmp_path):
    def write(body: str) -> str:
        path = tmp_path / "rosetta.yaml"
        path.write_text(textwrap.dedent(body).lstrip())
        return str(path)
    return write


def test_a_good_config_passes_and_probes_its_backends(write, tmp_path):
    listener = socket.create_server(("127.0.0.1", 0))  # accepts connections from its backlog
    key_file = tmp_path / "lunary.key"
    key_file.write_text("sk-backend\n")
    path = write(f"""
        tenants:
          - {{name: acme, keys: ["${{ACME_KEY}}"], backends: [lunary]}}
        backends:
          - name: lunary
            dialect: lunary
            url: http://127.0.0.1:{listener.getsockname()[1]}
            api_key_file: {key_file}
        """)
    with listener:
        result = _rosetta("check", path, env={"ACME_KEY": "pk-acme"})
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "ok (1 tenants, 1 backends, store memory)" in result.stdout


def test_an_unset_variable_is_named_with_its_line(write):
    path = write("""
        tenants:
          - name: acme
            keys: ["${ROSETTA_TEST_UNSET_KEY}"]
        """)
    result = _rosetta("check", path)
    assert result.returncode != 0
    assert "ROSETTA_TEST_UNSET_KEY (line 3)" in result.stderr


def test_a_malformed_backend_url_is_named_with_its_key_and_line(write):
    path = write("""
        backends:
          - name: ok
            dialect: lunary
            url: https://api.lunary.ai
          - name: typo
            dialect: honeyhive
            url: api.honeyhive.ai
        """)
    result = _rosetta("check", path)
    assert result.returncode != 0
    assert "backends.1.url" in result.stderr and "line 7" in result.stderr
    assert "'api.honeyhive.ai'" in result.stderr


def test_a_key_given_to_two_tenants_names_both_and_the_line(write, tmp_path):
    path = write(f"""
        tenants:
          - name: acme
            keys: [pk-shared-1234]
            backends: [archive]
          - name: globex
            keys:
              honeyhive: [pk-shared-1234]
            backends: [archive]
        backends:
          - {{name: archive, dialect: jsonl, path: {tmp_path / 'out.jsonl'}}}
        """)
    result = _rosetta("check", path)
    assert result.returncode != 0
    assert "tenants.1.keys.honeyhive" in result.stderr and "(line 7)" in result.stderr
    assert "'acme' and 'globex'" in result.stderr
    assert "pk-shared-1234" not in result.stderr  # the key itself is a secret


def test_an_unreadable_key_file_is_an_error(write, tmp_path):
    path = write(f"""
        backends:
          - name: hh
            dialect: honeyhive
            url: http://127.0.0.1:{_closed_port()}
            api_key_file: {tmp_path / 'missing.key'}
        """)
    result = _rosetta("check", path, "--timeout", "0.5")
    assert result.returncode != 0
    assert "backends.0.api_key_file (line 5)" in result.stderr and "missing.key" in result.stderr


def test_an_unreachable_backend_is_only_a_warning(write):
    path = write(f"""
        backends:
          - name: archive
            dialect: jsonl
            path: /tmp/archive.jsonl
          - name: lunary
            dialect: lunary
            url: http://127.0.0.1:{_closed_port()}
        """)
    result = _rosetta("check", path, "--timeout", "0.5")
    assert result.returncode == 0, result.stderr
    assert "warning: backends.1.url (line 7)" in result.stderr
    assert "'lunary'" in result.stderr and "unreachable" in result.stderr
    assert "ok (0 tenants, 2 backends" in result.stdout


def test_schema_errors_name_the_key_and_line(write):
    path = write("""
        listen: {port: 8080}
        backends:
          - name: a
            dialect: lunary
            url: http://127.0.0.1:1
            batch_sise: 10
        """)
    result = _rosetta("check", path)
    assert result.returncode != 0
    assert "backends.0.batch_sise" in result.stderr and "(line 6)" in result.stderr
