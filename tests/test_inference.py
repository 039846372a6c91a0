"""Inference engine on a randomly initialised tiny Qwen2.5-VL and a 3-video world: shapes, determinism,
log-probabilities, frame budgets and the video-blind control transforms."""
import math

import numpy as np
import pytest

from videoreasoner.core.atomic import read_jsonl
from videoreasoner.inference.controls import blank_frames, shuffled_frames
from videoreasoner.inference.engines import Decoding, FrameSource, Generation, load_engine
from videoreasoner.video.config import VideoConfig
from tests.helpers_world import TINY_SIZES, VIDEO, make_workspace


def build_tiny_workspace(root):
    """A 3-video world (train, val, test) and a random tiny model saved in root/models/base."""
    from videoreasoner.training.model_io import save_model_and_processor
    from videoreasoner.training.tiny_model import TinyConfig, build_tiny

    make_workspace(root, videos={"train": 1, "val": 1, "test": 1})
    model, processor = build_tiny(TinyConfig.from_params(TINY_SIZES), read_jsonl(root / "data/validated/train.jsonl"),
                                  VideoConfig.from_params(VIDEO))
    save_model_and_processor(model, processor, root / "models/base")
    return root


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    return build_tiny_workspace(tmp_path_factory.mktemp("inference"))


@pytest.fixture(scope="module")
def engine(workspace):
    return load_engine(workspace / "models/base", VideoConfig.from_params(VIDEO), workspace, batch_size=8,
                       progress=False, torch_threads=1)


@pytest.fixture(scope="module")
def records(workspace):
    return read_jsonl(workspace / "data/validated/test.jsonl")[:4]


def test_engine_returns_texts_and_token_logprobs(engine, records):
    out = engine.generate(records, n=3, decoding=Decoding(max_new_tokens=6, do_sample=True), frames=2)
    assert len(out) == len(records) and all(len(gens) == 3 for gens in out)
    for gen in (g for gens in out for g in gens):
        assert isinstance(gen.text, str) and 1 <= gen.n_tokens <= 6
        assert all(lp <= 1e-6 and math.isfinite(lp) for lp in gen.token_logprobs)
        assert gen.mean_logprob == pytest.approx(np.mean(gen.token_logprobs))


def test_greedy_is_deterministic_and_batch_independent(engine, records):
    greedy = Decoding(max_new_tokens=8)
    first = engine.generate(records, decoding=greedy)
    again = engine.generate(records[::-1], decoding=greedy)[::-1]
    assert [g[0].text for g in first] == [g[0].text for g in again]
    for a, b in zip(first, again):
        assert np.allclose(a[0].token_logprobs, b[0].token_logprobs, atol=1e-4)
    with pytest.raises(ValueError, match="greedy"):
        engine.generate(records, n=2, decoding=greedy)


def test_loglik_scores_the_completion_and_its_end_token(engine, records):
    text = "<think>red</think><answer>B</answer>"
    (scored,) = engine.loglik(records[:1], [text])
    n_text = len(engine.processor.tokenizer(text, add_special_tokens=False)["input_ids"])
    assert scored.n_tokens == n_text + 1 and scored.mean_logprob < 0
    # the same completion has the same score in a batch with others (padding does not leak)
    batch = engine.loglik(records[:3], [text, "<answer>A</answer>", text])
    assert batch[0].token_logprobs == pytest.approx(scored.token_logprobs, abs=1e-4)
    assert batch[2].n_tokens == scored.n_tokens


def test_frame_budgets_and_cache(workspace, records):
    source = FrameSource(VideoConfig.from_params(VIDEO), workspace)
    assert len(source.get(records[0]).frames) == VIDEO["max_frames"]
    assert len(source.get(records[0], 2).frames) == 2 and len(source.get(records[0], 8).frames) == 8
    assert source.get(records[0], 2) is source.get(records[1], 2)  # same video: decoded once
    with pytest.raises(ValueError, match="temporal patch"):
        source.get(records[0], 1)


