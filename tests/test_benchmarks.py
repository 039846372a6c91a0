"""The benchmark scripts run and print their table (their figures are not asserted: timings belong
in benchmarks/, never in timed tests)."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_generate_validate_benchmark_prints_its_table():
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks/generate_validate.py"), "--scale", "0.01"],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = {line.split()[0] for line in out.stdout.splitlines() if line.strip()}
    assert {"generate", "ingest", "validate", "total"} <= rows
