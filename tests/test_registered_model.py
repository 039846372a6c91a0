"""A registered tiny model asked from the outside: `vr predict`, `vr evaluate --model` and
`mlflow models serve` (env manager local) on 127.0.0.1, one request by base64 and one bad request.

One module-wide workspace: a 3-clip world, a random tiny Qwen2.5-VL registered with the code it ships
(flows/registration.py SHIPPED_CODE) as `champion` in the workspace's own sqlite store, and a
params.yaml with a small `eval` section. Nothing is trained."""
import base64
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.helpers_ranks import free_port
from tests.helpers_world import TINY_SIZES, VIDEO, make_workspace
from videoreasoner.core.atomic import read_jsonl

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
NAME = "tiny-video-reasoner"
URI = f"models:/{NAME}@champion"
FIELDS = {"id", "problem_type", "answer", "text", "frame_times", "latency_s"}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    import mlflow

    from flows import aliases, registration, registry_tracking
    from flows.gates import Rules
    from videoreasoner.training.model_io import save_model_and_processor
    from videoreasoner.training.tiny_model import TinyConfig, build_tiny
    from videoreasoner.video.config import VideoConfig

    root = make_workspace(tmp_path_factory.mktemp("registered"), videos={"train": 1, "val": 1, "test": 1})
    model, processor = build_tiny(TinyConfig.from_params(TINY_SIZES), read_jsonl(root / "data/validated/train.jsonl"),
                                  VideoConfig.from_params(VIDEO))
    save_model_and_processor(model, processor, root / "models/rl")
    (root / "policy.json").write_text(json.dumps({"strategy": "greedy", "decoding": {"max_new_tokens": 6}}))
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["video"] = {**params["video"], **VIDEO}
    params["eval"].update(max_items_per_type=1, decoding={"max_new_tokens": 6}, controls=[], protocols=["strict"],
                          n_boot=50, batch_size=4, torch_threads=1)
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    saved = os.environ.pop("MLFLOW_TRACKING_URI", None)
    old_cwd = os.getcwd()
    os.chdir(root)  # the workspace's own store, as a user's checkout has it
    try:
        registry_tracking.tracking_setup(root)
        settings = {"video": VIDEO, "compute": {"dtype": "float32"}, "eval": {"batch_size": 1, "torch_threads": 1}}
        version = registration.register(Rules(NAME), root / "models/rl", root / "policy.json", {"mc_accuracy": 0.0},
                                        settings=settings,
                                        code_paths=[str(ROOT / folder) for folder in registration.SHIPPED_CODE])
        aliases.promote(Rules(NAME), version)
        yield root
    finally:
        os.chdir(old_cwd)
        mlflow.set_tracking_uri(None)
        if saved is not None:
            os.environ["MLFLOW_TRACKING_URI"] = saved


def mc_record(root: Path) -> dict:
    return next(r for r in read_jsonl(root / "data/validated/test.jsonl") if r["problem_type"] == "multiple_choice")


def test_vr_predict_prints_the_answer_fields(workspace, capsys):
    from flows.predict import main

    record = mc_record(workspace)
    video = str(workspace / record["video"])
    assert main([video, record["question"], "--options", *record["options"], "--model", URI, "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert set(row) == FIELDS and row["problem_type"] == "multiple_choice" and len(row["frame_times"]) == 4
    assert main([video, record["question"], "--options", *record["options"], "--model", "models/rl"]) == 0
    shown = capsys.readouterr().out  # a bare checkpoint, greedy, as text
    assert [line.split(":")[0] for line in shown.splitlines()] == ["answer", "text", "frame times", "latency"]
    assert main([video, "q", "--type", "multiple_choice", "--model", URI]) == 2  # no options: a bad request
    assert "needs 'options'" in capsys.readouterr().err
    assert main([video, "q", "--model", "models/none"]) == 2
    assert "not a registry URI" in capsys.readouterr().err


def test_vr_predict_shows_one_field_a_line_whatever_the_model_wrote():
    from flows.predict import show

    row = {"answer": None, "text": "<think>a\nb\r\tc</think> é", "frame_times": [1.0, 3.0], "latency_s": 0.5}
    shown = show(row)
    assert [line.split(":")[0] for line in shown.splitlines()] == ["answer", "text", "frame times", "latency"]
    assert "<think>a\\nb\\r\\tc</think> é" in shown


def test_vr_evaluate_scores_a_registered_model_on_the_chosen_sources(workspace):
    from flows.evaluate_model import main

    assert main(["--model", URI, "--out", "eval-champion"]) == 0
    metrics = json.loads((workspace / "eval-champion/metrics.json").read_text())
    assert list(metrics["models"]) == ["rl", "rl_tts"] and metrics["settings"]["models"]["rl_tts"]["uri"] == URI
    assert set(metrics["models"]["rl"]["by_source"]) == {r["source"] for r in read_jsonl(workspace / "eval-champion/items.jsonl")}
    assert "mc_accuracy" in metrics["models"]["rl_tts"]  # the flat names the registry gates read
    assert not (workspace / "reports/eval").exists()  # the pipeline's outputs are left alone
    assert main(["--model", "models:/no-such-model@champion", "--out", "eval-none"]) == 1


def post(port: int, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_mlflow_models_serve_answers_a_base64_video_and_explains_a_bad_request(workspace):
    port, log = free_port(), workspace / "serve.log"  # a file, not a pipe: a full pipe would block the server
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{workspace / 'mlflow/mlflow.db'}",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",  # mlflow runs `uvicorn`
           "MLFLOW_PYFUNC_INFERENCE_CONFIG": json.dumps({"video_roots": [str(workspace)]})}
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve", "-m", URI, "--env-manager", "local",
                               "-h", "127.0.0.1", "-p", str(port), "-w", "1"], cwd=workspace, env=env,
                              stdout=subprocess.DEVNULL, stderr=log.open("wb"), start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while True:
            assert server.poll() is None, log.read_text(errors="replace")[-3000:]
            with contextlib.suppress(OSError):
                if urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2).status == 200:
                    break
            assert time.monotonic() < deadline, "the server did not come up in 180 s"
            time.sleep(1)
        record = mc_record(workspace)
        clip = base64.b64encode((workspace / record["video"]).read_bytes()).decode()
        status, body = post(port, {"dataframe_records": [{"video_b64": clip, "question": record["question"],
                                                          "problem_type": "multiple_choice",
                                                          "options": record["options"]}]})
        assert status == 200, body
        (row,) = body["predictions"]
        assert set(row) == FIELDS and len(row["frame_times"]) == 4 and isinstance(row["text"], str)
        status, body = post(port, {"dataframe_records": [{"video": "/etc/passwd", "question": "q"}]})
        assert status == 400 and "request 0: field 'video': cannot open '/etc/passwd'" in body["message"], body
    finally:
        with contextlib.suppress(ProcessLookupError):  # mlflow execs uvicorn in a child: stop the whole group
            os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
