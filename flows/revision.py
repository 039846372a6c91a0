"""The DVC revision a registered model came from: the git commit whose dvc.lock describes the workspace's
outputs, so `git checkout <rev> && dvc pull` restores that model, its data and its reports from the DVC
remote. A run the user has not committed yet has no such commit: its version is tagged `uncommitted`,
and `vr pipeline`, run again after the commit, fills the tag in (`record_revision`)."""
from __future__ import annotations

import subprocess
from pathlib import Path

REV_TAG = "dvc_rev"
UNCOMMITTED = "uncommitted"


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=30)


def dvc_revision(repo: str | Path) -> str:
    """HEAD's commit when dvc.lock is committed there unchanged; `uncommitted` when the workspace's
    dvc.lock is new or differs from HEAD's (or there is no git history)."""
    repo = Path(repo).resolve()
    head = _git(repo, "rev-parse", "--verify", "HEAD")
    if head.returncode != 0 or not (repo / "dvc.lock").is_file():
        return UNCOMMITTED
    tracked = _git(repo, "ls-files", "--error-unmatch", "dvc.lock").returncode == 0
    unchanged = _git(repo, "diff", "--quiet", "HEAD", "--", "dvc.lock").returncode == 0
    return head.stdout.strip() if tracked and unchanged else UNCOMMITTED


def record_revision(repo: str | Path, model_name: str, version: str) -> str | None:
    """Tag `version` with the workspace's revision when the version still says `uncommitted` and the
    workspace's dvc.lock (the state the version was registered from) is now committed. Returns the
    revision written, or None when there was nothing to write."""
    from flows.registry_tracking import mlflow_client
    from flows.retries import retrying

    client = mlflow_client()
    tags = retrying(f"reading {model_name} version {version}", client.get_model_version, model_name, version).tags
    rev = dvc_revision(repo)
    if (tags or {}).get(REV_TAG, UNCOMMITTED) != UNCOMMITTED or rev == UNCOMMITTED:
        return None
    retrying(f"tagging {model_name} version {version}", client.set_model_version_tag, model_name, version,
             REV_TAG, rev)
    return rev
