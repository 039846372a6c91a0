"""`vr evaluate --model URI [--out DIR]`: score a registered (or any local) model on the records params
`eval.sources` chooses, with the evaluate stage's own code and nothing retrained.

URI: `models:/video-reasoner@champion`, `models:/<name>/<version>`, a pyfunc folder or a checkpoint
folder (flows/model_source.py resolves it with MLflow's API and hands the stage local folders only). A
registered model is scored as `rl` (greedy, params eval.decoding) and `rl_tts` (its own TTS policy),
the two entries the registry's gates read, with the video settings it was registered with (params
`video` for a bare checkpoint, which is scored as `rl` only); every other setting (sources, items per
type and source, controls, protocols, seed) is params.yaml's `eval`. The outputs are the evaluate
stage's (metrics.json with models.<model>.by_source, report.html, predictions/) under --out, default
reports/eval_model/<model name>; the DVC-tracked reports/eval/ is left alone, and no MLflow run is logged.
"""
from __future__ import annotations

import argparse
import logging
import re
import sys
import tempfile
from pathlib import Path

from videoreasoner.core import telemetry  # noqa: F401
from mlflow.exceptions import MlflowException

from flows.cli_logging import cli_logging
from flows.model_source import resolve
from stages.evaluate import EvalRun, run
from videoreasoner.core.params import load_params

log = logging.getLogger("flows.evaluate_model")
OUT_ROOT = Path("reports/eval_model")


def default_out(uri: str) -> Path:
    """reports/eval_model/<the URI with every run of characters other than letters, digits, . and - as _>."""
    return OUT_ROOT / re.sub(r"[^A-Za-z0-9.-]+", "_", uri.removeprefix("models:/")).strip("_")


def evaluate_model(uri: str, out_dir: Path, params_file: str | Path = "params.yaml") -> dict:
    """metrics.json's content for the model `uri` (see the module docstring)."""
    params = load_params(params_file)
    with tempfile.TemporaryDirectory(prefix="vr-evaluate-") as download:
        local = resolve(uri, download_to=download)
        names = ["rl", "rl_tts"] if local.policy_file else ["rl"]
        cfg = EvalRun(eval={**(params.get("eval") or {}), "models": names},
                      video=local.settings.get("video") or params.get("video") or {},
                      compute={"dtype": (local.settings.get("compute") or params.get("compute") or {}).get("dtype",
                                                                                                           "float32")},
                      curve_file=None, out_dir=out_dir, model_dirs={name: local.model_dir for name in names},
                      tracking=False, model_uri=uri)
        if local.policy_file:
            cfg.policy_file = local.policy_file
        return run(cfg)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vr evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="models:/NAME@ALIAS, models:/NAME/VERSION or a folder")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: reports/eval_model/<model>)")
    args = parser.parse_args(argv)
    cli_logging()
    out = args.out or default_out(args.model)
    try:
        metrics = evaluate_model(args.model, out)
    except (FileNotFoundError, ValueError) as exc:
        print(f"vr evaluate: {exc}", file=sys.stderr)
        return 2
    except MlflowException as exc:  # e.g. no such registered model or alias
        print(f"vr evaluate: {exc.message}", file=sys.stderr)
        return 1
    name = metrics["headline_model"]
    log.info("%s: AM %s on %d items; per source: %s; report: %s", args.model, metrics["headline"].get("AM"),
             metrics["settings"]["items"]["n"],
             {s: m["summary"]["AM"]["value"] for s, m in metrics["models"][name]["by_source"].items()},
             out / "report.html")
    return 0


if __name__ == "__main__":
    sys.exit(main())
