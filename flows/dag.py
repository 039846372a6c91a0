"""The pipeline's stage order, derived from dvc.yaml's DAG (never hard-coded).

A stage depends on another when one of its `deps` is, contains or lies inside one of the other stage's
`outs`/`metrics`/`plots` paths: the rule DVC itself uses to build `dvc dag`. The order is a topological
sort with ties broken by declaration order in dvc.yaml, so it is stable and reads like the file.
`dvc_edges` asks DVC for its own graph (`dvc dag --dot`); tests check that the two agree.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path, PurePosixPath

import yaml

OUT_KINDS = ("outs", "metrics", "plots")


def _path_of(entry) -> str:
    """A dvc.yaml list entry is a path or a one-key mapping {path: options}."""
    return str(next(iter(entry))) if isinstance(entry, dict) else str(entry)


def _overlaps(a: str, b: str) -> bool:
    pa, pb = PurePosixPath(a), PurePosixPath(b)
    return pa == pb or pa in pb.parents or pb in pa.parents


def load_stages(repo: str | Path = ".") -> dict[str, dict]:
    """The `stages` mapping of dvc.yaml, in declaration order."""
    path = Path(repo) / "dvc.yaml"
    stages = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("stages") or {}
    for name, spec in stages.items():
        if "foreach" in spec or "matrix" in spec:
            raise ValueError(f"{path}: stage {name!r} uses foreach/matrix, which flows.dag does not expand")
    return stages


def dependencies(stages: dict[str, dict]) -> dict[str, set[str]]:
    """stage -> the set of stages whose outputs it reads."""
    outs = {name: [_path_of(e) for kind in OUT_KINDS for e in spec.get(kind) or []]
            for name, spec in stages.items()}
    deps: dict[str, set[str]] = {name: set() for name in stages}
    for name, spec in stages.items():
        for dep in (_path_of(e) for e in spec.get("deps") or []):
            for producer, paths in outs.items():
                if producer != name and any(_overlaps(dep, out) for out in paths):
                    deps[name].add(producer)
    return deps


def stage_order(repo: str | Path = ".") -> list[str]:
    """Every stage of dvc.yaml, each after all the stages it depends on (ties: declaration order)."""
    stages = load_stages(repo)
    deps = dependencies(stages)
    declared = list(stages)
    done: list[str] = []
    while len(done) < len(declared):
        ready = [s for s in declared if s not in done and deps[s] <= set(done)]
        if not ready:
            cycle = sorted(set(declared) - set(done))
            raise ValueError(f"dvc.yaml: the stages {cycle} depend on each other in a cycle")
        done.append(ready[0])
    return done


def runnable_stages(repo: str | Path = ".") -> list[str]:
    """stage_order without the frozen stages (`frozen: true`, e.g. pretrain: its committed output is
    used, and `dvc repro` does not run it either): the stages the pipeline flow runs."""
    stages = load_stages(repo)
    return [s for s in stage_order(repo) if not stages[s].get("frozen")]


def upstream(stage: str, repo: str | Path = ".") -> list[str]:
    """The stages `stage` needs (transitively), in pipeline order, ending with `stage`."""
    deps = dependencies(load_stages(repo))
    if stage not in deps:
        raise KeyError(f"dvc.yaml has no stage {stage!r} (stages: {sorted(deps)})")
    needed, todo = {stage}, [stage]
    while todo:
        for dep in deps[todo.pop()]:
            if dep not in needed:
                needed.add(dep)
                todo.append(dep)
    return [s for s in stage_order(repo) if s in needed]


def dvc_edges(repo: str | Path = ".") -> tuple[set[str], set[tuple[str, str]]]:
    """DVC's own view: (stage names, edges upstream -> downstream) from `dvc dag --dot`."""
    dot = subprocess.run([sys.executable, "-m", "dvc", "dag", "--dot"], cwd=repo, check=True,
                         capture_output=True, text=True).stdout
    nodes = set(re.findall(r'^"([^"]+)";$', dot, flags=re.M))
    edges = set(re.findall(r'^"([^"]+)" -> "([^"]+)";$', dot, flags=re.M))
    return nodes, edges
