"""Where a run stands with git and DVC, without training anything: the files git carries (dvc.yaml's
`cache: false` outputs), what `vr pipeline` tells the user to commit, the DVC revision a registered
version records (and fills in once the run is committed), the DVC experiment's name on MLflow runs, and
a queued experiment's stages tracking into the workspace it was queued from."""
import subprocess
from pathlib import Path

import pytest
import yaml

from flows import next_steps, revision
from videoreasoner.core import tracking

ROOT = Path(__file__).resolve().parents[1]
GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]


def test_git_carries_exactly_the_small_metrics_and_plots_files():
    carried = next_steps.git_carried_outputs(ROOT)
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        for entry in stage.get("metrics", []) + stage.get("plots", []):
            path = entry if isinstance(entry, str) else next(iter(entry))
            assert path in carried, f"stage {name}: metrics/plots file {path} is cached, so git cannot carry it"
    assert "reports/eval/summary.json" in carried and "reports/rl/curves.csv" in carried
    assert not any(p.startswith(("models/", "data/")) for p in carried)
    ignored = subprocess.run(["git", "check-ignore", "--no-index", *carried], cwd=ROOT, capture_output=True,
                             text=True).stdout.split()
    assert ignored == [], f"git-ignored, so they cannot be committed: {ignored}"
    big = ["models/rl/model.safetensors", "data/validated/test.jsonl", "reports/eval/predictions/rl.jsonl",
           "reports/eval/items.jsonl", "reports/validation/data_docs/index.html"]
    still = subprocess.run(["git", "check-ignore", "--no-index", *big], cwd=ROOT, capture_output=True,
                           text=True).stdout.split()
    assert still == big


@pytest.fixture()
def repo(tmp_path):
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"s": {
        "cmd": "true", "outs": ["models/x", {"reports/r.json": {"cache": False}}],
        "metrics": [{"reports/m.json": {"cache": False}}]}}}))
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports/m.json").write_text("{}")
    (tmp_path / "reports/r.json").write_text("{}")
    (tmp_path / "dvc.lock").write_text("schema: '2.0'\n")
    return tmp_path


def test_next_steps_name_the_files_to_commit_then_say_the_run_is_the_baseline(repo):
    lines = next_steps.next_steps(repo)
    assert "git add dvc.lock reports/r.json reports/m.json && git commit" in lines[0]
    assert "dvc push" in lines[0] and "dvc metrics diff" in lines[1]
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run([*GIT, "commit", "-qm", "run"], cwd=repo, check=True)
    assert next_steps.next_steps(repo)[0].startswith("this run is the committed baseline")
    (repo / "reports/m.json").write_text('{"AM": 1}')
    assert "git add reports/m.json && git commit" in next_steps.next_steps(repo)[0]


def test_dvc_revision_is_the_commit_holding_this_dvc_lock(repo):
    assert revision.dvc_revision(repo) == revision.UNCOMMITTED  # no commit yet
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run([*GIT, "commit", "-qm", "run"], cwd=repo, check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    assert revision.dvc_revision(repo) == head
    (repo / "dvc.lock").write_text("schema: '2.0'\nstages: {}\n")  # a new run, not committed yet
    assert revision.dvc_revision(repo) == revision.UNCOMMITTED


@pytest.fixture()
def own_store(monkeypatch):
    """MLflow on the test's own store; the process-wide tracking URI is reset afterwards."""
    import mlflow

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    yield
    mlflow.set_tracking_uri(None)


def test_a_version_registered_before_the_commit_gets_the_revision_afterwards(repo, monkeypatch, own_store):
    from flows import registration, registry_tracking
    from flows.gates import load_rules
    from tests.fixtures.pyfunc_stub import canned_answer_factory

    monkeypatch.chdir(repo)
    registry_tracking.tracking_setup(repo)
    (repo / "rl").mkdir()
    (repo / "rl/config.json").write_text("{}")
    (repo / "policy.json").write_text("{}")
    rules = load_rules(ROOT / "mlflow/registry.yaml")
    tags = {revision.REV_TAG: revision.dvc_revision(repo)}
    version = registration.register(rules, repo / "rl", repo / "policy.json", {}, tags=tags,
                                    predictor_factory=canned_answer_factory)
    client = registry_tracking.mlflow_client()
    assert client.get_model_version(rules.model_name, version).tags[revision.REV_TAG] == revision.UNCOMMITTED
    assert revision.record_revision(repo, rules.model_name, version) is None  # still not committed
    subprocess.run(["git", "add", "dvc.lock"], cwd=repo, check=True)
    subprocess.run([*GIT, "commit", "-qm", "run"], cwd=repo, check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    assert revision.record_revision(repo, rules.model_name, version) == head
    assert client.get_model_version(rules.model_name, version).tags[revision.REV_TAG] == head
    assert revision.record_revision(repo, rules.model_name, version) is None  # a recorded revision stays


def test_stage_runs_carry_the_dvc_experiment_and_track_into_the_queuing_workspace(tmp_path, monkeypatch,
                                                                                  own_store):
    monkeypatch.delenv("DVC_ROOT", raising=False)
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    assert tracking.tracking_uri() == tracking.DEFAULT_URI and tracking.dvc_experiment_tags() == {}
    # a queued experiment runs in a temporary copy; DVC points DVC_ROOT at the workspace it came from
    monkeypatch.setenv("DVC_ROOT", str(tmp_path / "workspace"))
    monkeypatch.setenv("DVC_EXP_NAME", "sweep-1")
    monkeypatch.setenv("DVC_EXP_BASELINE_REV", "abc123")
    assert tracking.tracking_uri() == f"sqlite:///{(tmp_path / 'workspace').resolve() / 'mlflow/mlflow.db'}"
    assert tracking.dvc_experiment_tags() == {"dvc_exp_name": "sweep-1", "dvc_exp_baseline_rev": "abc123"}
    copy = tmp_path / "exps/tmp1"
    copy.mkdir(parents=True)
    monkeypatch.chdir(copy)
    with tracking.stage_run("rl", {"rl": {"variant": "gspo"}}) as run:
        run_id = run._mlflow.active_run().info.run_id
    import mlflow

    stored = mlflow.MlflowClient().get_run(run_id)
    assert stored.data.tags["dvc_exp_name"] == "sweep-1"
    assert (tmp_path / "workspace/mlflow/mlflow.db").is_file() and not (copy / "mlflow").exists()
    assert stored.info.artifact_uri.startswith((tmp_path / "workspace/mlflow/artifacts").resolve().as_uri())


def test_a_float_dvc_exp_run_writes_into_params_yaml_loads_as_a_number(tmp_path):
    """`dvc exp run -S rl.learning_rate=1e-5` makes DVC (ruamel, YAML 1.2) write `1e-05`, which PyYAML's
    YAML 1.1 read as the string '1e-05': every rl run of the sweep failed in the optimizer."""
    import io as _io

    from ruamel.yaml import YAML

    from videoreasoner.core.params import load_params

    buf = _io.StringIO()
    YAML().dump({"rl": {"learning_rate": 1e-5, "max_steps": 2, "name": "1e-5x"}}, buf)
    assert "1e-05" in buf.getvalue()
    (tmp_path / "params.yaml").write_text(buf.getvalue() + "quoted: '1e-05'\n")
    params = load_params(tmp_path / "params.yaml")
    assert params["rl"] == {"learning_rate": 1e-5, "max_steps": 2, "name": "1e-5x"}
    assert params["quoted"] == "1e-05"  # a quoted value stays text
