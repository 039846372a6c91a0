"""Registry rules (mlflow/registry.yaml) and the promotion gates: pure functions, no MLflow calls.

A candidate replaces the champion only when every gate metric is >= the champion's plus its margin and
no other tracked metric is worse than the champion's by more than its tolerance. "Worse" follows the
metric's direction (`lower_is_better`). With no champion yet, the candidate passes.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from videoreasoner.core.tracking import metric_name

RULES_FILE = Path("mlflow/registry.yaml")


@dataclass(frozen=True)
class Gate:
    metric: str
    margin: float = 0.0


@dataclass(frozen=True)
class Rules:
    model_name: str
    challenger: str = "challenger"
    champion: str = "champion"
    gates: tuple[Gate, ...] = ()
    tolerances: dict[str, float] = field(default_factory=dict)
    default_tolerance: float | None = None
    lower_is_better: frozenset[str] = frozenset()
    model_dir: str = "models/rl"
    policy: str = "reports/tts/policy.json"
    metrics: str = "reports/eval/metrics.json"
    eval_models: tuple[str, ...] = ("rl",)
    settings: tuple[str, ...] = ()


def load_rules(path: str | Path = RULES_FILE) -> Rules:
    raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    if not raw.get("model_name"):
        raise ValueError(f"{path}: missing 'model_name'")
    aliases, source = raw.get("aliases") or {}, raw.get("source") or {}
    gates = tuple(Gate(metric_key(g["metric"]), float(g.get("margin", 0.0))) for g in raw.get("gates") or [])
    return Rules(
        model_name=raw["model_name"],
        challenger=aliases.get("new_version", "challenger"),
        champion=aliases.get("promoted", "champion"),
        gates=gates,
        tolerances={metric_key(k): float(v) for k, v in (raw.get("tolerances") or {}).items()},
        default_tolerance=None if raw.get("default_tolerance") is None else float(raw["default_tolerance"]),
        lower_is_better=frozenset(metric_key(m) for m in raw.get("lower_is_better") or []),
        model_dir=source.get("model", Rules.model_dir),
        policy=source.get("policy", Rules.policy),
        metrics=source.get("metrics", Rules.metrics),
        eval_models=tuple(source.get("eval_models") or Rules.eval_models),
        settings=tuple(source.get("settings") or ()),
    )


def metric_key(name: str) -> str:
    """The MLflow-safe spelling of a metric name: the same rule the stages log with."""
    return metric_name(str(name))


def flatten_numeric(tree: Any, prefix: str = "") -> dict[str, float]:
    """Finite numbers of a nested mapping, keys joined with '.'; lists, strings and booleans are skipped."""
    flat: dict[str, float] = {}
    if isinstance(tree, dict):
        for key, value in tree.items():
            flat.update(flatten_numeric(value, f"{prefix}{key}."))
    elif isinstance(tree, (int, float)) and not isinstance(tree, bool) and math.isfinite(tree):
        flat[metric_key(prefix[:-1])] = float(tree)
    return flat


def ladder_metrics(doc: dict, names: tuple[str, ...]) -> tuple[str, dict[str, float]]:
    """The metrics of the first ladder entry named in `names` found in an evaluation report.

    Accepted shapes: {"models": {name: {headline numbers..., "metrics": {...}}}} (stages/evaluate.py),
    {"models": {name: metrics}}, {"ladder": [{"name"|"model": name, "metrics": {...}}]},
    or {name: metrics}.
    """
    entries: dict[str, Any] = {}
    if isinstance(doc.get("models"), dict):
        entries.update(doc["models"])
    for row in doc.get("ladder") or []:
        if isinstance(row, dict) and (row.get("name") or row.get("model")):
            entries[row.get("name") or row.get("model")] = row.get("metrics", row)
    for name in names:
        entry = entries.get(name, doc.get(name))
        if isinstance(entry, dict):
            # An entry with headline numbers at its top level (stages/evaluate.py) is described by those;
            # otherwise every number in it counts.
            top = flatten_numeric({k: v for k, v in entry.items() if not isinstance(v, dict)})
            return name, top or flatten_numeric(entry)
    raise KeyError(f"evaluation report has none of the models {list(names)} (found {sorted(entries) or sorted(doc)})")


def read_ladder_metrics(path: str | Path, names: tuple[str, ...]) -> tuple[str, dict[str, float]]:
    try:
        return ladder_metrics(json.loads(Path(path).read_text(encoding="utf-8")), names)
    except KeyError as exc:
        raise KeyError(f"{path}: {exc.args[0]}") from None


@dataclass(frozen=True)
class Decision:
    passed: bool
    reasons: tuple[str, ...]

    def summary(self) -> str:
        return ("pass" if self.passed else "fail") + (": " + "; ".join(self.reasons) if self.reasons else "")


def gate_decision(candidate: dict[str, float], champion: dict[str, float] | None, rules: Rules) -> Decision:
    """Whether `candidate` may replace `champion` (both: metric -> value, MLflow-safe keys)."""
    if champion is None:
        return Decision(True, ("no champion yet",))
    failures, notes = [], []

    def better_by(name: str) -> float:  # positive when the candidate is better
        diff = candidate[name] - champion[name]
        return -diff if name in rules.lower_is_better else diff

    for gate in rules.gates:
        if gate.metric not in candidate:
            failures.append(f"gate {gate.metric}: missing from the candidate")
        elif gate.metric not in champion:
            notes.append(f"gate {gate.metric}: champion has none, not compared")
        elif better_by(gate.metric) < gate.margin - 1e-12:
            failures.append(f"gate {gate.metric}: {candidate[gate.metric]:.4g} vs champion "
                            f"{champion[gate.metric]:.4g} (margin {gate.margin:g})")
    gated = {g.metric for g in rules.gates}
    for name in sorted((set(candidate) & set(champion)) - gated):
        tolerance = rules.tolerances.get(name, rules.default_tolerance)
        if tolerance is not None and better_by(name) < -tolerance - 1e-12:
            failures.append(f"{name}: {candidate[name]:.4g} vs champion {champion[name]:.4g} "
                            f"(tolerance {tolerance:g})")
    return Decision(not failures, tuple(failures or notes))
