"""The pyfunc wrapper: load_context hands model dir, policy and settings to the predictor factory, and
`load_model("models:/<name>@champion").predict` answers requests given as a DataFrame, a dict or a list.
A stub predictor stands in for the inference engine (the production path imports videoreasoner.inference.engines)."""
import json
from pathlib import Path

import pytest

from flows import aliases, registration, registry_tracking
from flows.gates import Rules
from flows.pyfunc_model import allowed_roots, to_records

SEEN = []
ROOT_DIR = Path(__file__).resolve().parents[1]


def stub_factory(model_dir, policy, settings):
    def predict(record, video_path):
        SEEN.append((record, video_path))
        assert (__import__("pathlib").Path(model_dir) / "config.json").is_file()
        return f"<think>fps {settings['video']['fps']}</think><answer>{policy['answer']}</answer>"
    return predict


@pytest.fixture()
def video(tmp_path):
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"not decoded by the stub")
    return path


def test_to_records_validates_requests(video):
    roots = [video.parent]
    rows = to_records({"video": str(video), "question": "q?", "problem_type": "multiple_choice",
                       "options": ["red", "blue"]}, roots)
    assert rows == [{"id": "request-0", "video": str(video), "question": "q?",
                     "problem_type": "multiple_choice", "options": ["red", "blue"]}]
    assert to_records([{"video": str(video), "question": "q?"}], roots)[0]["problem_type"] == "free_form"
    with pytest.raises(ValueError, match="'question'"):
        to_records({"video": str(video)}, roots)
    with pytest.raises(ValueError, match="needs 'options'"):
        to_records({"video": str(video), "question": "q", "problem_type": "multiple_choice"}, roots)
    with pytest.raises(ValueError, match="field 'video': cannot open 'missing.mp4'"):
        to_records({"video": "missing.mp4", "question": "q"}, roots)


def test_video_paths_are_confined_with_one_generic_error(tmp_path, monkeypatch):
    """Issue: the served model opened any local path, and its error told a missing file ("no such file")
    from an existing one. Outside the roots, missing, a directory, a symlink out: the same error."""
    root = tmp_path / "videos"
    (root / "sub").mkdir(parents=True)
    (root / "sub/ok.mp4").write_bytes(b"inside")
    secret = tmp_path / "secret.mp4"
    secret.write_bytes(b"outside")
    (root / "link.mp4").symlink_to(secret)
    refused = {"climbs out": str(root / "../secret.mp4"), "absolute outside": str(secret),
               "relative climb": "../secret.mp4", "missing": str(root / "nope.mp4"), "directory": str(root / "sub"),
               "symlink out": str(root / "link.mp4"), "nul byte": str(root / "ok\0.mp4"), "etc": "/etc/passwd"}
    monkeypatch.chdir(root)
    errors = {}
    for kind, path in refused.items():
        with pytest.raises(ValueError) as exc_info:
            to_records({"video": path, "question": "q"}, [root])
        errors[kind] = str(exc_info.value).replace(repr(path), "<video>")
    assert set(errors.values()) == {"request 0: field 'video': cannot open <video> (not a file under the "
                                    "allowed video roots)"}, errors
    assert to_records({"video": "sub/ok.mp4", "question": "q"}, [root])[0]["video"] == str(root / "sub/ok.mp4")
    assert to_records({"video": "sub/ok.mp4", "question": "q"})[0]["video"] == str(root / "sub/ok.mp4")  # cwd


def test_allowed_roots_from_model_config_else_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert allowed_roots() == allowed_roots({"video_roots": None}) == [tmp_path]
    assert allowed_roots({"video_roots": ["/srv/a", "/srv/b"]}) == [Path("/srv/a"), Path("/srv/b")]
    assert allowed_roots({"video_roots": "rel"}) == [tmp_path / "rel"]
    with pytest.raises(KeyError, match="video_root"):
        allowed_roots({"video_root": "/data/v"})


def test_champion_pyfunc_answers_a_question(tmp_path, monkeypatch, video):
    import mlflow.pyfunc

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    registry_tracking.tracking_setup(tmp_path)
    (tmp_path / "rl").mkdir()
    (tmp_path / "rl/config.json").write_text("{}")
    (tmp_path / "policy.json").write_text(json.dumps({"answer": "B"}))
    rules = Rules("pyfunc-model")
    version = registration.register(rules, tmp_path / "rl", tmp_path / "policy.json", {"mc_accuracy": 0.5},
                                settings={"video": {"fps": 2.0}}, predictor_factory=stub_factory)
    aliases.promote(rules, version)

    model = mlflow.pyfunc.load_model("models:/pyfunc-model@champion", model_config={"video_roots": [str(tmp_path)]})
    out = model.predict({"video": str(video), "question": "Which colour?", "problem_type": "multiple_choice",
                         "options": ["red", "blue"]})
    assert [row["text"] for row in out] == ["<think>fps 2.0</think><answer>B</answer>"]
    assert out[0]["answer"] == "B" and out[0]["id"] == "request-0" and out[0]["frame_times"] is None
    assert SEEN[-1][0]["options"] == ["red", "blue"] and SEEN[-1][1] == str(video)
    import pandas as pd

    frame = pd.DataFrame([{"video": str(video), "question": "How many?", "problem_type": "numerical"}] * 2)
    assert len(model.predict(frame)) == 2
    outside = tmp_path.parent / f"{tmp_path.name}-outside.mp4"
    outside.write_bytes(b"a real file outside the served roots")
    with pytest.raises(Exception, match="cannot open") as exc_info:
        model.predict({"video": str(outside), "question": "Which colour?"})
    assert "not a file under the allowed video roots" in str(exc_info.value)
    # a serving deployment's roots, through MLflow's own override of the logged model config
    monkeypatch.setenv("MLFLOW_PYFUNC_INFERENCE_CONFIG", json.dumps({"video_roots": [str(tmp_path.parent)]}))
    assert len(mlflow.pyfunc.load_model("models:/pyfunc-model@champion").predict(
        {"video": str(outside), "question": "Which colour?"})) == 1


