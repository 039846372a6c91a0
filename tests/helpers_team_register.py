"""One registration from its own workspace, as a separate process (tests/test_team_registry.py runs two at
once against the team server): `python tests/helpers_team_register.py WORKSPACE MODEL PIPELINE_RUN_ID`.
A stand-in model folder and policy, the lineage tags of that pipeline run; prints the version."""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flows import registration, registry_tracking  # noqa: E402
from flows.gates import Gate, Rules  # noqa: E402


def main(workspace: str, model: str, pipeline_run_id: str) -> None:
    root = Path(workspace)
    (root / "models/rl").mkdir(parents=True, exist_ok=True)
    (root / "models/rl/config.json").write_text(json.dumps({"workspace": str(root)}))
    (root / "policy.json").write_text(json.dumps({"strategy": "greedy"}))
    registry_tracking.tracking_setup(root)
    tags = {"git_commit": f"commit-{pipeline_run_id}", "pipeline_run_id": pipeline_run_id,
            "dvc_lock_hash": f"hash-{pipeline_run_id}"}
    version = registration.register(Rules(model, gates=(Gate("mc_accuracy", 0.0),)), root / "models/rl",
                                    root / "policy.json", {"mc_accuracy": 0.5}, tags=tags,
                                    predictor_factory=lambda *a: (lambda record, video: "A"))
    print(f"VERSION {version}")


if __name__ == "__main__":
    main(*sys.argv[1:4])
