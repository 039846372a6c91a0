"""`evaluate` stage: the ladder base → sft → rl → rl + TTS policy on the test split, with video-blind controls.

Reads models/{base,sft,rl}, reports/tts/policy.json, data/validated/{test,val,train}.jsonl, params `eval`,
`video`, `compute`. The scored items are the validated records params eval.sources names (source and
split), at most eval.max_items_per_type of each problem type from each source, drawn at random with
eval.seed (videoreasoner/data/eval_items.py). Writes to reports/eval/: predictions/<model>.jsonl (+ <model>.blank.jsonl,
<model>.shuffled.jsonl, constant.jsonl; rows {"id", "prediction"}; <model>.frames.jsonl: rows {"id",
"sampler", "frame_times"}, the seconds of the frames each answer saw), items.jsonl (the evaluated test
records), metrics.json (every number with its 95 % bootstrap interval, each rung's paired AM gain over
the rung before it in `ladder_gains`, each model's results per record source in models.<model>.by_source,
and every setting used),
summary.json (flat headline numbers: the DVC metrics file), ladder.csv (DVC plot) and report.html.
Scores come from videoreasoner.answers.score.score_predictions only, so `vr score --split reports/eval/items.jsonl
--predictions reports/eval/predictions/rl.jsonl --out DIR` reproduces them (same seed, n_boot 1000).
Each model's answers with the video are also scored under every protocol of params eval.protocols
(videoreasoner/answers/protocols/), from the predictions file just written: metrics.json holds each
result under models.<model>.protocols.<name> (its settings, skipped types, official numbers and
difference to strict), and `vr score ... --protocol NAME` reproduces it.
Run: `python -m stages.evaluate`.
"""
from __future__ import annotations

import csv
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from videoreasoner.core import telemetry  # noqa: F401
from videoreasoner.answers.format import PROMPT_VERSION
from videoreasoner.core.atomic import atomic_path, read_jsonl, write_json, write_jsonl
from videoreasoner.core.params import SectionDefaults
from videoreasoner.inference.controls import (
    best_constant_answers,
    constant_predictions,
    control_transform,
)
from videoreasoner.inference.engines import Decoding, Engine, load_engine
from videoreasoner.answers.metrics import paired_difference, paired_type_differences
from videoreasoner.core.paths import (
    EVAL_REPORTS,
    MODELS_BASE,
    MODELS_RL,
    MODELS_SFT,
    TTS_REPORTS,
    split_file,
)
from videoreasoner.answers.protocols import parse_names, score_protocols, strict_settings
from videoreasoner.answers.score import score_by_source, score_predictions
from videoreasoner.data import eval_items
from videoreasoner.data.selection import select_records
from videoreasoner.core.machine import machine
from videoreasoner.core.tracking import stage_run
from videoreasoner.training.checkpoints import model_digest
from videoreasoner.inference.tts_policy import CURVE_FILE, POLICY_FILE, metric_value
from videoreasoner.inference.tts_strategies import apply_policy, greedy, with_sampler
from videoreasoner.video.config import VideoConfig
from videoreasoner.video.inputs import count_video_tokens

