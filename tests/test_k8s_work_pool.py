"""infra/k8s/gpu-work-pool.json against Prefect's own checks, offline: the API's work-pool model (which
rejects a job configuration using a variable the schema does not declare), Prefect's JSON-schema
validator for the variables block and its defaults, and Prefect's templating (what a worker renders)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = json.loads((ROOT / "infra/k8s/gpu-work-pool.json").read_text())


def defaults(template: dict) -> dict:
    return {k: v["default"] for k, v in template["variables"]["properties"].items() if "default" in v}


def test_prefect_accepts_the_template_as_a_kubernetes_work_pool():
    from prefect.client.schemas.actions import WorkPoolCreate as ClientCreate
    from prefect.server.schemas.actions import WorkPoolCreate

    pool = WorkPoolCreate(name="videoreasoner-gpu", type="kubernetes", base_job_template=TEMPLATE)
    assert pool.base_job_template == TEMPLATE
    ClientCreate(name="videoreasoner-gpu", type="kubernetes", base_job_template=TEMPLATE)


def test_prefect_rejects_an_undeclared_variable():
    """The check above can fail: the same template using one variable it does not declare."""
    from prefect.server.schemas.actions import WorkPoolCreate

    broken = json.loads(json.dumps(TEMPLATE))
    broken["job_configuration"]["image"] = "{{ image_tag }}"
    with pytest.raises(ValueError, match="image_tag"):
        WorkPoolCreate(name="videoreasoner-gpu", type="kubernetes", base_job_template=broken)


def test_variables_are_a_valid_schema_and_its_defaults_satisfy_it():
    from prefect.utilities.schema_tools.validation import ValidationError, is_valid_schema, validate

    is_valid_schema(TEMPLATE["variables"])
    assert validate(defaults(TEMPLATE), TEMPLATE["variables"], raise_on_error=True) == []
    with pytest.raises(ValidationError, match="image_pull_policy"):
        validate({**defaults(TEMPLATE), "image_pull_policy": "Sometimes"}, TEMPLATE["variables"], raise_on_error=True)


def test_the_rendered_job_is_a_gpu_job_with_the_shared_workspace():
    from prefect.utilities.templating import apply_values, find_placeholders

    values = {**defaults(TEMPLATE), "command": "python -m flows.pipeline", "name": "run", "env": {},
              "labels": {}}
    job = apply_values(TEMPLATE["job_configuration"], values, remove_notset=True)
    assert not find_placeholders(json.dumps(job)), "every placeholder must be declared and rendered"
    manifest = job["job_manifest"]
    assert manifest["apiVersion"] == "batch/v1" and manifest["kind"] == "Job"
    spec = manifest["spec"]["template"]["spec"]
    limits = spec["containers"][0]["resources"]["limits"]
    assert str(limits["nvidia.com/gpu"]) == str(TEMPLATE["variables"]["properties"]["gpu_count"]["default"])
    assert {v["name"] for v in spec["volumes"]} == {"dshm", "workspace"}