def test_controls_change_the_pixels_given_to_the_model(engine, records):
    def pixels(eng):
        return eng._encode(records[:2], None)["pixel_values_videos"]

    source = engine.frames
    clip = source.get(records[0])
    blank = source.with_transform(blank_frames).get(records[0])
    shuffled = source.with_transform(shuffled_frames(0)).get(records[0])
    assert not blank.frames.any() and clip.frames.any() and blank.timestamps == clip.timestamps
    assert not np.array_equal(shuffled.frames, clip.frames)
    assert sorted(f.tobytes() for f in shuffled.frames) == sorted(f.tobytes() for f in clip.frames)
    base = pixels(engine)
    for transform in (blank_frames, shuffled_frames(0)):
        other = pixels(engine.with_frames(source.with_transform(transform)))
        assert other.shape == base.shape and not np.allclose(other.numpy(), base.numpy())


def test_decoding_params_and_backends_are_checked(workspace):
    with pytest.raises(ValueError, match="unknown key 'temp'"):
        Decoding.from_params({"temp": 1.0})
    with pytest.raises(ValueError, match="unknown"):
        load_engine(workspace / "models/base", VideoConfig.from_params(VIDEO), backend="onnx")
    try:
        import vllm  # noqa: F401
    except ImportError:
        with pytest.raises(RuntimeError, match="vllm is not installed"):
            load_engine(workspace / "models/base", {"video": VIDEO, "eval": {"backend": "vllm"}})
    assert Generation("x").mean_logprob == -math.inf


def test_engine_checks_every_forward_for_its_video(engine, records):
    """Generation's prefill carries the video (checked); the cached decoding steps carry none (passed)."""
    from videoreasoner.video.invariant import video_invariant

    hook = video_invariant(engine.model)
    assert hook is not None
    before = (hook.forwards, hook.with_vision)
    engine.generate(records[:2], decoding=Decoding(max_new_tokens=4))
    engine.loglik(records[:1], ["<answer>A</answer>"])
    assert hook.with_vision - before[1] == 2  # one prefill + one teacher-forced forward
    assert hook.forwards - before[0] > 2  # plus the decoding steps


@pytest.fixture()
def video_dropped(monkeypatch):
    """Every batch the engine encodes loses its pixels (a bug somewhere between processor and model)."""
    from videoreasoner.inference import engines as inference

    encode = inference.processor_inputs

    def without_pixels(*args, **kwargs):
        batch = encode(*args, **kwargs)
        del batch["pixel_values_videos"]
        return batch
    monkeypatch.setattr(inference, "processor_inputs", without_pixels)
    monkeypatch.setattr(inference, "repeat_rows", lambda batch, n, device: dict(batch))


def test_scoring_without_the_video_raises(engine, records, video_dropped, tmp_path):
    from stages.evaluate import evaluate_model, settings
    from videoreasoner.inference.tts_strategies import greedy
    from videoreasoner.video.invariant import VideoInputError

    with pytest.raises(VideoInputError, match="but no pixel_values_videos"):
        engine.loglik(records[:1], ["<answer>A</answer>"])
    with pytest.raises(VideoInputError, match="but no pixel_values_videos"):
        engine.generate(records[:1], decoding=Decoding(max_new_tokens=2))
    ev = settings({"controls": [], "n_boot": 10})
    with pytest.raises(VideoInputError, match="but no pixel_values_videos"):
        evaluate_model("base", engine, lambda eng, recs: greedy(eng, recs, decoding=Decoding(max_new_tokens=2)),
                       records[:1], ev, tmp_path)


def test_a_prompt_without_its_video_is_named(engine, records, monkeypatch):
    from videoreasoner.inference import engines as inference
    from videoreasoner.video.invariant import VideoInputError

    def no_video_block(record, video=None, with_target=True):  # a prompt built without the video
        return [{"role": "user", "content": [{"type": "text", "text": "what happens?"}]}]
    monkeypatch.setattr(inference, "build_messages", no_video_block)
    with pytest.raises(VideoInputError, match=f"inference batch: 1 of 1 rows .*{records[0]['id']}"):
        engine.generate(records[:1], decoding=Decoding(max_new_tokens=2))


def test_engines_built_around_any_model_check_it(workspace):
    from videoreasoner.inference.engines import HFEngine
    from videoreasoner.training.model_io import load_model_and_processor
    from videoreasoner.video.invariant import remove_video_invariant, video_invariant

    model, processor = load_model_and_processor(workspace / "models/base")
    remove_video_invariant(model)
    assert video_invariant(model) is None
    HFEngine(model, processor, FrameSource(VideoConfig.from_params(VIDEO), workspace), progress=False)
    assert video_invariant(model) is not None