log = logging.getLogger(__name__)
PREDICTIONS_DIR, ITEMS_FILE, METRICS_FILE = "predictions", "items.jsonl", "metrics.json"
SUMMARY_FILE, LADDER_FILE, REPORT_FILE = "summary.json", "ladder.csv", "report.html"
MODEL_DIRS = {"base": MODELS_BASE, "sft": MODELS_SFT, "rl": MODELS_RL, "rl_tts": MODELS_RL}
LABELS = {"base": "base", "sft": "sft", "rl": "rl", "rl_tts": "rl + policy"}
# Flat names -> paths into videoreasoner.answers.metrics.aggregate's output. Each model entry of metrics.json carries
# them at its top level too, where mlflow/registry.yaml's gates (eval_models: rl_tts, rl) read them.
HEADLINE = {
    "overall": "overall.score", "accuracy": "summary.accuracy", "m_tIoU": "summary.m_tIoU",
    "m_vIoU": "summary.m_vIoU", "AM": "summary.AM", "LGM": "summary.LGM",
    "mc_accuracy": "per_type.multiple_choice.score", "numerical_accuracy": "per_type.numerical.score",
    "regression_score": "per_type.regression.score", "free_form_score": "per_type.free_form.score",
    "temporal_miou": "per_type.temporal_grounding.mIoU", "temporal_R1@0.5": "per_type.temporal_grounding.R1@0.5",
    "spatial_miou": "per_type.spatial_grounding.mIoU", "stvg_m_vIoU": "per_type.spatio_temporal_grounding.m_vIoU",
}
LADDER_METRICS = ("AM", "accuracy", "m_tIoU", "m_vIoU", "mc_accuracy", "temporal_miou", "spatial_miou")
# Equal to params.yaml `eval` (tests/test_params_defaults.py): a partial section behaves as the pipeline.
DEFAULTS: dict[str, Any] = {
    "models": ["base", "sft", "rl", "rl_tts"], "sources": [{"source": "*", "splits": ["test"]}],
    "max_items_per_type": 24, "controls": ["blank", "shuffled"],
    "constant": {"max_candidates": 24, "max_records": 300}, "decoding": {"max_new_tokens": 192},
    "batch_size": 96, "torch_threads": 2, "seed": 0, "n_boot": 1000, "backend": "hf",
    "protocols": ["strict", "lmms_eval_charades", "video_r1", "video_r1_reward", "vstar", "timezero",
                  "videochat_r1", "tubedetr_hcstvg", "cgstvg_hcstvg"],
    "protocol_settings": {},
}

EVAL_SECTION = SectionDefaults("eval", DEFAULTS)


def settings(params: dict[str, Any] | None) -> dict[str, Any]:
    out = EVAL_SECTION.read(params)
    if bad := [m for m in out["models"] if m not in MODEL_DIRS]:
        raise ValueError(f"params eval.models: unknown {bad[0]!r} (known: {list(MODEL_DIRS)})")
    try:
        out["protocols"] = parse_names(out["protocols"])
    except ValueError as exc:
        raise ValueError(f"params eval.protocols: {exc}") from None
    out["sources"] = eval_items.parse_sources(out["sources"])
    if bad := [n for n in out["protocol_settings"] if n not in out["protocols"]]:
        raise ValueError(f"params eval.protocol_settings: {bad[0]!r} is not in eval.protocols")
    return out


def flat(metrics: dict[str, Any]) -> dict[str, float | None]:
    """The HEADLINE numbers of one aggregate."""
    return {name: metric_value(metrics, path)[0] for name, path in HEADLINE.items()}


def video_use(model: dict[str, float | None], control: dict[str, float | None]) -> dict[str, float | None]:
    """Model minus control per headline metric (None where either is undefined)."""
    return {k: None if model.get(k) is None or control.get(k) is None else model[k] - control[k] for k in model}


@dataclass
class EvalRun:
    """Everything the stage reads. model_dirs / engines let tests swap checkpoints or pass engines;
    model_uri names where model_dirs came from (`vr evaluate --model URI`), recorded in the settings."""

    eval: dict[str, Any] = field(default_factory=dict)
    video: dict[str, Any] = field(default_factory=dict)
    compute: dict[str, Any] = field(default_factory=dict)
    test_file: Path = split_file("test")
    val_file: Path = split_file("val")
    train_file: Path = split_file("train")
    policy_file: Path = TTS_REPORTS / POLICY_FILE
    curve_file: Path | None = TTS_REPORTS / CURVE_FILE
    video_root: Path = Path(".")
    out_dir: Path = EVAL_REPORTS
    model_dirs: dict[str, Path] = field(default_factory=lambda: dict(MODEL_DIRS))
    engines: dict[str, Engine] = field(default_factory=dict)
    tracking: bool = True
    model_uri: str | None = None

    def split_path(self, split: str) -> Path:
        return {"train": self.train_file, "val": self.val_file, "test": self.test_file}[split]

    def items(self, ev: dict[str, Any]) -> list[dict]:
        """The records params eval.sources chooses, drawn per (source, problem type) with the eval seed."""
        chosen = eval_items.choose({s: read_jsonl(self.split_path(s)) for s in eval_items.splits_read(ev["sources"])},
                                   ev["sources"])
        if not chosen:
            raise ValueError(f"params eval.sources: no reasoning record matches {ev['sources']}")
        return eval_items.draw(chosen, ev["max_items_per_type"], ev["seed"])


