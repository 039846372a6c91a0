"""The flow runs the stages in dvc.yaml's DAG order, as DVC itself sees the graph (`dvc dag --dot`), and
only transient failures are retried. The flow body runs here without Prefect's engine (a stub stands in
for the `dvc repro` task); tests/test_flow_e2e.py runs the real thing."""
import os
import tempfile
import textwrap
from pathlib import Path

import pytest

os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="prefect-home-"))  # before Prefect loads
from flows import dag, pipeline  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def dvc_order(repo) -> list[str]:
    """A topological order of DVC's own graph, ties broken by declaration order in dvc.yaml."""
    nodes, edges = dag.dvc_edges(repo)
    declared = [s for s in dag.load_stages(repo) if s in nodes]
    assert set(declared) == nodes
    order: list[str] = []
    while len(order) < len(declared):
        order.append(next(s for s in declared if s not in order
                          and all(a in order for a, b in edges if b == s)))
    return order


def test_flow_order_equals_dvc_dag_order():
    assert dag.stage_order(ROOT) == dvc_order(ROOT)


FUTURE = textwrap.dedent("""
    stages:
      evaluate: {cmd: python -m stages.evaluate, deps: [models/rl, reports/tts/policy.json, data/validated],
                 outs: [reports/eval/predictions], metrics: [{reports/eval/metrics.json: {cache: false}}]}
      tts: {cmd: python -m stages.tts, deps: [models/rl, data/validated/val.jsonl], outs: [reports/tts]}
      rl: {cmd: python -m stages.rl, deps: [models/sft, data/validated/train.jsonl], outs: [models/rl]}
      sft: {cmd: python -m stages.sft, deps: [models/base, data/validated/train.jsonl], outs: [models/sft]}
      validate: {cmd: python -m stages.validate, deps: [data/interim/records.jsonl], outs: [data/validated]}
      bootstrap: {cmd: python -m stages.bootstrap, deps: [data/validated/train.jsonl], outs: [models/base]}
      ingest: {cmd: python -m stages.ingest, deps: [data/raw/synthetic/annotations.jsonl],
               outs: [data/interim/records.jsonl]}
      generate: {cmd: python -m stages.generate, outs: [data/raw/synthetic]}
""")


def test_order_of_the_full_pipeline_declared_out_of_order(tmp_path):
    (tmp_path / "dvc.yaml").write_text(FUTURE)
    expected = ["generate", "ingest", "validate", "bootstrap", "sft", "rl", "tts", "evaluate"]
    assert dag.stage_order(tmp_path) == expected
    assert dag.upstream("tts", tmp_path) == ["generate", "ingest", "validate", "bootstrap", "sft", "rl", "tts"]
    (tmp_path / ".dvc").mkdir()  # DVC agrees (an empty DVC repo needs no git)
    (tmp_path / ".dvc/config").write_text("[core]\n    no_scm = true\n")
    assert dvc_order(tmp_path) == expected


def test_cycle_is_an_error(tmp_path):
    (tmp_path / "dvc.yaml").write_text("stages:\n  a: {cmd: x, deps: [b.txt], outs: [a.txt]}\n"
                                       "  b: {cmd: y, deps: [a.txt], outs: [b.txt]}\n")
    with pytest.raises(ValueError, match="cycle"):
        dag.stage_order(tmp_path)


