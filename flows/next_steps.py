"""What to do with a finished run, as `vr pipeline` prints it: commit it as the baseline (dvc.lock and the
small metrics and plots files git carries), push its models and data to the DVC remote, compare it.

The files git carries are the outputs, metrics and plots that dvc.yaml declares `cache: false`; every
other output is DVC's (cached, git-ignored, moved by `dvc push` / `dvc pull`)."""
from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

LOCK = "dvc.lock"


def git_carried_outputs(repo: str | Path) -> list[str]:
    """Paths of dvc.yaml's outputs, metrics and plots declared `cache: false`, in file order."""
    stages = (yaml.safe_load((Path(repo) / "dvc.yaml").read_text(encoding="utf-8")) or {}).get("stages", {})
    found: list[str] = []
    for stage in stages.values():
        for kind in ("outs", "metrics", "plots"):
            for entry in stage.get(kind) or []:
                if isinstance(entry, dict):
                    found += [path for path, opts in entry.items() if (opts or {}).get("cache") is False]
    return list(dict.fromkeys(found))


def uncommitted(repo: str | Path, paths: list[str]) -> list[str]:
    """The ones of `paths` that differ from HEAD (new, changed or deleted), as git reports them."""
    out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all", "--", *paths], cwd=repo,
                         capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        return []
    changed = {line[3:].strip().strip('"') for line in out.stdout.splitlines() if line.strip()}
    return [p for p in paths if p in changed or any(c.startswith(p.rstrip("/") + "/") for c in changed)]


def next_steps(repo: str | Path) -> list[str]:
    """Lines for the user: commit + push when the run changed dvc.lock or a git-carried file, then how to
    compare; when nothing changed, that the run is the committed baseline."""
    repo = Path(repo)
    if not (repo / LOCK).is_file() or not (repo / "dvc.yaml").is_file():
        return []  # nothing has run here (or this is not a DVC workspace): nothing to commit
    changed = uncommitted(repo, [LOCK, *git_carried_outputs(repo)])
    compare = ("compare with the committed baseline: `dvc metrics diff` and `dvc plots diff` (workspace vs "
               "HEAD); every experiment with its params and metrics: `dvc exp show` (README: Comparing runs)")
    if not changed:
        return ["this run is the committed baseline (dvc.lock unchanged since HEAD); `dvc push` stores its "
                "models and data in the DVC remote", compare]
    return [f"keep this run as the baseline: `git add {' '.join(changed)} && git commit -m \"<what changed>\"`, "
            "then `dvc push` (models, data and predictions to the DVC remote; `dvc pull` restores them in a "
            "clone) and `vr pipeline` once more to record the commit on the registered model", compare]
