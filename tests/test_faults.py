"""The fault suite of the flow: what a failed stage or a second flow in the same workspace leaves
behind. (A full disk or a killed writer: tests/test_faults_disk.py; killed training stages:
tests/test_resume.py; a dead MLflow server: tests/test_faults_registry.py.)

- A stage failing midway keeps the earlier stages' outputs; the re-run starts at the failed stage.
- Two flows at once: the second refuses at once naming the holder's pid, or waits with --wait.
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest
import yaml

os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="prefect-home-"))  # before Prefect loads

from flows import registry_tracking  # noqa: E402
from tests.test_faults_disk import leftovers  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------ one flow at a time

HOLDER = textwrap.dedent("""
    import sys
    from flows.pipeline import workspace_lock
    with workspace_lock(sys.argv[1]):
        print("held", flush=True)
        sys.stdin.read()
""")


def test_second_flow_refuses_at_once_naming_the_holder_and_kill_frees_the_lock(tmp_path):
    from flows.pipeline import WorkspaceBusy, pipeline, workspace_lock

    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)], cwd=ROOT, text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert holder.stdout.readline().strip() == "held"
        t0 = time.monotonic()
        with pytest.raises(WorkspaceBusy, match=rf"in use by another pipeline run \(pid {holder.pid} on "):
            pipeline.fn(repo=str(tmp_path))  # the flow body: refuses before touching MLflow or DVC
        assert time.monotonic() - t0 < 5
        assert not (tmp_path / "mlflow").exists()
        t0 = time.monotonic()
        with pytest.raises(WorkspaceBusy, match="--wait SECONDS"), workspace_lock(tmp_path, timeout_s=1.0, poll_s=0.1):
            pass
        assert time.monotonic() - t0 >= 1.0
        os.kill(holder.pid, signal.SIGKILL)  # a crashed flow: the kernel drops its flock
        holder.wait(timeout=30)
        with workspace_lock(tmp_path, timeout_s=10) as lock:
            assert json.loads(lock.read_text())["pid"] == os.getpid()
        assert lock.read_text() == ""  # released: no holder named any more
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(timeout=30)


# ------------------------------------------------------------------------- the flow: failures, two at once

@pytest.fixture(scope="module")
def migrated_db(tmp_path_factory) -> Path:
    """An empty MLflow sqlite store with its tables made: creating them costs seconds, copying it none."""
    from mlflow import MlflowClient

    db = tmp_path_factory.mktemp("template") / "mlflow.db"
    MlflowClient(f"sqlite:///{db}").search_experiments()
    return db


def with_store(root: Path, template: Path) -> Path:
    """root/mlflow/mlflow.db (the embedded default of a workspace) copied from the template."""
    import shutil

    (root / "mlflow").mkdir(parents=True, exist_ok=True)
    shutil.copy(template, root / "mlflow/mlflow.db")
    return root / "mlflow/mlflow.db"


@pytest.fixture()
def engine_free(monkeypatch):
    """The flow body and its stage task as plain functions: real DVC, MLflow and workspace lock, without
    Prefect's engine and its temporary server (tens of seconds; tests/test_flow_e2e.py runs that path)."""
    import flows.pipeline as flow_module

    monkeypatch.setattr(flow_module, "repro_stage", flow_module.repro_stage.fn)
    return flow_module.pipeline.fn


# `vr pipeline` in its own process, the same way (see engine_free); with FLOW_GO set it starts once that file
# exists, its imports done, so the test can line flows up without waiting for their start-up
FLOW_CLI = textwrap.dedent("""
    import os, sys, time
    import mlflow
    import flows.command
    import flows.pipeline as p
    p.repro_stage, p.pipeline = p.repro_stage.fn, p.pipeline.fn
    while os.environ.get("FLOW_GO") and not os.path.exists(os.environ["FLOW_GO"]):
        time.sleep(0.05)
    sys.exit(flows.command.main(sys.argv[1:]))
""")


