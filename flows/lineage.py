"""Where a workspace stands, without importing Prefect: the lineage tags of its `dvc.lock` and whether a
flow run would do anything at all (`already_done`, checked by `vr pipeline` before Prefect starts)."""
from __future__ import annotations

import contextlib
from pathlib import Path

from flows.dag import runnable_stages, stage_order


def lineage_tags(repo: str | Path, pipeline_run_id: str = "") -> dict[str, str]:
    """git commit, the DVC revision (flows/revision.py: the commit holding this dvc.lock, or
    `uncommitted`), the DVC experiment's name inside `dvc exp run`, the dvc.lock hash of every stage
    (`dvc_lock.<stage>`) and of the whole pipeline."""
    from flows.revision import REV_TAG, dvc_revision
    from videoreasoner.core.tracking import dvc_experiment_tags, dvc_lock_hash, git_commit

    repo = Path(repo).resolve()
    with contextlib.chdir(repo):
        tags = {"git_commit": git_commit(), "pipeline_run_id": pipeline_run_id, REV_TAG: dvc_revision(repo),
                **dvc_experiment_tags()}
        stages = stage_order(repo)
        tags.update({f"dvc_lock.{s}": dvc_lock_hash(s, repo / "dvc.lock") for s in stages})
    tags["dvc_lock_hash"] = "-".join(tags[f"dvc_lock.{s}"][:8] for s in stages)
    return tags


def already_done(repo: str | Path, register_model: bool = True) -> str | None:
    """Why a flow run would do nothing, or None: every stage is up to date (`dvc status` is clean) and,
    when registering, a model version already holds this exact pipeline state. Checked before Prefect
    starts, so an up-to-date re-run costs seconds instead of a temporary server's start-up."""
    from dvc.repo import Repo

    repo = Path(repo).resolve()
    if not (repo / "dvc.lock").is_file():
        return None
    frozen = set(stage_order(repo)) - set(runnable_stages(repo))  # never run by the flow (pretrain)
    with Repo(str(repo)) as dvc_repo:
        if any(name.rpartition(":")[2] not in frozen for name in dvc_repo.status()):
            return None
    if not register_model:
        return "every stage is up to date"
    import mlflow

    from flows.aliases import alias_version, find_version
    from flows.gates import load_rules
    from flows.registry_tracking import tracking_uri

    uri = tracking_uri(repo)
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        return None  # no store yet: nothing was registered
    mlflow.set_tracking_uri(uri)  # the registry only: no experiment is opened or created
    rules = load_rules(repo / "mlflow/registry.yaml")
    version = find_version(rules, "dvc_lock_hash", lineage_tags(repo)["dvc_lock_hash"])
    if version is None:
        return None
    champion = alias_version(rules, rules.champion)
    return f"every stage is up to date and {rules.model_name} version {version} holds this state " \
           f"(champion: {champion or 'none'})"
