"""Test-wide settings: offline, no telemetry, and the repository root on sys.path."""
import os
import sys
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import videoreasoner.core.telemetry  # noqa: E402,F401  (sets the telemetry opt-outs before any tool is imported)