def _dvc(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd, capture_output=True, text=True, timeout=300,
                          check=False)


def _data_workspace(dest: Path, template_db: Path) -> Path:
    """The repository copied with the small profile and dvc.yaml cut to its first two stages."""
    from tests.test_flow_e2e import SMALL_PROFILE, apply_profile, copy_repo

    copy_repo(dest)
    apply_profile(dest / "params.yaml", SMALL_PROFILE)
    dvc_yaml = yaml.safe_load((dest / "dvc.yaml").read_text())
    dvc_yaml["stages"] = {k: v for k, v in dvc_yaml["stages"].items() if k in ("generate", "ingest")}
    (dest / "dvc.yaml").write_text(yaml.safe_dump(dvc_yaml, sort_keys=False))
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    with_store(dest, template_db)
    return dest


def _set_sources(path: Path, sources: list[dict]) -> None:
    params = yaml.safe_load(path.read_text())
    params["data"]["sources"] = sources
    path.write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.mark.slow
def test_failed_stage_keeps_earlier_outputs_and_the_rerun_starts_there(tmp_path, engine_free, migrated_db,
                                                                       monkeypatch):
    """ingest reads its first source, then meets a truncated annotation file (a download cut short)."""
    from flows.pipeline import StageFailed
    from mlflow import MlflowClient

    pipeline = engine_free
    ws = _data_workspace(tmp_path / "ws", migrated_db)
    (ws / "imports").mkdir()
    (ws / "imports/video_r1.json").write_text('[{"problem_id": 1, "problem": "How many')
    broken = {"name": "cut", "format": "video_r1", "path": "imports/video_r1.json", "split": "test"}
    sources = yaml.safe_load((ws / "params.yaml").read_text())["data"]["sources"]
    _set_sources(ws / "params.yaml", [*sources, broken])
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(ws)
    with pytest.raises(StageFailed, match="stage 'ingest' failed") as info:
        pipeline(repo=str(ws), register_model=False)
    assert not info.value.transient  # bad data is not retried
    assert (ws / "data/raw/synthetic/annotations.jsonl").is_file() and len(list(ws.glob("data/raw/synthetic/videos/*")))
    assert not (ws / "data/interim/records.jsonl").exists() and leftovers(ws / "data") == []
    status = json.loads(_dvc(ws, "status", "--json").stdout)
    assert set(status) == {"ingest"}, status  # generate is up to date
    _, experiment = registry_tracking.tracking_setup(ws)
    (parent,) = MlflowClient().search_runs([experiment], "tags.stage = 'pipeline'")
    assert {k: v for k, v in parent.data.tags.items() if k.startswith("stage.")} == {
        "stage.generate": "ran", "stage.ingest": "failed"}
    assert parent.info.status == "FAILED"

    _set_sources(ws / "params.yaml", sources)
    summary = pipeline(repo=str(ws), register_model=False)
    assert summary["stages"] == {"generate": "skipped", "ingest": "ran"}
    assert (ws / "data/interim/records.jsonl").stat().st_size > 0


TOY_STAGE = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from videoreasoner.core.atomic import write_json
    release = Path(os.environ["TOY_RELEASE"])
    deadline = time.monotonic() + 120
    while not release.exists() and time.monotonic() < deadline:  # held open until the test says so
        time.sleep(0.1)
    write_json("out/result.json", {"values": list(range(5000))})
