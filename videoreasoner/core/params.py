"""Read params.yaml, the one source of configuration (one section per stage)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from videoreasoner.core.paths import PARAMS_FILE


def load_params(path: str | os.PathLike = PARAMS_FILE) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        params = yaml.safe_load(fh) or {}
    if not isinstance(params, dict):
        raise ValueError(f"{path}: expected a mapping of sections at the top level")
    return params


def section(name: str, path: str | os.PathLike = PARAMS_FILE) -> dict[str, Any]:
    """One section of params.yaml; a missing section is an error naming it."""
    params = load_params(path)
    if name not in params:
        raise KeyError(f"{Path(path)}: missing section '{name}'")
    return params[name]