def _score(records, predictions, path: Path, ev: dict[str, Any]) -> tuple[dict[str, Any], list[dict]]:
    """Write the predictions, score them: (metrics, per-item rows)."""
    write_jsonl(path, predictions)
    return score_predictions(records, predictions, ev["seed"], n_boot=ev["n_boot"], where=str(path))


def ladder_gains(names: list[str], items: dict[str, list[dict]], ev: dict[str, Any]) -> dict[str, Any]:
    """Each rung's AM gain over the rung before it ("sft-base", "rl-sft", "rl_tts-rl"), on the same test
    items with a paired bootstrap interval (videoreasoner.answers.metrics.paired_difference): at 24 items per type, two
    models 0.04 AM apart have overlapping intervals of their own, but the paired interval of the
    difference excludes 0."""
    return {f"{b}-{a}": paired_difference(items[a], items[b], ev["seed"], ev["n_boot"])
            for a, b in zip(names, names[1:]) if a in items and b in items}


def ladder_gains_by_type(names: list[str], items: dict[str, list[dict]], ev: dict[str, Any]) -> dict[str, Any]:
    """Each rung's gain over the rung before it per problem type (mean item score, paired interval), and
    the types that regressed (interval wholly below 0): a rung can gain AM while losing one type."""
    out = {}
    for a, b in zip(names, names[1:]):
        if a in items and b in items:
            by_type = paired_type_differences(items[a], items[b], ev["seed"], ev["n_boot"])
            regressed = [t for t, g in by_type.items() if g["ci95"] is not None and g["ci95"][1] < 0]
            if regressed:
                log.warning("%s regressed from %s on %s (paired interval below 0)", b, a, ", ".join(regressed))
            out[f"{b}-{a}"] = {"per_type": by_type, "regressed": regressed}
    return out


def evaluate_model(name: str, engine: Engine, answer, records: list[dict], ev: dict[str, Any],
                   pred_dir: Path, items: dict[str, list] | None = None) -> dict[str, Any]:
    """Predictions, metrics and cost of one model with the correct video and under each control."""
    out: dict[str, Any] = {"controls": {}}
    for condition in ["video", *ev["controls"]]:
        eng = engine if condition == "video" else \
            engine.with_frames(engine.frames.with_transform(control_transform(condition, ev["seed"])))
        t0 = time.perf_counter()
        with count_video_tokens() as meter:
            answers = answer(eng, records)
        seconds = time.perf_counter() - t0
        predictions = [{"id": str(r["id"]), "prediction": a.text} for r, a in zip(records, answers)]
        if condition == "video":  # what the sampler chose: the true times (seconds) of each answer's frames
            write_jsonl(pred_dir / f"{name}.frames.jsonl", [
                {"id": str(r["id"]), "sampler": eng.frames.video.sampler,
                 "frame_times": [round(t, 4) for t in eng.frames.get(r, a.frames).timestamps]}
                for r, a in zip(records, answers)])
        file = pred_dir / (f"{name}.jsonl" if condition == "video" else f"{name}.{condition}.jsonl")
        metrics, per_item = _score(records, predictions, file, ev)
        if condition == "video" and items is not None:  # per-item rows with the video: the paired ladder gains
            items[name] = per_item
        if condition == "video":  # per source; and the official protocols, from the predictions file just written
            out["by_source"] = score_by_source(records, per_item, ev["seed"], n_boot=ev["n_boot"])
            out["protocols"] = {p: result for p, (result, _) in score_protocols(
                ev["protocols"], records, predictions, metrics, ev["protocol_settings"], where=str(file)).items()}
        block = {"metrics": metrics, "predictions": str(file),
                 "cost": {"tokens_per_item": sum(a.tokens for a in answers) / len(records),
                          "seconds_per_item": seconds / len(records),
                          "generations_per_item": sum(a.generations for a in answers) / len(records),
                          "sampler": eng.frames.video.sampler, **meter.summary()}}
        if condition == "video":
            out.update(block)
        else:
            out["controls"][condition] = block
        log.info("%s [%s]: AM %s, overall %.4f", name, condition, flat(block["metrics"])["AM"],
                 flat(block["metrics"])["overall"] or 0.0)
    return out


