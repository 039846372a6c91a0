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


def test_each_stage_reads_the_previous_stage_output():
    assert str(paths.SYNTHETIC_ANNOTATIONS) in declared("ingest", "deps")
    assert str(paths.INTERIM_RECORDS) in declared("validate", "deps")


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
