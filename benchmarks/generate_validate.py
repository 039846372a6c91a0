"""Throughput of the data stages: records/s and MB/s for `generate`, `ingest` and `validate` at the
default scale (params.yaml), run in a temporary workspace so the real one is untouched.

    python benchmarks/generate_validate.py [--scale 1.0]
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from videoreasoner.core import telemetry  # noqa: E402,F401
from videoreasoner.core.params import load_params  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the number of videos")
    args = parser.parse_args()
    from dataclasses import replace

    from stages import generate, ingest, validate
    from videoreasoner.data.world.config import WorldConfig

    params = load_params(ROOT / "params.yaml")
    cfg = WorldConfig.from_params(params["data"]["synthetic"])
    cfg = replace(cfg, videos={k: max(1, round(v * args.scale)) for k, v in cfg.videos.items()})
    work = Path(tempfile.mkdtemp(prefix="vr-bench-"))
    cwd = os.getcwd()
    try:
        os.chdir(work)
        rows = []
        t = time.perf_counter()
        summary = generate.run(cfg, work / "data/raw/synthetic")
        rows.append(("generate", summary["records"], time.perf_counter() - t, summary["megabytes"]))
        t = time.perf_counter()
        ingest.run({"sources": params["data"]["sources"]}, work)
        rows.append(("ingest", summary["records"], time.perf_counter() - t, summary["megabytes"]))
        t = time.perf_counter()
        validate.run(validate.ValidateConfig.from_params(params["validate"]), work)
        rows.append(("validate", summary["records"], time.perf_counter() - t, summary["megabytes"]))
        print(f"videos: {summary['videos']}   records: {summary['records']}   cores: {os.cpu_count()}")
        print(f"{'stage':<10}{'records':>9}{'seconds':>9}{'records/s':>11}{'MB/s':>8}")
        for name, n, sec, mb in rows:
            print(f"{name:<10}{n:>9}{sec:>9.2f}{n / sec:>11.0f}{mb / sec:>8.2f}")
        total = sum(r[2] for r in rows)
        print(f"{'total':<10}{'':>9}{total:>9.2f}")
    finally:
        os.chdir(cwd)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
