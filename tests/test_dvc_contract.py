"""dvc.yaml and the code agree: stage outputs are the paths in stages/paths.py, params sections exist,
and every declared code dependency is a real file or folder."""
from pathlib import Path

import yaml

from stages import paths
from stages.params import load_params

ROOT = Path(__file__).resolve().parents[1]
DVC = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def declared(stage: str, kind: str) -> set[str]:
    return {next(iter(e)) if isinstance(e, dict) else e for e in DVC[stage].get(kind, [])}


def test_stage_outputs_are_the_paths_the_code_writes():
    assert declared("generate", "outs") == {str(paths.SYNTHETIC_DIR)}
    assert declared("generate", "metrics") == {str(paths.GENERATE_REPORT)}
    assert declared("ingest", "outs") == {str(paths.INTERIM_RECORDS)}
    assert declared("ingest", "metrics") == {str(paths.INGEST_REPORT)}
    assert str(paths.VALIDATED_DIR) in declared("validate", "outs")
    assert declared("validate", "metrics") == {str(paths.VALIDATION_RESULT)}


def test_model_and_report_outputs_are_the_paths_the_code_writes():
    assert declared("bootstrap", "outs") == {str(paths.MODELS_BASE)}
    assert declared("bootstrap", "metrics") == {str(paths.BOOTSTRAP_REPORT)}
    assert declared("sft", "outs") == {str(paths.MODELS_SFT)}
    assert declared("sft", "metrics") == {str(paths.SFT_METRICS)}
    assert declared("rl", "outs") == {str(paths.MODELS_RL)}
    assert declared("rl", "metrics") == {str(paths.RL_REPORTS / "metrics.json")}
    assert declared("tts", "metrics") == {str(paths.TTS_REPORTS / "policy.json")}
    assert all(out.startswith(str(paths.EVAL_REPORTS)) for out in declared("evaluate", "outs"))
    assert not any(out.startswith(str(paths.CHECKPOINTS)) for stage in DVC for out in declared(stage, "outs"))


def test_each_stage_reads_the_previous_stage_output():
    assert str(paths.SYNTHETIC_ANNOTATIONS) in declared("ingest", "deps")
    assert str(paths.INTERIM_RECORDS) in declared("validate", "deps")
    assert str(paths.split_file("train")) in declared("bootstrap", "deps")
    assert str(paths.MODELS_BASE) in declared("sft", "deps")
    assert str(paths.MODELS_SFT) in declared("rl", "deps")
    assert str(paths.MODELS_RL) in declared("tts", "deps")
    assert {str(paths.MODELS_BASE), str(paths.MODELS_SFT), str(paths.MODELS_RL)} <= declared("evaluate", "deps")


def test_declared_params_exist_in_params_yaml():
    params = load_params(ROOT / "params.yaml")
    for name, stage in DVC.items():
        for key in stage.get("params", []):
            node = params
            for part in key.split("."):
                assert part in node, f"stage {name}: params key {key} missing from params.yaml"
                node = node[part]


def test_declared_code_dependencies_exist():
    for name, stage in DVC.items():
        for dep in stage.get("deps", []):
            if dep.startswith(("stages/", "flows/", "infra/")):
                assert (ROOT / dep).exists(), f"stage {name}: dependency {dep} does not exist"


def test_stage_commands_run_the_stage_modules():
    for name, stage in DVC.items():
        module = stage["cmd"].split("-m ")[1].split()[0]
        assert (ROOT / (module.replace(".", "/") + ".py")).is_file(), f"stage {name}: {module} not found"