def run(cfg: EvalRun) -> dict[str, Any]:
    """Evaluate every model in params eval.models; write the outputs; return metrics.json's content."""
    ev = settings(cfg.eval)
    video = VideoConfig.from_params(cfg.video)
    decoding = Decoding.from_params({**ev["decoding"], "do_sample": False})
    records = cfg.items(ev)
    policy = json.loads(Path(cfg.policy_file).read_text(encoding="utf-8")) if "rl_tts" in ev["models"] else None
    out_dir, pred_dir = Path(cfg.out_dir), Path(cfg.out_dir) / PREDICTIONS_DIR
    write_jsonl(out_dir / ITEMS_FILE, records)
    constants = best_constant_answers(select_records(read_jsonl(cfg.train_file), "reasoning"),
                                      seed=ev["seed"], **ev["constant"])
    constant, _ = _score(records, constant_predictions(records, constants), pred_dir / "constant.jsonl", ev)
    results: dict[str, Any] = {}
    versions: dict[str, dict[str, str]] = {}
    with stage_run("evaluate", {"eval": ev, "video": cfg.video}, cfg.tracking) as mlrun:
        loaded: dict[str, Engine] = {}
        per_item: dict[str, list[dict]] = {}
        for name in ev["models"]:
            path = Path(cfg.model_dirs[name])
            version = model_digest(path) if path.is_dir() else str(path)
            versions[name] = {"path": str(path), "version": version,
                              **({"uri": cfg.model_uri} if cfg.model_uri else {})}
            engine = cfg.engines.get(name) or loaded.get(str(path)) or load_engine(
                path, video, cfg.video_root, backend=ev["backend"], dtype=cfg.compute.get("dtype", "float32"),
                batch_size=ev["batch_size"], model_version=version, torch_threads=ev["torch_threads"])
            loaded[str(path)] = engine
            if name == "rl_tts":
                engine = with_sampler(engine, policy.get("sampler"))
                answer = lambda eng, recs: apply_policy(eng, recs, policy)  # noqa: E731
            else:
                answer = lambda eng, recs: greedy(eng, recs, decoding=decoding)  # noqa: E731
            result = evaluate_model(name, engine, answer, records, ev, pred_dir, per_item)
            model_flat = flat(result["metrics"])
            result["video_use"] = {c: video_use(model_flat, flat(b["metrics"])) for c, b in result["controls"].items()}
            result["video_use"]["constant"] = video_use(model_flat, flat(constant))
            result.update(model_flat)  # flat headline names at the top level: the registry gates read them
            result.update(label=LABELS[name], checkpoint=str(path), model_version=version,
                          answering=policy if name == "rl_tts" else {"strategy": "greedy", "frames": None,
                                                                       "decoding": decoding.to_dict()})
            results[name] = result
            mlrun.log_metrics({f"{name}/{k}": v for k, v in model_flat.items() if v is not None})
            mlrun.log_metrics({f"{name}/protocol/{k}": v for k, v in protocol_numbers(result).items() if v is not None})
        metrics = {
            "models": results,
            "ladder_gains": ladder_gains(ev["models"], per_item, ev),
            "ladder_gains_by_type": ladder_gains_by_type(ev["models"], per_item, ev),
            "constant": {"metrics": constant, "answers": constants, "predictions": str(pred_dir / "constant.jsonl")},
            "headline": flat(results[ev["models"][-1]]["metrics"]) if results else {},
            "headline_model": ev["models"][-1] if results else None,
            "settings": {"video": video.__dict__, "frames": {k: video.__dict__[k] for k in
                                                             ("fps", "min_frames", "max_frames", "sampler")},
                         "pixels": {"max_pixels": video.max_pixels, "min_pixels": video.min_pixels},
                         "prompt_version": PROMPT_VERSION, "decoding": decoding.to_dict(), "tts_policy": policy,
                         "models": versions,
                         "items": {"n": len(records), "max_items_per_type": ev["max_items_per_type"],
                                   "sources": ev["sources"], "drawn": eval_items.counts(records),
                                   "files": {s: str(cfg.split_path(s)) for s in eval_items.splits_read(ev["sources"])}},
                         "seed": ev["seed"], "n_boot": ev["n_boot"], "backend": ev["backend"],
                         "machine": machine(),
                         "dtype": cfg.compute.get("dtype", "float32"), "strict_answers": True,
                         "protocols": {"names": ev["protocols"], "strict": strict_settings(),
                                       "settings": ev["protocol_settings"]},
                         "rescore": f"vr score --split {out_dir / ITEMS_FILE} --predictions "
                                    f"{pred_dir}/<model>.jsonl --out <dir> --seed {ev['seed']}"
                                    + "".join(f" --protocol {p}" for p in ev["protocols"] if p != "strict")},
        }
        mlrun.log_metrics({f"gain/{k}": g["value"] for k, g in metrics["ladder_gains"].items()
                           if g["value"] is not None})
        write_outputs(out_dir, metrics, cfg.curve_file)
        mlrun.log_artifact(out_dir / METRICS_FILE)
        mlrun.log_artifact(out_dir / REPORT_FILE)
    return metrics