def test_a_version_registered_before_the_library_moved_still_loads_and_answers(tmp_path, video):
    """Registered versions must outlive refactors. tests/fixtures/pyfunc_v0 holds the MLmodel, pickle and
    artifacts of a version registered by the code of commit 8649436 (before the library moved from
    stages/ to videoreasoner/ and flows/registry.py was split), with the factory of
    tests/fixtures/pyfunc_stub.py instead of a model. Its python_model.pkl names
    flows.pyfunc_model.VideoReasonerModel by module path and holds the wrapper's attributes: moving or
    renaming that class, or the attributes load_context reads, would leave every registered version
    unloadable. Today's code loads it and answers one request."""
    import shutil

    import mlflow.pyfunc

    from flows.pyfunc_model import VideoReasonerModel

    copy = shutil.copytree(ROOT_DIR / "tests/fixtures/pyfunc_v0", tmp_path / "pyfunc_v0")  # loading may write
    model = mlflow.pyfunc.load_model(str(copy), model_config={"video_roots": [str(video.parent)]})
    assert isinstance(model.unwrap_python_model(), VideoReasonerModel)
    out = model.predict({"video": str(video), "question": "Which colour?", "problem_type": "multiple_choice",
                         "options": ["red", "blue"]})
    assert [row["text"] for row in out] == ["<think>multiple_choice at 2.0 fps</think><answer>B</answer>"]
    assert out[0]["answer"] == "B" and out[0]["latency_s"] >= 0  # an old predictor's text gets today's fields


@pytest.mark.slow
def test_production_path_answers_with_a_tiny_model(tmp_path, monkeypatch):
    """No stub: the pyfunc loads a random tiny Qwen2.5-VL through videoreasoner.inference.engines and answers with
    videoreasoner.inference.tts_strategies.answer_with_policy about a generated video (code shipped with the model)."""
    import mlflow.artifacts
    import mlflow.pyfunc

    from videoreasoner.core.atomic import read_jsonl
    from videoreasoner.training.model_io import save_model_and_processor
    from videoreasoner.training.tiny_model import TinyConfig, build_tiny
    from videoreasoner.video.config import VideoConfig
    from tests.helpers_world import TINY_SIZES, VIDEO, make_workspace

    root = ROOT_DIR
    make_workspace(tmp_path, videos={"train": 1, "val": 1, "test": 1})
    model, processor = build_tiny(TinyConfig.from_params(TINY_SIZES), read_jsonl(tmp_path / "data/validated/train.jsonl"),
                                  VideoConfig.from_params(VIDEO))
    save_model_and_processor(model, processor, tmp_path / "models/rl")
    (tmp_path / "policy.json").write_text(json.dumps({"strategy": "greedy", "sampler": "fps",
                                                      "decoding": {"max_new_tokens": 8}}))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    registry_tracking.tracking_setup(tmp_path)
    rules = Rules("tiny-video-reasoner")
    settings = {"video": VIDEO, "compute": {"dtype": "float32"}, "eval": {"batch_size": 1, "torch_threads": 1}}
    version = registration.register(rules, tmp_path / "models/rl", tmp_path / "policy.json", {"mc_accuracy": 0.0},
                                    settings=settings,
                                    code_paths=[str(root / folder) for folder in registration.SHIPPED_CODE])
    aliases.promote(rules, version)
    shipped = Path(mlflow.artifacts.download_artifacts(f"models:/{rules.model_name}/{version}")) / "code"
    assert (shipped / "videoreasoner/inference/engines.py").is_file()  # what the predictor imports at load

    record = next(r for r in read_jsonl(tmp_path / "data/validated/test.jsonl") if r["problem_type"] == "multiple_choice")
    pyfunc = mlflow.pyfunc.load_model(f"models:/{rules.model_name}@champion", model_config={"video_roots": [str(tmp_path)]})
    answers = pyfunc.predict({"video": str(tmp_path / record["video"]), "question": record["question"],
                              "problem_type": "multiple_choice", "options": record["options"]})
    assert len(answers) == 1 and set(answers[0]) == {"id", "problem_type", "answer", "text", "frame_times", "latency_s"}
    # the frames the policy's sampler chose (fps), not params video's (uniform)
    from videoreasoner.inference.engines import FrameSource

    def times(sampler):
        source = FrameSource(VideoConfig.from_params({**VIDEO, "sampler": sampler}), tmp_path)
        return [round(t, 4) for t in source.get(record).timestamps]
    assert answers[0]["frame_times"] == times("fps") != times("uniform")
    assert answers[0]["latency_s"] > 0 and isinstance(answers[0]["text"], str)
