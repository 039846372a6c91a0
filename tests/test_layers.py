"""The layers, read from the source: imports point down only and never loop.

    vr (the CLI)  ->  flows/  ->  stages/  ->  videoreasoner/ (core, video, answers, data, training, inference)

- the library never imports stages, flows or the CLI; a stage never imports another stage, flows or the
  CLI; flows never import the CLI; nothing imports benchmarks/;
- no import loops between modules, counting imports inside functions and module names handed to
  importlib (a string literal, or the literal prefix of an f-string), so a lazy import cannot hide one.
"""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("vr", "flows", "stages", "videoreasoner", "benchmarks")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))
           if "vendor" not in p.parts}


def _resolve(name: str) -> str | None:
    """The project module `name` denotes (a module, or the package whose submodule it names)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _dynamic_names(node: ast.Call) -> list[str]:
    """Module names given to importlib.import_module / __import__: a literal, or an f-string's prefix
    (f"stages.{name}" stands for the stages package as a whole)."""
    func = node.func
    called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    if called not in ("import_module", "__import__") or not node.args:
        return []
    arg = node.args[0]
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return [arg.value]
    if isinstance(arg, ast.JoinedStr) and arg.values and isinstance(arg.values[0], ast.Constant):
        return [str(arg.values[0].value).rstrip(".")]
    return []


def imports(module: str) -> set[str]:
    """Every project module `module` imports, wherever the import statement stands."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(filter(None, [*parts[: len(parts) - node.level + 1], base]))
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        elif isinstance(node, ast.Call):
            names = _dynamic_names(node)
        for name in names:
            target = _resolve(name)
            if target and target != module:
                found.add(target)
    return found


GRAPH = {m: imports(m) for m in MODULES}


def layer(module: str) -> str:
    return module.split(".")[0]


ALLOWED = {  # layer -> layers it may import
    "videoreasoner": {"videoreasoner"},
    "stages": {"videoreasoner"},   # a stage never imports another stage
    "flows": {"flows", "stages", "videoreasoner"},
    "vr": {"vr", "flows", "stages", "videoreasoner"},
    "benchmarks": {"benchmarks", "stages", "flows", "videoreasoner"},
}


def test_the_walk_sees_lazy_and_importlib_imports():
    assert "videoreasoner.core.atomic" in GRAPH["stages.sft"]
    assert any(m.startswith("stages") for m in GRAPH["vr.cli"]), "vr reaches the stage entry points"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if layer(m) != "benchmarks"))
def test_imports_point_down_only(module):
    wrong = sorted(t for t in GRAPH[module] if layer(t) not in ALLOWED[layer(module)])
    assert not wrong, f"{module} imports {wrong} against the layer order vr -> flows -> stages -> videoreasoner"


def test_there_are_no_import_loops():
    """Tarjan's strongly connected components over the module graph: any component of more than one
    module is a loop."""
    index, low, stack, on_stack, loops = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                loops.append(sorted(component))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    # A package's __init__ importing its own submodules is not a loop of the code's design.
    loops = [c for c in loops if not all(m == c[0] or m.startswith(c[0] + ".") for m in c)]
    assert not loops, f"import loops: {loops}"


def test_no_file_is_longer_than_400_lines():
    files = [*MODULES.values(), *sorted((ROOT / "tests").rglob("*.py"))]
    long = {str(p.relative_to(ROOT)): n for p in files if (n := len(p.read_text(encoding="utf-8").splitlines())) > 400}
    assert not long, f"split these: {long}"
