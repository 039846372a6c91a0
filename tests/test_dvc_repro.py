"""`dvc repro` of the data stages in a temporary copy of the repository: it runs them all, writes the
declared outputs, and an immediate second `dvc repro` runs nothing."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def copy_repo(dest: Path) -> None:
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           check=True, capture_output=True, text=True).stdout.split()
    for rel in files:
        if (ROOT / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dest / rel)


def small_params(path: Path) -> None:
    params = yaml.safe_load(path.read_text())
    params["data"]["synthetic"]["videos"] = {"train": 6, "val": 2, "test": 3}
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def dvc(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               DVC_NO_ANALYTICS="1", GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@t")
    return subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def test_dvc_repro_runs_the_data_stages_then_nothing(tmp_path):
    copy_repo(tmp_path)
    small_params(tmp_path / "params.yaml")
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)

    first = dvc(tmp_path, "repro", "validate")
    assert first.returncode == 0, first.stdout + first.stderr
    for stage in ("generate", "ingest", "validate"):
        assert f"Running stage '{stage}'" in first.stdout
    for split in ("train", "val", "test"):
        assert (tmp_path / f"data/validated/{split}.jsonl").stat().st_size > 0
    result = json.loads((tmp_path / "reports/validation/result.json").read_text())
    assert result["success"] is True
    assert (tmp_path / "dvc.lock").is_file()

    second = dvc(tmp_path, "repro", "validate")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "Running stage" not in second.stdout
    status = dvc(tmp_path, "status", "validate")
    assert "up to date" in status.stdout.lower(), status.stdout
