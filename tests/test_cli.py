"""`vr` returns every command's exit code (issue 14, item 2): a failed data gate once exited 0 through it.

Class-wide: every stage's and flow command's main() returns an int and its `python -m` entry passes it to
the interpreter; `vr` refuses a main that returns anything else. Then each subcommand's failure path,
in-process through vr.cli.main, and the installed `vr` console script in a real process.
"""
from __future__ import annotations

import ast
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from vr import cli

ROOT = Path(__file__).resolve().parents[1]
FORWARDED_MODULES = {"pipeline": "flows.command", "registry": "flows.registry_cli", "servers": "flows.servers",
                     "score": "videoreasoner.answers.score", "predict": "flows.predict"}
ENTRY_MODULES = [*(f"stages.{name}" for name in cli.STAGES), *FORWARDED_MODULES.values(),
                 "videoreasoner.training.launch", "flows.evaluate_model"]
NAN_RECORD = {"id": "bad:1", "video": "v.mp4", "duration": 2.0, "problem_type": "temporal_grounding",
              "question": "When does it move?", "answer": [float("nan"), 1.0], "split": "train", "source": "t"}


def _module_tree(module: str) -> ast.Module:
    return ast.parse((ROOT / (module.replace(".", "/") + ".py")).read_text(encoding="utf-8"))


@pytest.mark.parametrize("module", ENTRY_MODULES)
def test_every_entry_main_returns_an_int_and_python_m_exits_with_it(module):
    """Read from the source (importing the training stages costs seconds each): `def main(...) -> int`,
    and the `if __name__ == "__main__":` block hands main()'s value to sys.exit / SystemExit."""
    tree = _module_tree(module)
    (main,) = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "main"]
    assert main.returns is not None and ast.unparse(main.returns) == "int", module
    guard = [n for n in tree.body if isinstance(n, ast.If) and "__main__" in ast.unparse(n.test)]
    assert len(guard) == 1, module
    body = ast.unparse(guard[0])
    assert "sys.exit(main(" in body or "SystemExit(main(" in body, (module, body)


def test_the_console_script_is_the_cli_main():
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert 'vr = "vr.cli:main"' in text  # setuptools' wrapper runs sys.exit(main())


@pytest.mark.parametrize("command", list(cli.STAGES))
def test_vr_returns_each_stages_exit_code(command, monkeypatch):
    fake = type(sys)("fake_stage")
    fake.main = lambda: 3
    monkeypatch.setitem(sys.modules, f"stages.{command}", fake)
    assert cli.main([command]) == 3
    fake.main = lambda: None  # a main that forgot to return its code must not read as success
    with pytest.raises(TypeError, match=f"vr {command}: its main\\(\\) returned None"):
        cli.main([command])
    fake.main = lambda: 256  # the OS keeps the low 8 bits: 256 would exit 0
    assert cli.main([command]) == 1


def test_forwarded_modules_lists_every_forwarded_command():
    assert set(FORWARDED_MODULES) == set(cli.FORWARDED)


@pytest.mark.parametrize("command, module", list(FORWARDED_MODULES.items()))
def test_vr_returns_each_forwarded_commands_exit_code_and_passes_its_arguments(command, module, monkeypatch):
    fake, seen = type(sys)("fake_command"), []
    fake.main = lambda argv: seen.append(argv) or 4
    monkeypatch.setitem(sys.modules, module, fake)
    assert cli.main([command, "list", "--json", "x"]) == 4
    assert seen == [["list", "--json", "x"]]


def test_vr_evaluate_with_a_model_runs_the_model_evaluation_and_without_runs_the_stage(monkeypatch):
    for module, code in (("flows.evaluate_model", 5), ("stages.evaluate", 6)):
        fake = type(sys)("fake")
        fake.main = (lambda argv, code=code: seen.append(argv) or code) if code == 5 else (lambda: 6)
        monkeypatch.setitem(sys.modules, module, fake)
    seen = []
    assert cli.main(["evaluate", "--model", "models:/video-reasoner@champion"]) == 5
    assert seen == [["--model", "models:/video-reasoner@champion"]]
    assert cli.main(["evaluate"]) == 6


def test_stage_commands_refuse_arguments_they_would_ignore(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["validate", "--force"])
    assert info.value.code == 2 and "takes no arguments" in capsys.readouterr().err


def test_vr_repro_passes_dvc_options_through_and_returns_dvcs_code(monkeypatch):
    calls = []
    monkeypatch.setattr(cli.subprocess, "call", lambda cmd: calls.append(cmd) or 1)
    assert cli.main(["repro", "--force", "sft"]) == 1
    assert calls[-1][-4:] == ["dvc", "repro", "--force", "sft"]  # --force was once dropped silently
    monkeypatch.setattr(cli.subprocess, "call", lambda cmd: -9)  # killed by SIGKILL
    assert cli.main(["repro"]) == 137


# ---------------------------------------------------------------------------------------------------
# Real failure paths, in-process
# ---------------------------------------------------------------------------------------------------

def _nan_workspace(root: Path) -> Path:
    """A workspace whose records fail the data gate: a NaN span start (probing off: no video needed)."""
    (root / "data/interim").mkdir(parents=True)
    (root / "data/interim/records.jsonl").write_text(json.dumps(NAN_RECORD) + "\n", encoding="utf-8")
    (root / "params.yaml").write_text("validate:\n  probe_videos: false\n  workers: 1\n  data_docs: false\n"
                                      "  required_splits: [train]\n", encoding="utf-8")
    return root


