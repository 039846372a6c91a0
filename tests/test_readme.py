"""The README's pyfunc snippet works exactly as written: run from a workspace whose own MLflow store
holds a champion under the registry's model name (a stub predictor instead of a model), it answers and
prints the answer fields, and it does not create a stray ./mlflow.db (issue 18: the old snippet set no
tracking URI, so MLflow made an empty ./mlflow.db and found no model)."""
import json
import re
from pathlib import Path

from flows import aliases, registration, registry_tracking
from flows.gates import load_rules
from tests.fixtures.pyfunc_stub import canned_answer_factory

ROOT = Path(__file__).resolve().parents[1]


def readme_snippet() -> str:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), re.S)
    (snippet,) = [b for b in blocks if "mlflow.pyfunc.load_model" in b]
    return snippet


def test_the_readme_pyfunc_snippet_runs_as_written(tmp_path, monkeypatch, capsys):
    import mlflow

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    registry_tracking.tracking_setup(tmp_path)
    (tmp_path / "rl").mkdir()
    (tmp_path / "rl/config.json").write_text("{}")
    (tmp_path / "policy.json").write_text(json.dumps({"answer": "3"}))
    rules = load_rules(ROOT / "mlflow/registry.yaml")
    version = registration.register(rules, tmp_path / "rl", tmp_path / "policy.json", {},
                                    settings={"video": {"fps": 2.0}}, predictor_factory=canned_answer_factory)
    aliases.promote(rules, version, force=True)
    snippet = readme_snippet()
    video = re.search(r'"video": "([^"]+)"', snippet).group(1)
    (tmp_path / video).parent.mkdir(parents=True)
    (tmp_path / video).write_bytes(b"the stub does not decode")
    mlflow.set_tracking_uri(None)  # as a fresh interpreter starts
    try:
        exec(compile(snippet, "README.md", "exec"), {})
    finally:
        mlflow.set_tracking_uri(None)
    printed = capsys.readouterr().out.split()
    assert printed[:2] == ["3.0", "None"] and float(printed[2]) >= 0  # answer, frame_times (stub: none), latency
    assert not (tmp_path / "mlflow.db").exists()
