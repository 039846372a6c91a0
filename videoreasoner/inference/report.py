"""The evaluation report: one self-contained HTML file (tables, and matplotlib figures embedded as
base64 PNG data), readable offline, with no external URL anywhere.

Sections: settings; the headline metrics per model with 95 % bootstrap intervals, and per record
source; strict beside each
official protocol (models.<model>.protocols in metrics.json: official value, strict value, difference,
items scored, skipped and rejected by the official code); the ladder
base → sft → rl → rl + policy per problem type; the video-blind controls and each model's gap to them
(its use of the video); the TTS cost/accuracy curve with the chosen operating point marked. Values are
fractions in [0, 1] shown as percentages.
"""
from __future__ import annotations

import base64
import csv
import html
import io
import json
from pathlib import Path
from typing import Any

from videoreasoner.core.atomic import write_text

SUMMARY_KEYS = ("AM", "LGM", "accuracy", "m_tIoU", "m_vIoU")
TYPE_KEYS = ("score", "mIoU", "R1@0.3", "R1@0.5", "R1@0.7", "m_tIoU", "m_vIoU", "vIoU@0.3", "vIoU@0.5")
STYLE = ("body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;margin:1em 0}"
         "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th:first-child,td:first-child"
         "{text-align:left}caption{font-weight:bold;text-align:left}.note{color:#555}pre{background:#f6f6f6;"
         "padding:1em;overflow-x:auto}")


def read_curve(path: str | Path) -> list[dict[str, Any]]:
    """reports/tts/curve.csv rows with numbers parsed (empty cells become None)."""
    def num(v: str) -> Any:
        try:
            return float(v) if v != "" else None
        except ValueError:
            return v

    with open(path, encoding="utf-8", newline="") as fh:
        return [{k: (v if k in ("point", "strategy") else num(v)) for k, v in row.items()}
                for row in csv.DictReader(fh)]


def _pct(m: dict[str, Any] | None) -> str:
    """'61.2 [48.0, 73.5]' from a {"value", "ci95"} entry; '–' when undefined."""
    if not m or m.get("value") is None:
        return "–"
    ci = m.get("ci95")
    return f"{100 * m['value']:.1f}" + (f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]" if ci else "")


def _table(caption: str, header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><caption>{html.escape(caption)}</caption><tr>{head}</tr>{body}</table>"


def _png(fig) -> str:
    """An <img> holding the figure as base64 PNG data (no Software metadata, no URL)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return f'<img alt="figure" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def ladder_figure(metrics: dict[str, Any]) -> str:
    """Grouped bars: the mean verifier score per problem type for each model, with 95 % intervals."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    models = list(metrics["models"])
    types = sorted({t for m in models for t in metrics["models"][m]["metrics"]["per_type"]})
    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(types)), 3.6))
    width = 0.8 / max(1, len(models) + 1)
    for k, name in enumerate([*models, "constant"]):
        block = metrics["constant"] if name == "constant" else metrics["models"][name]
        per_type = block["metrics"]["per_type"]
        vals = [(per_type.get(t) or {}).get("score", {}) for t in types]
        y = np.array([v.get("value") or 0.0 for v in vals])
        lo = np.array([(v.get("ci95") or [0, 0])[0] for v in vals])
        hi = np.array([(v.get("ci95") or [0, 0])[1] for v in vals])
        err = np.clip(np.vstack([y - lo, hi - y]), 0, None)
        ax.bar(np.arange(len(types)) + k * width, y, width, yerr=err, capsize=2,
               label=block.get("label", name), hatch="//" if name == "constant" else None)
    ax.set_xticks(np.arange(len(types)) + width * len(models) / 2)
    ax.set_xticklabels([t.replace("_", "\n") for t in types], fontsize=8)
    ax.set_ylabel("mean verifier score")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8, ncol=3)
    return _png(fig)


