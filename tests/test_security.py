"""Security (issue 7, item 4): safetensors-only model loading without remote code, MLflow credentials
that stay in the environment, and an auth-enabled MLflow server that refuses anonymous clients.
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SENTINEL = "pw-SENTINEL-7f3a9c"  # a password that must never leave the environment
# A key naming a credential: password, passwd, token, access_token, secret_key, api_key, credentials, ...
SECRET_KEY_RE = re.compile(r"(^|[_.-])(password|passwd|pwd|token|secret|api_?key|credentials?|auth)([_.-]|$)",
                           re.IGNORECASE)


# ---------------------------------------------------------------------------------------------------
# Models: safetensors only, no remote code
# ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    """A saved tiny Qwen2.5-VL checkpoint (model.safetensors + processor), built from world records."""
    from stages.generate import records_for
    from videoreasoner.training.model_io import save_model_and_processor
    from videoreasoner.training.tiny_model import TinyConfig, build_tiny
    from videoreasoner.video.config import VideoConfig
    from videoreasoner.data.world.config import WorldConfig
    from tests.helpers_world import TINY_SIZES

    records = [r for i in range(1) for r in records_for(WorldConfig(), "train", i)]
    model, processor = build_tiny(TinyConfig.from_params(TINY_SIZES), records, VideoConfig())
    return save_model_and_processor(model, processor, tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture()
def torch_load_calls(monkeypatch) -> list:
    """Records every torch.load (pickle) call made while the test runs."""
    import torch

    calls: list = []
    real = torch.load

    def spy(*args, **kwargs):
        calls.append(args[:1])
        return real(*args, **kwargs)
    monkeypatch.setattr(torch, "load", spy)
    return calls


def test_the_loader_reads_safetensors_and_refuses_a_pickle_only_checkpoint(tiny_dir, tmp_path, torch_load_calls):
    import torch
    from safetensors.torch import load_file

    from videoreasoner.training.model_io import load_model_and_processor

    assert (tiny_dir / "model.safetensors").is_file()
    model, _ = load_model_and_processor(tiny_dir)  # control: the safetensors checkpoint loads
    pickled = tmp_path / "pickled"
    shutil.copytree(tiny_dir, pickled)
    (pickled / "model.safetensors").unlink()
    torch.save(load_file(tiny_dir / "model.safetensors"), pickled / "pytorch_model.bin")
    assert not list(pickled.glob("*.safetensors*"))
    with pytest.raises((OSError, ValueError)):
        load_model_and_processor(pickled)
    assert torch_load_calls == []  # refused before any pickle was opened
    del model


@pytest.mark.parametrize("overrides", [{"use_safetensors": False}, {"trust_remote_code": True}])
def test_the_loader_cannot_be_talked_out_of_safetensors_or_into_remote_code(tiny_dir, overrides):
    from videoreasoner.training.model_io import load_model_and_processor

    with pytest.raises(ValueError, match="not allowed"):
        load_model_and_processor(tiny_dir, model_kwargs=overrides)
    if "trust_remote_code" in overrides:
        with pytest.raises(ValueError, match="not allowed"):
            load_model_and_processor(tiny_dir, processor_kwargs=overrides)


def test_code_shipped_with_a_checkpoint_is_never_run(tiny_dir, tmp_path):
    """A checkpoint whose config names its own modelling code (auto_map) loads with the library class;
    the shipped module is never imported (it would leave a marker file)."""
    from videoreasoner.training.model_io import load_model_and_processor

    evil = tmp_path / "evil"
    shutil.copytree(tiny_dir, evil)
    marker = tmp_path / "remote_code_ran"
    (evil / "modeling_evil.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n", encoding="utf-8")
    config = json.loads((evil / "config.json").read_text(encoding="utf-8"))
    config["auto_map"] = {"AutoModelForImageTextToText": "modeling_evil.EvilModel",
                          "AutoProcessor": "modeling_evil.EvilProcessor"}
    (evil / "config.json").write_text(json.dumps(config), encoding="utf-8")
    model, processor = load_model_and_processor(evil)
    assert not marker.exists()
    assert type(model).__module__.startswith("transformers.")
    assert type(processor).__module__.startswith("transformers.")


def _python_sources() -> list[Path]:
    return sorted(p for d in ("stages", "flows") for p in (ROOT / d).rglob("*.py"))


def test_no_code_path_trusts_remote_code():
    """Every setting of trust_remote_code in stages/ and flows/ sets it to False; no config turns it on."""
    sources = _python_sources()
    assert len(sources) > 20
    offending = []
    for path in sources:
        text = path.read_text(encoding="utf-8")
        for m in re.finditer(r"trust_remote_code[\"']?\s*[=:]\s*(\w+)", text):  # keyword or dict entry
            if m.group(1) != "False":
                offending.append(f"{path.relative_to(ROOT)}: {m.group(0)!r}")
    assert offending == []
    for path in [ROOT / "params.yaml", *sorted((ROOT / "infra").rglob("*.y*ml"))]:
        assert not re.search(r"trust_remote_code\W{0,6}true", path.read_text(encoding="utf-8"),
                             re.IGNORECASE), path


def test_the_vllm_backend_also_loads_safetensors_only(tiny_dir, monkeypatch):
    from videoreasoner.inference import engines as inference

    built: list[dict] = []
    fake = types.ModuleType("vllm")
    fake.LLM = lambda **kwargs: built.append(kwargs) or object()
    monkeypatch.setitem(sys.modules, "vllm", fake)
    inference.load_engine(tiny_dir, {"video": {}, "eval": {"backend": "vllm"}})
    assert built and built[0].get("trust_remote_code", False) is False
    assert built[0].get("load_format") == "safetensors"


# ---------------------------------------------------------------------------------------------------
# MLflow credentials: environment only
# ---------------------------------------------------------------------------------------------------

def _walk(tree: object, path: str = ""):
    """(dotted key path, leaf value) pairs of a YAML/JSON tree."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from _walk(value, f"{path}.{key}")
            yield f"{path}.{key}", None
    elif isinstance(tree, list):
        for i, value in enumerate(tree):
            yield from _walk(value, f"{path}[{i}]")
    else:
        yield path, tree


