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


def pytest_collection_modifyitems(config, items):
    """Files with an end-to-end (`slow`) test first, the rest after, each file's tests in their own order.
    `make test` runs two pytest-xdist workers that take whole files in collection order (--dist loadfile;
    --no-loadscope-reorder, else xdist deals the files with the most tests first):
    the long files start at once and the many short ones fill in at the end, so both workers finish
    at about the same time."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)  # stable: the order within each group stays


@pytest.fixture(scope="session")
def team():
    """The team stack (PostgreSQL, MLflow with basic auth, Prefect), started once per session by the
    tests that ask for it, stopped at the end (tests/helpers_team.py)."""
    from tests.helpers_team import team_stack

    with team_stack() as stack:
        yield stack