def curve_figure(rows: list[dict[str, Any]]) -> str:
    """TTS sweep: metric against generated tokens per item, one marker per strategy, chosen point starred."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for strategy in dict.fromkeys(r["strategy"] for r in rows):
        pts = [r for r in rows if r["strategy"] == strategy and r["metric"] is not None]
        ax.scatter([r["tokens_per_item"] for r in pts], [r["metric"] for r in pts], label=strategy, s=22)
    for r in rows:
        if r.get("chosen"):
            ax.scatter([r["tokens_per_item"]], [r["metric"]], marker="*", s=260, facecolors="none",
                       edgecolors="red", linewidths=1.5, label="chosen")
            ax.annotate(r["point"], (r["tokens_per_item"], r["metric"]), fontsize=8, xytext=(6, 6),
                        textcoords="offset points")
    ax.set_xlabel("generated tokens per item")
    ax.set_ylabel("metric (val)")
    ax.legend(fontsize=8)
    return _png(fig)


def _signed(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:+.1f}"


def _num(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def _protocol_rows(models: dict[str, Any]) -> list[list[str]]:
    """One row per model, protocol and compared metric."""
    rows = []
    for r in models.values():
        for name, block in (r.get("protocols") or {}).items():
            for label, c in block["vs_strict"].items():
                rows.append([r["label"], name, label, _num(c["strict"]), _num(c["official"]), _signed(c["difference"]),
                             str(block["n_scored"]), str(block["skipped"]["n"]), str(block["failures"]["n"])])
    return rows


def _source_rows(models: dict[str, Any]) -> list[list[str]]:
    """One row per model and record source (models.<model>.by_source of metrics.json)."""
    return [[r["label"], source or "(none)", str(m["n"]), _pct(m["overall"]["score"]),
             *[_pct(m["summary"][k]) for k in SUMMARY_KEYS]]
            for r in models.values() for source, m in (r.get("by_source") or {}).items()]


def build_report(metrics: dict[str, Any], curve: list[dict[str, Any]] | None = None) -> str:
    """The report's HTML text."""
    models, settings = metrics["models"], metrics["settings"]
    parts = [f"<h1>Evaluation report</h1><p class='note'>{settings['items']['n']} items, at most "
             f"{settings['items']['max_items_per_type']} per problem type and source: the 95 % bootstrap intervals "
             f"({settings['n_boot']} resamples) are wide at this size. Scores are percentages.</p>"]
    rows = []
    for name, r in models.items():
        rows.append([r["label"], *[_pct(r["metrics"]["summary"][k]) for k in SUMMARY_KEYS]])
        rows += [[f"  {r['label']} ({c} frames)", *[_pct(b["metrics"]["summary"][k]) for k in SUMMARY_KEYS]]
                 for c, b in r["controls"].items()]
    rows.append(["best constant answer", *[_pct(metrics["constant"]["metrics"]["summary"][k]) for k in SUMMARY_KEYS]])
    parts.append(_table("Headline metrics (V-STaR style summaries)", ["model", *SUMMARY_KEYS], rows))
    if source_rows := _source_rows(models):
        parts.append(_table("Per source (with the video): each source's items and its own 95 % intervals",
                            ["model", "source", "items", "overall", *SUMMARY_KEYS], source_rows))
    gains = metrics.get("ladder_gains") or {}
    if gains:
        parts.append(_table("Gain of each rung over the one before (AM, paired bootstrap on the same items)",
                            ["step", "AM gain", "95 % interval"],
                            [[step, _signed(g.get("value")), "–" if not g.get("ci95") else
                              f"[{_signed(g['ci95'][0])}, {_signed(g['ci95'][1])}]"] for step, g in gains.items()]))
    if by_type := metrics.get("ladder_gains_by_type"):
        rows = [[step, t, _signed(g.get("value")), "–" if not g.get("ci95") else
                 f"[{_signed(g['ci95'][0])}, {_signed(g['ci95'][1])}]", "regressed" if t in gain["regressed"] else ""]
                for step, gain in by_type.items() for t, g in gain["per_type"].items()]
        parts.append(_table("Gain of each rung per problem type (mean item score, paired bootstrap)",
                            ["step", "problem type", "gain", "95 % interval", ""], rows))
    if protocol_rows := _protocol_rows(models):
        parts.append("<h2>Strict and official protocols</h2><p class='note'>The same predictions scored as each "
                     "official evaluator does (parsing and quirks included; videoreasoner/answers/protocols/), "
                     "beside strict on the same items. Official values as fractions here; difference = official "
                     "− strict, in points. Skipped: items of types the official evaluator does not cover; "
                     "rejected: items its code fails on.</p>"
                     + _table("Strict vs official", ["model", "protocol", "metric", "strict", "official",
                                                     "difference", "scored", "skipped", "rejected"], protocol_rows))
    parts.append("<h2>Ladder per problem type</h2>" + ladder_figure(metrics))
    types = sorted({t for r in models.values() for t in r["metrics"]["per_type"]})
    for t in types:
        keys = [k for k in TYPE_KEYS if any(k in r["metrics"]["per_type"].get(t, {}) for r in models.values())]
        blocks = [(r["label"], r["metrics"]) for r in models.values()] + [("constant", metrics["constant"]["metrics"])]
        body = [[k, *[_pct(m["per_type"].get(t, {}).get(k)) for _, m in blocks]] for k in keys]
        parts.append(_table(t, ["metric", *[label for label, _ in blocks]], body))
    gap_rows = []
    for r in models.values():
        for control, gap in r["video_use"].items():
            gap_rows.append([r["label"], control, *[("–" if gap.get(k) is None else f"{100 * gap[k]:+.1f}")
                                                    for k in ("overall", "AM", "accuracy", "m_tIoU", "m_vIoU")]])
    parts.append("<h2>Use of the video</h2><p class='note'>Model minus control, same items (points).</p>"
                 + _table("Gap to the video-blind controls", ["model", "control", "overall", "AM", "accuracy",
                                                              "m_tIoU", "m_vIoU"], gap_rows))
    costs = [[r["label"], f"{r['cost']['tokens_per_item']:.1f}", f"{r['cost']['seconds_per_item']:.3f}",
              f"{r['cost']['generations_per_item']:.1f}"] for r in models.values()]
    parts.append(_table("Cost per test item", ["model", "generated tokens", "wall seconds", "generations"], costs))
    if curve:
        chosen = next((r["point"] for r in curve if r.get("chosen")), "none")
        parts.append(f"<h2>Test-time scaling (val)</h2><p>Chosen operating point: <b>{html.escape(chosen)}</b>"
                     f"</p>{curve_figure(curve)}")
        parts.append(_table("TTS sweep", ["point", "metric", "tokens/item", "seconds/item"],
                            [[r["point"], "–" if r["metric"] is None else f"{100 * r['metric']:.1f}",
                              f"{r['tokens_per_item']:.1f}", f"{r['seconds_per_item']:.3f}"] for r in curve]))
    parts.append("<h2>Settings</h2><pre>" + html.escape(json.dumps(settings, indent=2, default=str)) + "</pre>")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Evaluation report</title>"
            f"<style>{STYLE}</style></head><body>{''.join(parts)}</body></html>")


def write_report(path: str | Path, metrics: dict[str, Any], curve: list[dict[str, Any]] | None = None) -> None:
    write_text(path, build_report(metrics, curve))