def write_outputs(out_dir: Path, metrics: dict[str, Any], curve_file: Path | None) -> None:
    """metrics.json, summary.json (flat, DVC metrics), ladder.csv (DVC plot) and report.html."""
    from videoreasoner.inference.report import read_curve, write_report

    write_json(out_dir / METRICS_FILE, metrics)
    summary: dict[str, Any] = {"headline": metrics["headline"], "constant": flat(metrics["constant"]["metrics"]),
                               "ladder_gains": {k: g["value"] for k, g in metrics.get("ladder_gains", {}).items()}}
    for name, result in metrics["models"].items():
        summary[name] = flat(result["metrics"])
        for control, block in result["controls"].items():
            summary[f"{name}_{control}"] = flat(block["metrics"])
    summary["protocols"] = protocol_table(metrics)
    write_json(out_dir / SUMMARY_FILE, summary)
    with atomic_path(out_dir / LADDER_FILE) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["model", *LADDER_METRICS])
        writer.writeheader()
        for name in [*metrics["models"], "constant"]:
            values = summary[name]
            writer.writerow({"model": LABELS.get(name, name),
                             **{k: "" if values.get(k) is None else round(values[k], 6) for k in LADDER_METRICS}})
    curve = read_curve(curve_file) if curve_file and Path(curve_file).is_file() else None
    write_report(out_dir / REPORT_FILE, metrics, curve)


def protocol_numbers(result: dict[str, Any]) -> dict[str, float | None]:
    """{"<protocol>/<metric>": official value as a fraction, "<protocol>/<metric>-strict": official −
    strict} of one model's result: the flat side-by-side numbers of summary.json and MLflow."""
    row: dict[str, float | None] = {}
    for protocol, block in (result.get("protocols") or {}).items():
        for label, c in block["vs_strict"].items():
            row[f"{protocol}/{label}"] = c["official"]
            row[f"{protocol}/{label}-strict"] = c["difference"]
    return row


def protocol_table(metrics: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    """{model: protocol_numbers(model's result)}."""
    return {name: protocol_numbers(result) for name, result in metrics["models"].items()}


def main() -> int:
    from videoreasoner.core.params import section

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    run(EvalRun(eval=section("eval"), video=section("video"), compute=section("compute")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())  # main returns the exit code (vr/cli.py relies on it)
