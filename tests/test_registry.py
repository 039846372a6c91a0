"""Registry rules on a sqlite store in a temporary folder: the first version becomes champion, a worse one
stays challenger, a better one is promoted, rollback gives champion back, and a registration that fails
midway leaves no half-made version. Gates themselves are tested as pure functions."""
import json

import pytest

from flows import aliases, registration, registry_tracking
from flows.gates import Gate, Rules, gate_decision, ladder_metrics, load_rules

RULES = dict(gates=(Gate("mc_accuracy", 0.0), Gate("temporal_miou", 0.01)),
             tolerances={"numerical_accuracy": 0.02})


def stub_factory(model_dir, policy, settings):
    return lambda record, video: f"<answer>{policy['strategy']}</answer>"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One sqlite store for the module (creating one costs seconds); each test uses its own model name."""
    root = tmp_path_factory.mktemp("mlflow")
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
    registry_tracking.tracking_setup(root)
    model = root / "models/rl"
    model.mkdir(parents=True)
    (model / "config.json").write_text("{}")
    (root / "policy.json").write_text(json.dumps({"strategy": "majority", "samples": 4}))
    yield root
    mp.undo()


def add(rules, store, **metrics):
    return registration.register(rules, store / "models/rl", store / "policy.json", metrics,
                             settings={"video": {"fps": 2}}, tags={"git_commit": "abc", "pipeline_run_id": "p1"},
                             predictor_factory=stub_factory)


def test_gates_pure():
    rules = Rules("m", **RULES)
    champ = {"mc_accuracy": 0.5, "temporal_miou": 0.40, "numerical_accuracy": 0.6}
    assert gate_decision(champ, None, rules).passed
    assert gate_decision({**champ, "temporal_miou": 0.41}, champ, rules).passed
    assert not gate_decision({**champ, "temporal_miou": 0.405}, champ, rules).passed  # below the margin
    assert not gate_decision({**champ, "temporal_miou": 0.5, "numerical_accuracy": 0.5}, champ, rules).passed
    assert gate_decision({**champ, "temporal_miou": 0.5, "numerical_accuracy": 0.59}, champ, rules).passed
    assert not gate_decision({"temporal_miou": 0.9}, champ, rules).passed  # a gate metric is missing
    lower = Rules("m", gates=(Gate("latency_s"),), lower_is_better=frozenset({"latency_s"}))
    assert gate_decision({"latency_s": 1.0}, {"latency_s": 2.0}, lower).passed


def test_ladder_shapes_and_rules_file():
    metrics = {"mc_accuracy": 0.5, "temporal": {"miou": 0.3, "R1@0.5": 0.2}, "ci": [0.1, 0.2], "n": True}
    assert ladder_metrics({"models": {"rl": {"metrics": metrics}}}, ("rl_tts", "rl")) == (
        "rl", {"metrics.mc_accuracy": 0.5, "metrics.temporal.miou": 0.3, "metrics.temporal.R1_0.5": 0.2})
    headline = {"mc_accuracy": 0.5, "temporal_R1@0.5": 0.2, "overall": None, "metrics": metrics}
    assert ladder_metrics({"models": {"rl_tts": headline}}, ("rl_tts",))[1] == {
        "mc_accuracy": 0.5, "temporal_R1_0.5": 0.2}
    assert ladder_metrics({"ladder": [{"name": "rl_tts", "metrics": {"a": 1}}]}, ("rl_tts",))[1] == {"a": 1.0}
    with pytest.raises(KeyError, match="none of the models"):
        ladder_metrics({"models": {"base": {}}}, ("rl",))
    rules = load_rules()  # the repository's own mlflow/registry.yaml parses
    assert rules.model_name and rules.gates and rules.champion == "champion"


def test_first_champion_worse_stays_better_promoted_rollback(store):
    rules = Rules("ladder-model", **RULES)
    v1 = add(rules, store, mc_accuracy=0.5, temporal_miou=0.4, numerical_accuracy=0.6)
    assert isinstance(v1, str)
    assert aliases.alias_version(rules, "challenger") == v1
    assert aliases.promote(rules, v1).passed
    assert aliases.alias_version(rules, "champion") == v1

    v2 = add(rules, store, mc_accuracy=0.4, temporal_miou=0.6, numerical_accuracy=0.6)
    assert not aliases.promote(rules, v2).passed
    assert aliases.alias_version(rules, "champion") == v1
    assert aliases.alias_version(rules, "challenger") == v2

    v3 = add(rules, store, mc_accuracy=0.6, temporal_miou=0.5, numerical_accuracy=0.59)
    decision = aliases.promote(rules, v3)
    assert decision.passed, decision.summary()
    assert aliases.alias_version(rules, "champion") == v3

    rows = aliases.list_versions(rules)
    assert [r["version"] for r in rows] == [v3, v2, v1]
    assert rows[0]["aliases"] == ["challenger", "champion"]
    assert rows[0]["git_commit"] == "abc"
    assert aliases.rollback(rules) == v1
    assert aliases.alias_version(rules, "champion") == v1
    assert aliases.rollback(rules, to=v3) == v3
    assert aliases.version_metrics(rules, v3)["mc_accuracy"] == 0.6


def test_failed_registration_leaves_no_version(store, monkeypatch):
    rules = Rules("atomic-model", **RULES)
    v1 = add(rules, store, mc_accuracy=0.5, temporal_miou=0.4)
    aliases.promote(rules, v1)

    def boom(*args, **kwargs):
        raise RuntimeError("injected failure after the version was created")

    monkeypatch.setattr(registration, "_tag_version", boom)
    with pytest.raises(RuntimeError, match="injected"):
        add(rules, store, mc_accuracy=0.9, temporal_miou=0.9)
    assert [r["version"] for r in aliases.list_versions(rules)] == [v1]
    assert aliases.alias_version(rules, "champion") == v1
    assert aliases.alias_version(rules, "challenger") == v1

    fresh = Rules("never-made", **RULES)  # a failing first registration leaves no registered model either
    with pytest.raises(RuntimeError, match="injected"):
        add(fresh, store, mc_accuracy=0.9, temporal_miou=0.9)
    from mlflow import MlflowClient

    assert not MlflowClient().search_registered_models("name = 'never-made'")
