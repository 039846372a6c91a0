"""Test-wide settings: offline, no telemetry, and the repository root on sys.path."""
import os
import sys
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import videoreasoner.core.telemetry  # noqa: E402,F401  (sets the telemetry opt-outs before any tool is imported)


@pytest.fixture(scope="session")
def team():
    """The team stack (PostgreSQL, MLflow with basic auth, Prefect), started once per session by the
    tests that ask for it, stopped at the end (tests/helpers_team.py)."""
    from tests.helpers_team import team_stack

    with team_stack() as stack:
        yield stack
