"""Comparing runs the DVC way, on the tiny profile (tests/helpers_dvc_workspace.py), with the README's
commands exactly as written (section "Comparing runs", every ```bash block): a committed baseline, a
queued rl.variant x rl.learning_rate sweep run by one worker in queue order, `dvc exp show` with no `!`
(unreadable) cell, `dvc metrics diff` / `dvc plots diff` between commits and experiments, every stage's
MLflow run in the workspace's store under its experiment's name, `dvc push` -> a fresh clone -> `dvc pull`
-> `dvc status` clean and `dvc repro` running nothing, and a registered version that records the DVC
revision it came from. One workspace for the whole module: the baseline and the sweep run once."""
from __future__ import annotations

import csv
import io
import re
import time
from pathlib import Path

import pytest

from tests.helpers_dvc_workspace import ROOT, make_workspace, sh

pytestmark = pytest.mark.slow
SECTION = "## Comparing runs"
QUEUE_DONE_S = 900  # the tiny sweep takes minutes on 2 cores; a hung worker fails instead of blocking CI


def readme_blocks() -> list[list[str]]:
    """The command lines of each ```bash block of the README's "Comparing runs" section."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, re.S)
    assert blocks, f"README.md: no bash block under {SECTION!r}"
    return [[line.strip() for line in block.splitlines() if line.strip()] for block in blocks]


def wait_for_queue(cwd: Path) -> str:
    """`dvc queue start` returns at once; the test (a user watching `dvc queue status`) waits for the
    worker to finish every queued experiment."""
    deadline = time.monotonic() + QUEUE_DONE_S
    while True:
        status = sh(cwd, "dvc queue status").stdout
        if not re.search(r"\b(Queued|Running)\b", status):
            return status
        assert time.monotonic() < deadline, f"queue still busy after {QUEUE_DONE_S} s:\n{status}"
        time.sleep(5)


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """Run the README's blocks in order; `cd` lines move the working directory as in a shell. Returns
    {command line: its stdout} plus the workspace and the clone."""
    parent = tmp_path_factory.mktemp("compare")
    workspace = make_workspace(parent / "videoreasoner")  # the README's clone line names this folder
    cwd, outputs = workspace, {}
    try:
        for block in readme_blocks():
            for line in block:
                command = line.split(" #", 1)[0].strip()
                if command.startswith("cd "):
                    cwd = (cwd / command[3:].strip()).resolve()
                    continue
                outputs[command] = sh(cwd, command, timeout=1200).stdout
                if command.startswith("dvc queue start"):
                    outputs["queue finished"] = wait_for_queue(cwd)
    finally:
        sh(workspace, "dvc queue stop --kill || true")  # no worker outlives the test
    return {"workspace": workspace, "clone": cwd, "out": outputs}


def _command(session, prefix: str) -> str:
    found = [c for c in session["out"] if c.startswith(prefix)]
    assert found, f"the README's Comparing runs section has no `{prefix} ...` command"
    return session["out"][found[0]]


def test_the_sweep_runs_every_grid_point_in_queue_order(session):
    status = session["out"]["queue finished"]
    names = [f"sweep-{i}" for i in range(1, 5)]  # 2 variants x 2 learning rates, named by -n sweep
    for name in names:
        assert re.search(rf"{name}\s.*Success", status), status
    from mlflow import MlflowClient

    uri = f"sqlite:///{session['workspace'] / 'mlflow/mlflow.db'}"
    runs = MlflowClient(tracking_uri=uri).search_runs(
        [MlflowClient(tracking_uri=uri).get_experiment_by_name("videoreasoner").experiment_id],
        "tags.dvc_exp_name LIKE 'sweep-%'", max_results=1000)
    started = {}
    for run in runs:  # each experiment's stages tracked into the workspace's store, named after it
        started.setdefault(run.data.tags["dvc_exp_name"], {})[run.data.tags["stage"]] = run.info.start_time
    assert sorted(started) == names, sorted(started)
    order = ["rl", "tts", "evaluate"]  # tts and evaluate run only when rl's model files changed (on this
    for name in names:                 # profile one rl step may leave them as they were: DVC skips both)
        ran = sorted(started[name], key=started[name].get)
        assert ran == order[:len(ran)] and ran[0] == "rl", (name, ran)
    firsts = [min(started[n].values()) for n in names]
    lasts = [max(started[n].values()) for n in names]
    assert all(lasts[i] < firsts[i + 1] for i in range(len(names) - 1)), "experiments overlapped or ran out of order"


def test_exp_show_reads_every_cell_of_the_baseline_and_the_experiments(session):
    table = sh(session["workspace"], "dvc exp show --csv").stdout
    rows = list(csv.DictReader(io.StringIO(table)))
    assert {r["Experiment"] for r in rows} >= {f"sweep-{i}" for i in range(1, 5)}
    assert len(rows) == 6, table  # the workspace, the committed baseline and the four experiments
    unreadable = sorted({col for r in rows for col, v in r.items() if v == "!"})
    assert not unreadable, f"dvc exp show could not read: {unreadable}"
    shown = _command(session, "dvc exp show")
    for column in ("rl.variant", "rl.learning_rate", "headline.AM", "ladder_gains."):
        assert column in shown, shown
    assert "!" not in shown and shown.count("sweep-") == 4


def test_metrics_and_plots_diff_compare_a_commit_with_an_experiment(session):
    diff = _command(session, "dvc metrics diff")
    assert "reports/rl/metrics.json" in diff and "sweep-2" in diff, diff
    _command(session, "dvc plots diff")
    html = (session["workspace"] / "reports/plots/index.html").read_text(encoding="utf-8")
    assert "sweep-1" in html and "HEAD" in html


def test_a_fresh_clone_pulls_the_run_and_reproduces_nothing(session):
    clone = session["clone"]
    assert clone != session["workspace"] and (clone / "models/rl").is_dir()
    assert "up to date" in _command(session, "dvc status").lower()
    repro = _command(session, "dvc repro")
    assert "Running stage" not in repro, repro


def test_the_registered_version_records_the_dvc_revision(session, monkeypatch):
    from flows import registry_tracking
    from flows.gates import load_rules
    from flows.lineage import lineage_tags
    from flows.registration import register_workspace
    from flows.revision import REV_TAG

    workspace = session["workspace"]
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(workspace)
    registry_tracking.tracking_setup(workspace)
    rules = load_rules(workspace / "mlflow/registry.yaml")
    result = register_workspace(workspace, rules, tags=lineage_tags(workspace))
    head = sh(workspace, "git rev-parse HEAD").stdout.strip()
    tags = registry_tracking.mlflow_client().get_model_version(rules.model_name, result["version"]).tags
    assert tags[REV_TAG] == head  # `git checkout <dvc_rev> && dvc pull` restores this model
    import mlflow

    mlflow.set_tracking_uri(None)
