"""dvc.yaml and the code agree: stage outputs are the paths in videoreasoner/core/paths.py, params sections exist,
and every declared code dependency is a real file or folder."""
from pathlib import Path

import yaml

from videoreasoner.core import paths
from videoreasoner.core.params import load_params

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
            if dep.startswith(("stages/", "flows/", "videoreasoner/", "infra/")):
                assert (ROOT / dep).exists(), f"stage {name}: dependency {dep} does not exist"


def test_stage_commands_run_the_stage_modules():
    for name, stage in DVC.items():
        module = stage["cmd"].split("-m ")[1].split()[0]
        assert (ROOT / (module.replace(".", "/") + ".py")).is_file(), f"stage {name}: {module} not found"


def import_closure(module: str) -> set[str]:
    """The project's source files `module` imports, directly or through other project modules, counting
    imports inside functions too (the stages import heavy libraries lazily): a static walk of the AST."""
    import ast

    def source(name: str) -> Path | None:
        base = ROOT / name.replace(".", "/")
        for path in (base.with_suffix(".py"), base / "__init__.py"):
            if path.is_file():
                return path
        return None

    seen: set[Path] = set()
    todo = [source(module)]
    while todo:
        path = todo.pop()
        if path is None or path in seen:
            continue
        seen.add(path)
        package = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        if path.name != "__init__.py":
            package = package.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(filter(None, [*parent, base]))
                names = [base, *(f"{base}.{a.name}" for a in node.names)]
            for name in names:
                if name.split(".")[0] in ("stages", "flows", "videoreasoner", "vr"):
                    todo.append(source(name))
    return {str(p.relative_to(ROOT)) for p in seen}


def test_each_stage_depends_on_its_whole_import_closure():
    """A change to any module a stage runs (the video decoder, the sampler, the loader, ...) must make
    `dvc repro` re-run that stage: up to date has to mean up to date."""
    for name, stage in DVC.items():
        module = stage["cmd"].split("-m ")[1].split()[0]
        closure = import_closure(module)
        if module == "videoreasoner.training.launch":
            closure |= import_closure(f"stages.{stage['cmd'].split()[-1]}")
        deps = declared(name, "deps")
        uncovered = sorted(f for f in closure
                           if f not in deps and not any(f.startswith(d.rstrip("/") + "/") for d in deps)
                           and not f.endswith("__init__.py"))
        assert not uncovered, f"stage {name}: dvc.yaml deps miss {uncovered}"
