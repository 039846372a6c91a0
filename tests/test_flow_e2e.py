"""The Prefect flow end to end on a small profile, in a temporary copy of the repository, on the embedded
MLflow default: every stage runs in DAG order; an immediate second run skips every stage (and registers
nothing new); the registry holds a champion with its lineage tags; the champion pyfunc answers a
question about a generated video. Slow: it trains the tiny model (minutes on a CPU)."""
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml

os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="prefect-home-"))  # before Prefect loads
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]

# The small profile: a handful of videos, a few optimisation steps, the smallest TTS sweep and
# evaluation. A key is set only where its top-level params section exists (a stage reads only its sections).
SMALL_PROFILE = {
    "data.synthetic.videos": {"train": 6, "val": 2, "test": 3},
    "model.alignment.max_steps": 2,
    "sft.max_steps": 2, "sft.save_steps": 2, "sft.logging_steps": 1, "sft.loss_gap_items": 2,
    "rl.max_steps": 1, "rl.num_generations": 2, "rl.per_device_train_batch_size": 2,
    "rl.max_completion_length": 16, "rl.max_records": 4, "rl.logging_steps": 1, "rl.save_steps": 1,
    "tts.max_items_per_type": 1, "tts.strategies": ["greedy", "self_consistency"], "tts.n": [2],
    "tts.frames": [4], "tts.decoding.max_new_tokens": 16, "tts.n_boot": 20,
    "eval.max_items_per_type": 1, "eval.decoding.max_new_tokens": 16, "eval.n_boot": 20,
    "eval.controls": ["blank"],
}


def copy_repo(dest: Path) -> None:
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           check=True, capture_output=True, text=True).stdout.split()
    for rel in files:
        if (ROOT / rel).is_file() and rel != "dvc.lock":
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dest / rel)


def apply_profile(path: Path, profile: dict) -> list[str]:
    params = yaml.safe_load(path.read_text())
    applied = []
    for dotted, value in profile.items():
        section, *middle, key = dotted.split(".")
        node = params.get(section)
        for part in middle:
            node = node.setdefault(part, {}) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node[key] = value
            applied.append(dotted)
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return applied


@pytest.fixture(scope="session")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield


@pytest.fixture()
def workspace(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    copy_repo(repo)
    apply_profile(repo / "params.yaml", SMALL_PROFILE)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "e2e"], cwd=repo, check=True)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # the embedded default of the copy
    monkeypatch.chdir(repo)
    return repo


def test_flow_end_to_end(workspace, prefect_harness):
    import mlflow
    from mlflow import MlflowClient

    from flows import aliases
    from flows.dag import runnable_stages
    from flows.gates import load_rules
    from flows.lineage import already_done
    from flows.pipeline import pipeline
    from videoreasoner.core.atomic import read_jsonl

    order = runnable_stages(workspace)  # the frozen pretrain stage is never run by the flow
    assert already_done(workspace) is None  # nothing has run
    first = pipeline(repo=str(workspace))
    assert list(first["stages"]) == order
    assert all(status == "ran" for status in first["stages"].values()), first["stages"]
    assert first["tracking_uri"] == f"sqlite:///{workspace / 'mlflow/mlflow.db'}"

    second = pipeline(repo=str(workspace))
    assert all(status == "skipped" for status in second["stages"].values()), second["stages"]
    assert second["registry"]["registered"] is False
    # `vr pipeline` checks this before starting Prefect: an up-to-date re-run costs seconds
    assert f"version {first['registry']['version']} holds this state" in already_done(workspace)
    report_code = workspace / "videoreasoner/inference/report.py"
    report_code.write_text(report_code.read_text() + "\n")
    assert already_done(workspace) is None  # a changed dependency: evaluate must re-run

    from videoreasoner.core.machine import cpu_model

    client = MlflowClient()
    parent = client.get_run(first["mlflow_run_id"])
    assert parent.info.status == "FINISHED" and parent.data.tags["git_commit"] != "unknown"
    children = client.search_runs([parent.info.experiment_id],
                                  f"tags.pipeline_run_id = '{first['pipeline_run_id']}'")
    stage_runs = [r for r in children if r.data.tags.get("stage") in order]
    assert stage_runs, "no stage logged an MLflow run"
    for run in stage_runs:
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.data.tags["dvc_lock_hash"] not in ("", "none")
        assert run.data.tags["machine.cpu"] == cpu_model()  # the machine each stage computed on

    rules = load_rules(workspace / "mlflow/registry.yaml")
    champion = aliases.alias_version(rules, rules.champion)
    assert champion == first["registry"]["version"] == second["registry"]["version"]
    tags = client.get_model_version(rules.model_name, champion).tags
    for key in ("git_commit", "pipeline_run_id", "dvc_lock_hash", "dvc_lock.rl", "dvc_lock.evaluate"):
        assert tags.get(key) not in (None, "", "none"), key
    assert tags["pipeline_run_id"] == first["pipeline_run_id"]

    record = next(r for r in read_jsonl(workspace / "data/validated/test.jsonl")
                  if r["problem_type"] == "multiple_choice")
    model = mlflow.pyfunc.load_model(f"models:/{rules.model_name}@champion")
    answers = model.predict({"video": str(workspace / record["video"]), "question": record["question"],
                             "problem_type": record["problem_type"], "options": record["options"]})
    assert len(answers) == 1 and isinstance(answers[0]["text"], str) and answers[0]["text"].strip()
    assert len(answers[0]["frame_times"]) > 0 and answers[0]["latency_s"] > 0
