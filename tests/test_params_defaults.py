"""Code defaults equal params.yaml: params.yaml is the one source of defaults, so a config built from a
partial section (a test, a script, `load_engine` without params) behaves as the pipeline does.

Walks every module of the library and the stages and checks every config dataclass that names its
params section (PARAMS_SECTION) and every SectionDefaults: each key params.yaml gives must equal the
code default (a list in params.yaml counts as the tuple it becomes)."""
import dataclasses
import importlib
import pkgutil
from pathlib import Path

import pytest

import stages
import videoreasoner
from videoreasoner.core.params import SectionDefaults, load_params, read_section

ROOT = Path(__file__).resolve().parents[1]
PARAMS = load_params(ROOT / "params.yaml")


def _readers() -> dict[str, object]:
    """name -> config dataclass with PARAMS_SECTION, or SectionDefaults, across the library and stages."""
    found = {}
    for package in (videoreasoner, stages):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            module = importlib.import_module(info.name)
            for name, obj in vars(module).items():
                if isinstance(obj, SectionDefaults):
                    found.setdefault(f"{module.__name__}.{name}", obj)
                elif (isinstance(obj, type) and dataclasses.is_dataclass(obj) and hasattr(obj, "PARAMS_SECTION")
                      and obj.__module__ == module.__name__):  # found where it is defined, not where imported
                    found[f"{module.__name__}.{name}"] = obj
    return found


READERS = _readers()


def _section(path: str) -> dict:
    node = PARAMS
    for part in path.split("."):
        assert isinstance(node, dict) and part in node, f"params.yaml has no section {path}"
        node = node[part]
    return node or {}


def _default(field: dataclasses.Field):
    if field.default is not dataclasses.MISSING:
        return field.default
    return field.default_factory() if field.default_factory is not dataclasses.MISSING else dataclasses.MISSING


def test_the_walk_finds_the_readers():
    sections = {getattr(r, "section", None) or r.PARAMS_SECTION for r in READERS.values()}
    assert {"video", "compute", "model.tiny", "rl.temporal_contrast", "data.synthetic", "data.synthetic.long",
            "validate", "tts", "eval", "rl"} <= sections


@pytest.mark.parametrize("name", sorted(READERS))
def test_code_defaults_equal_params_yaml(name):
    reader = READERS[name]
    if isinstance(reader, SectionDefaults):
        given = _section(reader.section)
        merged = reader.read(given)
        wrong = {k: (reader.values[k], given[k]) for k in given
                 if k in reader.values and reader.values[k] != merged[k]}
        where = reader.section
    else:
        given = _section(reader.PARAMS_SECTION)
        nested = {f.name for f in dataclasses.fields(reader) if hasattr(f.type, "PARAMS_SECTION")
                  or (dataclasses.is_dataclass(_default(f)) and hasattr(_default(f), "PARAMS_SECTION"))}
        flat = {k: v for k, v in given.items() if k not in nested}  # nested sections are checked on their own
        built = read_section(flat, reader)
        defaults = {f.name: _default(f) for f in dataclasses.fields(reader)}
        wrong = {k: (defaults[k], v) for k, v in flat.items() if defaults[k] != getattr(built, k)}
        where = reader.PARAMS_SECTION
    assert not wrong, f"{name}: code defaults differ from params.yaml section '{where}' (code, params): {wrong}"
