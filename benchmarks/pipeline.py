"""Wall time of the pipeline through the Prefect flow (`python -m flows.command`, what `vr pipeline` and
`make pipeline` run), in a fresh copy of the repository with its own PREFECT_HOME and MLflow store:

- each stage's own command (wall of `python -m stages...`, timed by a wrapper this script puts in front
  of every `cmd` of the copy's dvc.yaml) and its `dvc repro` task (from the flow's Prefect log);
- the whole flow, the orchestration overhead = (flow wall - sum of stage commands) / flow wall, split into
  DVC (sum of `dvc repro` tasks - sum of stage commands) and the rest (Prefect start-up, MLflow,
  lineage tags, registration);
- an up-to-date re-run: `dvc repro` with everything cached, then a second flow run.
Registration stays on (as in `make pipeline`) unless --no-register.

    python benchmarks/pipeline.py                       # the default pipeline (about 10 minutes on 2 cores)
    python benchmarks/pipeline.py --profile small       # the small profile of tests/test_flow_e2e.py
    python benchmarks/pipeline.py --until validate --set data.synthetic.videos='{train: 6, val: 2, test: 3}'
"""
from __future__ import annotations

import sys
import time

TIME_STAGE = "--time-stage"  # wrapper mode: `pipeline.py --time-stage LOG STAGE -- CMD...` (no heavy imports)


def _time_stage(argv: list[str]) -> int:
    import json
    import subprocess

    log_file, stage, sep, *cmd = argv
    assert sep == "--", argv
    t0, start = time.perf_counter(), time.time()
    rc = subprocess.call(cmd)
    with open(log_file, "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"stage": stage, "seconds": time.perf_counter() - t0, "start": start, "rc": rc}) + "\n")
    return rc


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == TIME_STAGE:
    sys.exit(_time_stage(sys.argv[2:]))

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
from datetime import datetime, timedelta  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import yaml  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.training import table, verdict  # noqa: E402
from flows.dag import upstream  # noqa: E402

TARGETS = {"pipeline_s": 600.0, "overhead": 0.05, "uptodate_s": 5.0}
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "DVC_NO_ANALYTICS": "1", "DO_NOT_TRACK": "true",
               "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "MLFLOW_DISABLE_TELEMETRY": "true",
               "GX_ANALYTICS_ENABLED": "false", "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90"}
# The small profile of tests/test_flow_e2e.py: a handful of videos and steps, every stage still runs.
PROFILES: dict[str, dict[str, Any]] = {
    "default": {},
    "small": {
        "data.synthetic.videos": {"train": 6, "val": 2, "test": 3},
        "model.alignment.max_steps": 2,
        "sft.max_steps": 2, "sft.save_steps": 2, "sft.logging_steps": 1, "sft.loss_gap_items": 2,
        "rl.max_steps": 1, "rl.num_generations": 2, "rl.per_device_train_batch_size": 2,
        "rl.max_completion_length": 16, "rl.max_records": 4, "rl.logging_steps": 1, "rl.save_steps": 1,
        "tts.max_items_per_type": 1, "tts.strategies": ["greedy", "self_consistency"], "tts.n": [2],
        "tts.frames": [4], "tts.decoding.max_new_tokens": 16, "tts.n_boot": 20,
        "eval.max_items_per_type": 1, "eval.decoding.max_new_tokens": 16, "eval.n_boot": 20,
        "eval.controls": ["blank"],
    },
}
# Each stage's own summary of the seconds it worked (imports and model loading excluded): file, key path.
WORK_SECONDS = {"generate": ("reports/generate/summary.json", ["seconds"]),
                "validate": ("reports/validation/result.json", ["seconds", "total"]),
                "bootstrap": ("reports/bootstrap/summary.json", ["seconds"]),
                "sft": ("reports/sft/metrics.json", ["seconds"]),
                "rl": ("reports/rl/metrics.json", ["seconds"])}
# Prefect's console line of a stage task (task_run_name "dvc repro {stage}" in flows/pipeline.py).
PREFECT_LINE = re.compile(r"^(\d\d:\d\d:\d\d\.\d{3}) \| \w+\s*\| Task run 'dvc repro (?P<stage>[^']+)' - ")


# ---- the workspace -------------------------------------------------------------------------------------
def copy_repo(dest: Path) -> None:
    """Tracked and untracked-but-not-ignored files, without dvc.lock (a fresh clone)."""
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           check=True, capture_output=True, text=True).stdout.splitlines()
    for rel in files:
        if (ROOT / rel).is_file() and rel != "dvc.lock":
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dest / rel)


def set_params(path: Path, overrides: dict[str, Any]) -> None:
    """Dotted keys (`rl.max_steps`) set in params.yaml; a missing intermediate mapping is an error."""
    params = yaml.safe_load(path.read_text(encoding="utf-8"))
    for dotted, value in overrides.items():
        *parents, key = dotted.split(".")
        node = params
        for part in parents:
            if not isinstance(node.get(part), dict):
                raise KeyError(f"params.yaml has no section {'.'.join(parents)!r} (from --set {dotted})")
            node = node[part]
        node[key] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")


