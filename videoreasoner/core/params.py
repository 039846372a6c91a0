"""Read params.yaml, the one source of configuration (one section per stage), and its sections.

Every reader of a section goes through `check_keys` (a typo is an error naming the section and the key):
config dataclasses through `read_section`, sections kept as dicts through `SectionDefaults.read`. Code
defaults equal params.yaml; tests/test_params_defaults.py checks every class and SectionDefaults that
names its section."""
from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

import yaml

from videoreasoner.core.paths import PARAMS_FILE

T = TypeVar("T")


class ParamsLoader(yaml.SafeLoader):
    """PyYAML's safe loader reading floats as YAML 1.2 does. PyYAML (YAML 1.1) needs a dot in a float,
    so `1e-05` stayed a string; DVC writes exactly that for `dvc exp run -S rl.learning_rate=1e-5`
    (ruamel, YAML 1.2), and the optimizer then failed comparing a str with 0.0."""


ParamsLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+$"), list("-+0123456789"))


def load_params(path: str | os.PathLike = PARAMS_FILE) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        params = yaml.load(fh, Loader=ParamsLoader) or {}  # noqa: S506 (a SafeLoader subclass)
    if not isinstance(params, dict):
        raise ValueError(f"{path}: expected a mapping of sections at the top level")
    return params


def section(name: str, path: str | os.PathLike = PARAMS_FILE) -> dict[str, Any]:
    """One section of params.yaml; a missing section is an error naming it."""
    params = load_params(path)
    if name not in params:
        raise KeyError(f"{Path(path)}: missing section '{name}'")
    return params[name]


class UnknownKeyError(ValueError, KeyError):
    """A params section holds a key its reader does not know (a typo would otherwise be ignored).
    Both a ValueError (bad configuration) and a KeyError (what the validate section raised before the
    check was shared), so callers catching either keep working."""

    __str__ = Exception.__str__  # KeyError's would quote the whole message


def check_keys(section_name: str, params: Mapping[str, Any] | None, known: Iterable[str]) -> dict[str, Any]:
    """A copy of params section `section_name` (None: empty) whose keys are all in `known`; otherwise
    UnknownKeyError naming the section, the first unknown key and the known ones. The one unknown-key
    check of every params reader."""
    if params is None:
        return {}
    if not isinstance(params, Mapping):
        raise ValueError(f"params {section_name}: expected a mapping, got {type(params).__name__}")
    known = list(known)
    if unknown := sorted(set(params) - set(known)):
        raise UnknownKeyError(f"params {section_name}: unknown key '{unknown[0]}' (known: {sorted(known)})")
    return dict(params)


def read_section(params: Mapping[str, Any] | None, config_cls: type[T], section_name: str | None = None) -> T:
    """A config dataclass from its params section: the fields given there, code defaults for the rest;
    list values become tuples where the field's default is a tuple (YAML has no tuples). section_name
    defaults to config_cls.PARAMS_SECTION (a dotted path into params.yaml, e.g. 'rl.temporal_contrast')."""
    name = section_name or config_cls.PARAMS_SECTION
    values = check_keys(name, params, (f.name for f in fields(config_cls)))
    tuples = {f.name for f in fields(config_cls) if isinstance(f.default, tuple)}
    return config_cls(**{k: tuple(v) if k in tuples and isinstance(v, list) else v for k, v in values.items()})


@dataclass(frozen=True)
class SectionDefaults:
    """The code defaults of a params section read as a plain mapping (tts, eval: their values are
    handed on as dicts). nested: keys whose own mappings are merged key by key over the defaults';
    open: other keys are allowed and left to another parser (rl: TRL's GRPOConfig fields)."""

    section: str
    values: Mapping[str, Any]
    nested: tuple[str, ...] = ()
    open: bool = False

    def read(self, params: Mapping[str, Any] | None) -> dict[str, Any]:
        """params over the defaults (unknown keys rejected unless open)."""
        given = dict(params or {}) if self.open else check_keys(self.section, params, self.values)
        out = {**self.values, **given}
        for key in self.nested:  # their keys are checked by their own readers (Decoding, the tts rule)
            out[key] = {**self.values[key], **(given.get(key) or {})}
        return out