""")


def _toy_workspace(dest: Path, template_db: Path) -> Path:
    """A DVC workspace with one stage that runs until the test releases it."""
    dest.mkdir()
    (dest / "toy_stage.py").write_text(TOY_STAGE)
    (dest / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"toy": {
        "cmd": "python toy_stage.py", "deps": ["toy_stage.py"], "outs": ["out/result.json"]}}}))
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    assert _dvc(dest, "init", "-q").returncode == 0
    with_store(dest, template_db)
    return dest


def _flow(ws: Path, env: dict, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", FLOW_CLI, "--repo", str(ws), "--no-register", *args],
                            cwd=ws, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow
def test_two_flows_at_once_second_refuses_third_waits(tmp_path, migrated_db):
    from flows.pipeline import LOCK_FILE

    ws = _toy_workspace(tmp_path / "ws", migrated_db)
    release = tmp_path / "release"
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env.update(PYTHONPATH=str(ROOT), TOY_RELEASE=str(release))
    first = _flow(ws, env)
    go = {**env, "FLOW_GO": str(tmp_path / "go")}
    second, third = _flow(ws, go), _flow(ws, go, "--wait", "240")
    procs = [first, second, third]
    try:
        deadline = time.monotonic() + 120
        while not (ws / LOCK_FILE).is_file() or f'"pid": {first.pid}' not in (ws / LOCK_FILE).read_text():
            assert first.poll() is None, first.stdout.read()[-3000:]
            assert time.monotonic() < deadline, "the first flow did not take the workspace lock"
            time.sleep(0.1)
        (tmp_path / "go").touch()  # the other two start now, while the first holds the workspace
        t0 = time.monotonic()
        out, _ = second.communicate(timeout=120)
        assert second.returncode == 75, out[-3000:]
        assert f"in use by another pipeline run (pid {first.pid}" in out
        assert time.monotonic() - t0 < 30 and first.poll() is None and third.poll() is None
        assert not (ws / "out").exists()

        release.touch()
        out_first, _ = first.communicate(timeout=240)
        assert first.returncode == 0, out_first[-3000:]
        out_third, _ = third.communicate(timeout=240)
        assert third.returncode == 0, out_third[-3000:]
        assert "workspace busy" in out_third and "stages: toy skipped" in out_third
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
    assert json.loads((ws / "out/result.json").read_text()) == {"values": list(range(5000))}
    assert "up to date" in _dvc(ws, "status").stdout.lower()
    assert leftovers(ws / "out") == []


def test_a_stage_run_left_running_by_a_dead_attempt_is_ended_failed(tmp_path, migrated_db):
    """A stage attempt that died (killed, or MLflow away longer than its client's retries) cannot end its
    own run; once the stage's last attempt has exited, the flow ends it FAILED, saying why, and leaves the
    retry's finished run and other pipeline runs alone."""
    from mlflow import MlflowClient

    from flows.pipeline import UNENDED_RUN, tag_stage_runs

    client = MlflowClient(f"sqlite:///{with_store(tmp_path, migrated_db)}")
    experiment = client.create_experiment("videoreasoner")
    mine = {"pipeline_run_id": "p1", "stage": "sft"}
    dead = client.create_run(experiment, tags=mine).info.run_id  # the first attempt: never ended
    retry = client.create_run(experiment, tags=mine).info.run_id
    client.set_terminated(retry, "FINISHED")
    other = client.create_run(experiment, tags={"pipeline_run_id": "p2", "stage": "sft"}).info.run_id
    parent = client.create_run(experiment).info.run_id

    tags = {"pipeline_run_id": "p1", "dvc_lock.sft": "lock-sft", "git_commit": "c1"}
    assert tag_stage_runs(client, experiment, "sft", tags, parent) == 2
    assert client.get_run(dead).info.status == "FAILED"
    assert client.get_run(dead).data.tags["closed_by_pipeline"] == UNENDED_RUN
    assert client.get_run(retry).info.status == "FINISHED" and "closed_by_pipeline" not in client.get_run(retry).data.tags
    assert client.get_run(other).info.status == "RUNNING"  # another pipeline run's stage: not ours to end
    for run_id in (dead, retry):
        assert client.get_run(run_id).data.tags["mlflow.parentRunId"] == parent
        assert client.get_run(run_id).data.tags["dvc_lock_hash"] == "lock-sft"
