"""The canonical text of a time and of a box: the one spelling targets are written in and parsed keys use.

Shared by videoreasoner/answers/format.py (prompts, targets) and videoreasoner/answers/parse.py (a parsed
tube's box keys are canonical time strings), so neither has to import the other's counterpart.
"""
from __future__ import annotations

TIME_DECIMALS = 2
BOX_DECIMALS = 2


def format_time(seconds: float) -> str:
    """Seconds as text with 1 to TIME_DECIMALS decimals: 7 -> '7.0', 2.25 -> '2.25', 1/3 -> '0.33'."""
    text = f"{float(seconds):.{TIME_DECIMALS}f}".rstrip("0")
    text = text + "0" if text.endswith(".") else text
    return "0.0" if text == "-0.0" else text


def format_box(box: list[float]) -> str:
    """A box as '[0.12, 0.20, 0.50, 0.61]' (BOX_DECIMALS decimals, normalised coordinates)."""
    if len(box) != 4:
        raise ValueError(f"a box needs 4 coordinates, got {box!r}")
    return "[" + ", ".join(f"{float(c):.{BOX_DECIMALS}f}" for c in box) + "]"
