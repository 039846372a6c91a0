"""The repository explains itself: every file path a module or doc names exists, nothing refers to notes
outside the repository, and docs/architecture.md's code map lists every module."""
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRACKED = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
TEXT = [p for p in TRACKED if p.endswith((".py", ".md", ".yaml", ".yml", ".toml")) and not p.startswith("tests/fixtures/")
        and (ROOT / p).is_file()]
PATH_RE = re.compile(r"(?<![\w/.-])((?:videoreasoner|stages|flows|vr|tests|infra|benchmarks|docs|mlflow)/[\w/.-]*\w)")


def test_no_reference_to_notes_outside_the_repository():
    outside = [p for p in TEXT if re.search(r"DESIGN\.md|STYLE\.md|\.\./shared", (ROOT / p).read_text(encoding="utf-8"))]
    assert not outside, outside


def test_every_named_path_exists():
    missing = set()
    for rel in (p for p in TEXT if not p.startswith("tests/")):  # tests name missing files on purpose
        for path in PATH_RE.findall((ROOT / rel).read_text(encoding="utf-8")):
            if any(c in path for c in "<>*{}$") or path.endswith("/..."):
                continue
            module, _, _attribute = path.rpartition(".")  # videoreasoner/x/y.name: a module's attribute
            candidates = [ROOT / path, ROOT / (path.rstrip(".") + ".py"), ROOT / (module + ".py")]
            if not any(c.exists() for c in candidates) and not (ROOT / path.replace(".", "/")).exists():
                missing.add(f"{rel}: {path}")
    generated = ("data/", "models/", "reports/", "checkpoints/", "mlflow/mlflow.db", "mlflow/artifacts", "mlflow/basic_auth.db",
                 "infra/deepspeed/hostfile",
                 "infra/dvc-plots/vendor", "tests/snapshots")
    missing = {m for m in missing if not any(g in m.split(": ")[1] for g in generated)}
    assert not missing, sorted(missing)


def test_the_code_map_lists_every_module():
    text = (ROOT / "docs/architecture.md").read_text(encoding="utf-8")
    modules = [p for p in TRACKED if p.endswith(".py") and p.split("/")[0] in ("videoreasoner", "stages", "flows", "vr")
               and not p.endswith("__init__.py") and "/world/" not in p and "/importers/" not in p]
    unlisted = [m for m in modules if f"`{Path(m).name}`" not in text]
    assert not unlisted, unlisted
