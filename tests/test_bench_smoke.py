"""The benchmark runs end to end (`--quick`): every section prints. No timing is asserted."""
import subprocess
import sys
from pathlib import Path

from tests.perf.wakeup import GAPS_US

ROOT = Path(__file__).resolve().parent.parent
SECTIONS = ("== ingest:", "== ingest summary", "== latency at half of max throughput", "== cost of growth",
            "== backlog drain", "== scaling: rosetta serve --workers 1 vs 2", "== targets")


def test_quick_bench_prints_every_section():
    done = subprocess.run([sys.executable, "-m", "tests.perf.bench", "--quick", "--backlog", "500"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    for section in SECTIONS:
        assert section in out, f"missing {section!r} in:\n{out}"
    for target in ("ceiling", "memory", "redis"):
        assert f" {target} " in out
    assert "otlp" in out, "OTLP is measured or says why not"
    assert out.count("PASS") + out.count("FAIL") == 6
    assert "! only" not in out, "the drain lost events"


def test_the_wakeup_measurement_prints_a_row_per_gap():
    done = subprocess.run([sys.executable, "-m", "tests.perf.wakeup", "20"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = done.stdout.splitlines()[1:]
    assert [int(row.split()[0]) for row in rows] == list(GAPS_US)
    assert all(float(row.split()[1]) > 0 for row in rows)