def test_vr_validate_returns_1_when_the_data_gate_fails(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(_nan_workspace(tmp_path))
    assert cli.main(["validate"]) == 1
    assert "bad:1" in caplog.text and "finite" in caplog.text
    assert not (tmp_path / "data/validated").exists()


def test_vr_ingest_fails_on_a_bad_source(tmp_path, monkeypatch):
    (tmp_path / "a.json").write_text("[]", encoding="utf-8")
    (tmp_path / "params.yaml").write_text(
        "data:\n  sources:\n    - {name: x, format: no-such-format, path: a.json, split: train}\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:  # ingest's main exits 1 itself
        cli.main(["ingest"])
    assert info.value.code == 1


def test_vr_score_returns_1_on_a_non_finite_ground_truth(tmp_path):
    split, preds = tmp_path / "split.jsonl", tmp_path / "preds.jsonl"
    split.write_text(json.dumps(NAN_RECORD) + "\n", encoding="utf-8")
    preds.write_text(json.dumps({"id": "bad:1", "prediction": "<think>x</think><answer>0 to 1</answer>"}) + "\n",
                     encoding="utf-8")
    assert cli.main(["score", "--split", str(split), "--predictions", str(preds), "--out", str(tmp_path / "o")]) == 1
    assert not (tmp_path / "o").exists()


def test_vr_pipeline_returns_1_when_a_stage_fails_and_75_when_busy(monkeypatch):
    import flows.command
    import flows.pipeline
    from flows.pipeline import StageFailed, WorkspaceBusy

    # no stderr handler bound to this test's captured stream; Prefect's logging set-up hides records from
    # caplog, so a handler of our own on the command's logger collects them
    monkeypatch.setattr(flows.command, "cli_logging", lambda: None)
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.ERROR)
    handler.emit = records.append
    logging.getLogger("flows.pipeline").addHandler(handler)
    monkeypatch.setattr(flows.command, "already_done", lambda repo, register: None)

    def failing(**kwargs):
        raise StageFailed("validate", 1, ["validation of data/interim/records.jsonl failed\n"], transient=False)

    monkeypatch.setattr(flows.pipeline, "pipeline", failing)
    assert cli.main(["pipeline", "--no-register"]) == 1
    logging.getLogger("flows.pipeline").removeHandler(handler)
    assert any("pipeline failed: stage 'validate' failed (exit 1)" in r.getMessage() for r in records)

    def busy(**kwargs):
        raise WorkspaceBusy("workspace in use")

    monkeypatch.setattr(flows.pipeline, "pipeline", busy)
    assert cli.main(["pipeline", "--no-register"]) == 75


def test_vr_registry_returns_1_when_the_gates_refuse_and_75_when_mlflow_is_down(monkeypatch):
    import flows.registry_cli as registry_cli
    from flows.gates import Decision

    monkeypatch.setattr(registry_cli, "load_rules", lambda path: type("Rules", (), {"model_name": "m"})())
    monkeypatch.setattr(registry_cli, "tracking_setup", lambda repo: ("sqlite:///x.db", "0"))
    monkeypatch.setattr(registry_cli, "promote", lambda rules, version, force=False: Decision(False, ("worse",)))
    assert cli.main(["registry", "promote", "3"]) == 1

    def down(rules, version, force=False):
        raise registry_cli.RegistryUnavailable("server down")

    monkeypatch.setattr(registry_cli, "promote", down)
    assert cli.main(["registry", "promote", "3"]) == 75


def test_vr_servers_returns_the_servers_exit_code_and_fails_on_an_unknown_deployment(tmp_path, monkeypatch):
    import flows.servers as servers

    monkeypatch.setattr(servers, "_run", lambda cmd, cwd, env: 1)  # the server process failed to start
    assert cli.main(["servers", "--repo", str(tmp_path), "mlflow", "--port", "5999"]) == 1
    assert cli.main(["servers", "--repo", str(tmp_path), "prefect-ui"]) == 1
    (tmp_path / "prefect.yaml").write_text("deployments: [{name: nightly}]\n", encoding="utf-8")
    with pytest.raises(SystemExit, match="no deployment named 'weekly'"):  # a text code exits 1
        cli.main(["servers", "--repo", str(tmp_path), "serve", "--deployment", "weekly",
                  "--prefect-file", "prefect.yaml"])


def test_vr_repro_fails_outside_a_dvc_workspace(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["repro"]) != 0


# ---------------------------------------------------------------------------------------------------
# The installed console script, in its own process
# ---------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_the_vr_console_script_exits_1_when_validate_fails(tmp_path):
    vr = Path(sys.executable).parent / "vr"
    assert vr.is_file(), f"{vr}: the project is not installed in this environment (pip install -e .)"
    done = subprocess.run([str(vr), "validate"], cwd=_nan_workspace(tmp_path), capture_output=True, text=True,
                          timeout=600, check=False)
    assert done.returncode == 1, done.stderr[-3000:]
    assert "'bad:1' (record 1): answer" in done.stderr and "finite" in done.stderr