@pytest.mark.parametrize("name", ["params.yaml", "mlflow/registry.yaml", "dvc.yaml"])
def test_config_files_hold_no_credentials(name):
    tree = yaml.safe_load((ROOT / name).read_text(encoding="utf-8"))
    keys = [path for path, _ in _walk(tree) if SECRET_KEY_RE.search(path.rsplit(".", 1)[-1])]
    assert keys == []
    assert not re.search(r"MLFLOW_TRACKING_(PASSWORD|TOKEN)", (ROOT / name).read_text(encoding="utf-8"))


def test_stage_run_never_logs_the_tracking_password(tmp_path, monkeypatch, caplog, capfd):
    import mlflow
    from videoreasoner.core.params import load_params
    from videoreasoner.core.tracking import stage_run

    monkeypatch.chdir(tmp_path)  # the default artifact dir and dvc.lock are relative to the workspace
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "pipeline")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", SENTINEL)
    params = load_params(ROOT / "params.yaml")
    caplog.set_level(logging.DEBUG)
    with stage_run("sft", {"sft": params["sft"], "video": params["video"], "rewards": params["rewards"]}) as run:
        run.log_metrics({"loss": 1.0}, step=0)
        run_id = mlflow.active_run().info.run_id
    logged = mlflow.tracking.MlflowClient(uri).get_run(run_id)
    assert logged.data.params.get("sft.learning_rate") == str(params["sft"]["learning_rate"])
    for where, mapping in (("params", logged.data.params), ("tags", logged.data.tags)):
        for key, value in mapping.items():
            assert SENTINEL not in key and SENTINEL not in str(value), (where, key)
            assert not SECRET_KEY_RE.search(key), (where, key)
    out, err = capfd.readouterr()
    assert SENTINEL not in caplog.text + out + err


@pytest.mark.parametrize("text, expected", [
    (f"http://pipeline:{SENTINEL}@127.0.0.1:5000", "http://127.0.0.1:5000"),
    (f"MLflow run 1f (https://{SENTINEL}@mlflow.example/api)", "MLflow run 1f (https://mlflow.example/api)"),
    ("sqlite:////work/mlflow/mlflow.db", "sqlite:////work/mlflow/mlflow.db"),
])
def test_tracking_uris_lose_their_credentials_before_any_log_line(text, expected):
    """The stage runs, `vr pipeline` and `vr registry` log the tracking URI only through this."""
    from videoreasoner.core.tracking import redact

    assert redact(text) == expected


def test_the_auth_config_file_never_holds_the_password(tmp_path):
    from flows.servers import auth_environment

    env = auth_environment(tmp_path, {"MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": SENTINEL},
                           tmp_path)
    config = tmp_path / "basic_auth.ini"
    assert SENTINEL not in config.read_text(encoding="utf-8")
    assert config.stat().st_mode & 0o077 == 0
    assert env["MLFLOW_AUTH_ADMIN_PASSWORD"] == SENTINEL
    with pytest.raises(SystemExit, match="MLFLOW_TRACKING_PASSWORD"):
        auth_environment(tmp_path, {"MLFLOW_TRACKING_USERNAME": "admin"}, tmp_path)


# ---------------------------------------------------------------------------------------------------
# The auth-enabled MLflow server on 127.0.0.1
# ---------------------------------------------------------------------------------------------------

HOST = "127.0.0.1"
START_TIMEOUT_S = 120  # ~30 s on two busy cores; bounded so a hung server fails the test


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


@pytest.fixture()
def auth_server(tmp_path):
    """(base URL, username, server log) of `mlflow server --app-name basic-auth` started the way
    flows/servers.py starts it, over a temporary store; the server's process group is always ended."""
    import requests

    from flows.servers import auth_environment, mlflow_server_command

    repo, config_dir = tmp_path / "repo", tmp_path / "auth"
    repo.mkdir()
    config_dir.mkdir()
    port = _free_port()
    cmd = mlflow_server_command(repo, HOST, port, config_dir)
    env = auth_environment(repo, dict(os.environ, MLFLOW_TRACKING_USERNAME="admin",
                                      MLFLOW_TRACKING_PASSWORD=SENTINEL), config_dir)
    log_path = tmp_path / "server.log"
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(cmd, cwd=repo, env=env, stdout=log_file, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        url, deadline = f"http://{HOST}:{port}", time.monotonic() + START_TIMEOUT_S
        while True:
            assert proc.poll() is None, f"server exited early:\n{log_path.read_text(errors='replace')[-3000:]}"
            try:
                if requests.get(f"{url}/health", timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, f"no answer in {START_TIMEOUT_S} s"
            time.sleep(1)
        yield url, "admin", log_path
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


@pytest.mark.slow
def test_the_auth_server_refuses_anonymous_clients(auth_server):
    import requests

    url, user, log_path = auth_server
    assert url.startswith(f"http://{HOST}:")
    api = f"{url}/api/2.0/mlflow/experiments/search?max_results=5"
    assert requests.get(api, timeout=30).status_code == 401
    assert requests.get(api, auth=(user, "wrong-password"), timeout=30).status_code == 401
    answer = requests.get(api, auth=(user, SENTINEL), timeout=30)
    assert answer.status_code == 200 and "experiments" in answer.json()
    assert SENTINEL not in log_path.read_text(errors="replace")