def instrument(ws: Path, until: str | None, timing_log: Path) -> list[str]:
    """Rewrite the copy's dvc.yaml: keep the stages up to `until`, and time every command with the wrapper.
    Returns the stages kept."""
    path = ws / "dvc.yaml"
    keep = upstream(until, ws) if until else None
    spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    stages = {name: s for name, s in spec["stages"].items() if keep is None or name in keep}
    for name, stage in stages.items():
        stage["cmd"] = f"python benchmarks/pipeline.py {TIME_STAGE} {timing_log} {name} -- {stage['cmd']}"
    spec["stages"] = stages
    if keep is not None:
        spec.pop("plots", None)  # top-level plots may name outputs of the stages dropped
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return list(stages)


def workspace_env(ws: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "PREFECT_API_URL", "MLFLOW_RUN_ID")}
    env.update(OFFLINE_ENV, PREFECT_HOME=str(ws / ".prefect"),
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
               GIT_AUTHOR_NAME="bench", GIT_AUTHOR_EMAIL="bench@localhost", GIT_COMMITTER_NAME="bench",
               GIT_COMMITTER_EMAIL="bench@localhost")
    return env


def timed(cmd: list[str], ws: Path, env: dict[str, str], log: Path) -> float:
    t0 = time.perf_counter()
    with open(log, "w", encoding="utf-8") as fh:
        rc = subprocess.call(cmd, cwd=ws, env=env, stdout=fh, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - t0
    if rc != 0:
        tail = log.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise RuntimeError(f"{' '.join(cmd)} failed (exit {rc}) in {ws}; last output:\n{tail}")
    return seconds


# ---- parsing -------------------------------------------------------------------------------------------
def task_spans(log_text: str) -> dict[str, float]:
    """Seconds from a Prefect task run's first to its last console line ('dvc repro <stage>' tasks):
    the `dvc repro` wall as the flow sees it (the first line is the command, the last its final state)."""
    first: dict[str, datetime] = {}
    last: dict[str, datetime] = {}
    for line in log_text.splitlines():
        match = PREFECT_LINE.match(line)
        if not match:
            continue
        stamp = datetime.strptime(match.group(1), "%H:%M:%S.%f")
        stage = match.group("stage")
        if stage in first and stamp < last[stage]:
            stamp += timedelta(days=1)  # past midnight
        first.setdefault(stage, stamp)
        last[stage] = stamp
    return {s: (last[s] - first[s]).total_seconds() for s in first}


def stage_seconds(timing_log: Path) -> dict[str, float]:
    """Wall of each stage command (the last run of each stage in the wrapper's log)."""
    out: dict[str, float] = {}
    if timing_log.is_file():
        for line in timing_log.read_text(encoding="utf-8").splitlines():
            entry = json.loads(line)
            out[entry["stage"]] = entry["seconds"]
    return out


def work_seconds(ws: Path, stage: str) -> float | None:
    if stage not in WORK_SECONDS:
        return None
    file, keys = WORK_SECONDS[stage]
    try:
        value: Any = json.loads((ws / file).read_text(encoding="utf-8"))
        for key in keys:
            value = value[key]
        return float(value)
    except (OSError, KeyError, TypeError, ValueError):
        return None


def overheads(flow_s: float, commands: dict[str, float], tasks: dict[str, float]) -> dict[str, float]:
    """Orchestration overhead = (flow wall - sum of stage commands) / flow wall; DVC's part = sum over stages
    of (dvc repro task - stage command); the rest is Prefect, MLflow and registration."""
    cmd_total = sum(commands.values())
    dvc = sum(tasks[s] - commands[s] for s in commands if s in tasks)
    return {"commands_s": cmd_total, "overhead_s": flow_s - cmd_total,
            "overhead": (flow_s - cmd_total) / flow_s if flow_s else float("nan"),
            "dvc_s": dvc, "rest_s": flow_s - cmd_total - dvc}


def fmt_s(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return f"{seconds:.1f} s" if seconds < 120 else f"{int(seconds // 60)} min {seconds % 60:.0f} s"


# ---- main ----------------------------------------------------------------------------------------------
def parse_set(items: list[str]) -> dict[str, Any]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set {item!r}: expected key=value")
        out[key] = yaml.safe_load(value)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=sorted(PROFILES), default="default", help="params overrides")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a params.yaml override (YAML value), like `dvc exp run -S`; repeatable")
    parser.add_argument("--until", default=None, help="run the stages up to this one only")
    parser.add_argument("--no-register", action="store_true", help="pass --no-register to the flow")
    parser.add_argument("--workspace", type=Path, default=None,
                        help="make the fresh copy here (absent or empty) and keep it (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary workspace")
    args = parser.parse_args(argv)
    overrides = {**PROFILES[args.profile], **parse_set(args.set)}

    if args.workspace and args.workspace.exists() and any(args.workspace.iterdir()):
        raise SystemExit(f"--workspace {args.workspace}: not empty (the benchmark rewrites dvc.yaml and params.yaml "
                         "of its copy and commits them)")
    ws = args.workspace.resolve() if args.workspace else Path(tempfile.mkdtemp(prefix="vr-bench-pipeline-"))
    bench = ws / ".bench"
    try:
        ws.mkdir(parents=True, exist_ok=True)
        copy_repo(ws)
        bench.mkdir(exist_ok=True)
        if overrides:
            set_params(ws / "params.yaml", overrides)
        timing_log = bench / "stage_times.jsonl"  # relative in dvc.yaml: stages run in the workspace root
        timing_log.unlink(missing_ok=True)
        stages = instrument(ws, args.until, timing_log.relative_to(ws))
        env = workspace_env(ws)
        with open(ws / ".gitignore", "a", encoding="utf-8") as fh:
            fh.write("\n/.bench/\n")
        subprocess.run(["git", "init", "-q"], cwd=ws, check=True, env=env)
        subprocess.run(["git", "add", "-A"], cwd=ws, check=True, env=env)
        subprocess.run(["git", "-c", "commit.gpgsign=false", "commit", "-q", "-m", "benchmark", "--allow-empty"],
                       cwd=ws, check=True, env=env)

        flow = [sys.executable, "-m", "flows.command", "--repo", "."] + (["--no-register"] if args.no_register else [])
        flow_s = timed(flow, ws, env, bench / "flow1.log")
        commands = stage_seconds(timing_log)
        tasks = task_spans((bench / "flow1.log").read_text(encoding="utf-8", errors="replace"))
        if timing_log.is_file():
            timing_log.rename(bench / "stage_times.first.jsonl")
        repro_s = timed([sys.executable, "-m", "dvc", "repro"], ws, env, bench / "repro.log")
        reran = (bench / "repro.log").read_text(encoding="utf-8").count("Running stage")
        flow2_s = timed(flow, ws, env, bench / "flow2.log")
        reran2 = (bench / "flow2.log").read_text(encoding="utf-8", errors="replace").count("Running stage '")

        o = overheads(flow_s, commands, tasks)
        print(f"workspace {ws}; profile {args.profile}; overrides {len(overrides)}; stages {', '.join(stages)}; "
              f"registration {'off' if args.no_register else 'on'}; cores {os.cpu_count()}; "
              f"load average {os.getloadavg()[0]:.1f}\n")
        rows = [(s, fmt_s(commands.get(s)), fmt_s(tasks.get(s)),
                 fmt_s(tasks[s] - commands[s]) if s in tasks and s in commands else "—", fmt_s(work_seconds(ws, s)))
                for s in stages]
        rows.append(("total", fmt_s(o["commands_s"]), fmt_s(sum(tasks.values())), fmt_s(o["dvc_s"]), ""))
        print(table(rows, header=("stage", "stage command", "`dvc repro` task", "DVC overhead", "stage's own seconds")))
        print()
        summary = [
            (f"whole pipeline, flow wall ({len(stages)} stages)", fmt_s(flow_s), f"≤ {fmt_s(TARGETS['pipeline_s'])}",
             verdict(flow_s, TARGETS["pipeline_s"])),
            ("orchestration overhead: (flow − Σ stage commands) / flow",
             f"{100 * o['overhead']:.1f} % ({fmt_s(o['overhead_s'])})", f"≤ {100 * TARGETS['overhead']:.0f} %",
             verdict(o["overhead"], TARGETS["overhead"])),
            ("… of which DVC: Σ (`dvc repro` task − stage command)",
             f"{fmt_s(o['dvc_s'])} ({100 * o['dvc_s'] / flow_s:.1f} %)", "—", "—"),
            ("… of which Prefect start-up, MLflow, lineage, registration",
             f"{fmt_s(o['rest_s'])} ({100 * o['rest_s'] / flow_s:.1f} %)", "—", "—"),
            (f"up-to-date `dvc repro` ({reran} stages re-ran)", fmt_s(repro_s), f"≤ {fmt_s(TARGETS['uptodate_s'])}",
             verdict(repro_s, TARGETS["uptodate_s"])),
            (f"up-to-date flow re-run ({reran2} stages re-ran)", fmt_s(flow2_s), f"≤ {fmt_s(TARGETS['uptodate_s'])}",
             verdict(flow2_s, TARGETS["uptodate_s"])),
        ]
        print(table(summary))
    finally:
        if not args.workspace and not args.keep:
            shutil.rmtree(ws, ignore_errors=True)


if __name__ == "__main__":
    main()