def test_flow_body_runs_stages_in_dag_order(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    calls = []

    def fake_repro(stage, repo, force=False, env=None):
        calls.append(stage)
        assert env["PIPELINE_RUN_ID"] and env["MLFLOW_PARENT_RUN_ID"] and "MLFLOW_RUN_ID" not in env
        return "skipped"

    monkeypatch.setattr(pipeline, "repro_stage", fake_repro)
    summary = pipeline.pipeline.fn(repo=str(ROOT), register_model=False)
    frozen = [s for s, spec in dag.load_stages(ROOT).items() if spec.get("frozen")]
    assert frozen == ["pretrain"]  # its committed output is the default base: never re-run by the flow
    assert calls == [s for s in dvc_order(ROOT) if s not in frozen]
    assert list(summary["stages"]) == calls


def test_only_transient_failures_are_retried():
    assert pipeline.is_transient(1, ["ERROR: Unable to acquire lock. Most likely another DVC process"])
    assert pipeline.is_transient(1, ["sqlite3.OperationalError: database is locked\n"])
    assert pipeline.is_transient(-9, [])  # preempted
    assert not pipeline.is_transient(1, ["KeyError: 'answer'\n"])
    assert not pipeline.is_transient(2, ["ERROR: failed to reproduce 'sft': output 'models/sft' does not exist"])

    class State:
        def __init__(self, exc):
            self.exc = exc

        def result(self, raise_on_failure=True):
            return self.exc

    transient = pipeline.StageFailed("sft", 1, ["database is locked"], transient=True)
    assert pipeline._retry_if_transient(None, None, State(transient))
    assert not pipeline._retry_if_transient(None, None, State(pipeline.StageFailed("sft", 1, [], False)))
    assert not pipeline._retry_if_transient(None, None, State(ValueError("bug")))


def test_deployment_and_work_pool_declarations():
    import json

    import yaml

    from flows import servers

    spec = servers.deployment_spec(ROOT / "infra/prefect.yaml", "nightly")
    module, name = spec["entrypoint"].split(":")
    assert (ROOT / module).is_file() and getattr(pipeline, name).name == "videoreasoner-pipeline"
    assert spec["work_pool"]["name"].endswith("process") and spec["schedules"][0]["cron"].count(" ") == 4
    assert set(spec["parameters"]) <= set(pipeline.pipeline.parameters.properties)
    # a Prefect server restart of a few minutes is ridden out, as long as MLflow's client does
    assert int(spec["work_pool"]["job_variables"]["env"]["PREFECT_CLIENT_MAX_RETRIES"]) >= 7
    template = json.loads((ROOT / "infra/k8s/gpu-work-pool.json").read_text())
    container = template["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "{{ gpu_count }}"
    assert "gpu_count" in template["variables"]["properties"]
    assert yaml.safe_load((ROOT / "infra/prefect.yaml").read_text())["prefect-version"] == "3.8.8"


def test_mlflow_server_command_and_auth_env(tmp_path):
    from flows import servers

    cmd = servers.mlflow_server_command(tmp_path, port=5099)
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1"
    assert cmd[cmd.index("--backend-store-uri") + 1] == f"sqlite:///{tmp_path.resolve() / 'mlflow/mlflow.db'}"
    assert "--app-name" not in cmd
    with pytest.raises(SystemExit, match="MLFLOW_TRACKING_USERNAME"):
        servers.auth_environment(tmp_path, {}, tmp_path)
    env = servers.auth_environment(tmp_path, {"MLFLOW_TRACKING_USERNAME": "ops",
                                              "MLFLOW_TRACKING_PASSWORD": "a-long-password"}, tmp_path)
    config = Path(env["MLFLOW_AUTH_CONFIG_PATH"]).read_text()
    assert "admin_username = ops" in config and "a-long-password" not in config
    assert env["MLFLOW_AUTH_ADMIN_PASSWORD"] == "a-long-password" and env["MLFLOW_FLASK_SERVER_SECRET_KEY"]


@pytest.mark.parametrize("line,kept", [
    ("INFO stages.sft: sft: 120 steps\n", True),
    ("Running stage 'sft':\n", True),
    ("\n", False),
    ("   \n", False),
    ("generate:  40%|████      | 4/10 [00:01<00:02,  3.1video/s]\n", False),
    ("generate: 100%|██████████| 10/10 [00:03<00:00,  3.1video/s]\n", True),
])
def test_stage_log_lines_skip_blank_lines_and_progress_redraws(line, kept):
    from flows.pipeline import worth_logging

    assert worth_logging(line) is kept


# The last lines of a 2-rank DeepSpeed job (tests/test_zero3_kill_resume.py's output): rank 1 killed
# with SIGKILL, rank 0 then failing in a collective. Which rank the launcher names first is a race.
_LOST = "[rank0]: RuntimeError: [/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:561] " \
        "Connection closed by peer [127.0.0.1]:43161. This is typically caused by a remote worker crashing.\n"
_EXITS = "[2026-12-04 22:32:46,186] [ERROR] [launch.py:259:sigkill_handler] ['/venv/bin/python', '-u', '-m', " \
         "'stages.sft', '--local_rank={}'] exits with return code = {}\n"


def test_a_killed_rank_is_transient_a_rank_that_raised_is_not():
    assert pipeline.is_transient(247, [_LOST, _EXITS.format(1, -9)])  # the killed rank named
    assert pipeline.is_transient(1, ["[rank0]: Traceback (most recent call last):\n", _LOST,
                                     _EXITS.format(0, 1)])  # its peer named: nothing but the lost peer raised
    assert pipeline.is_transient(1, ["torch.distributed.elastic.multiprocessing.errors.ChildFailedError:\n",
                                     "  exitcode  : -9 (pid: 4242)\n", "Signal 9 (SIGKILL) received by PID 4242\n"])
    bug = ["[rank1]: ValueError: params sft.max_steps must be positive\n", _LOST, _EXITS.format(1, 1)]
    assert not pipeline.is_transient(1, bug)  # a bug on one rank leaves its peer without a connection too
    assert not pipeline.is_transient(1, ["[rank0]: KeyError: 'answer'\n", _EXITS.format(0, 1)])
