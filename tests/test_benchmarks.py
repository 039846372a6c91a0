"""The benchmark scripts run and print their table (their figures are not asserted: timings belong
in benchmarks/, never in timed tests); the pipeline benchmark's parsing and overhead arithmetic; the
collator's fast assistant mask (the input-pipeline fix) gives exactly the chat template's mask."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import pipeline as bench_pipeline  # noqa: E402


def run_script(name: str, *args: str, timeout: int = 300) -> str:
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / name), *args],
                         capture_output=True, text=True, timeout=timeout, cwd=ROOT, check=False)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    return out.stdout


def table_rows(stdout: str) -> dict[str, list[str]]:
    """First cell -> the other cells of every markdown table row."""
    rows = {}
    for line in stdout.splitlines():
        if line.startswith("| ") and not line.startswith("|---"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[cells[0]] = cells[1:]
    return rows


def test_generate_validate_benchmark_prints_its_table():
    out = run_script("generate_validate.py", "--scale", "0.01")
    rows = {line.split()[0] for line in out.splitlines() if line.strip()}
    assert {"generate", "ingest", "validate", "total"} <= rows


def test_training_benchmark_prints_its_table():  # three short trainings: about 40 s on 2 busy cores
    rows = table_rows(run_script("training.py", "--smoke"))
    share = rows["input pipeline share of a step, torch.profiler"]
    assert share[1] == "≤ 5 %" and share[2] in ("PASS", "MISS")
    for what in ("SFT samples/s", "GRPO completions/s (prompts/s)", "cached frames, per clip"):
        assert what in rows


def test_evaluate_benchmark_prints_its_table():
    rows = table_rows(run_script("evaluate.py", "--smoke"))
    assert "greedy: items/s" in rows and float(rows["greedy: items/s"][0]) > 0
    assert any(k.startswith("sampled n=") for k in rows)


def test_ladder_benchmark_prints_each_rung_its_paired_gain_and_the_tasks():
    rows = table_rows(run_script("ladder.py", "--smoke", "--shuffled"))
    assert set(rows["models/m1 [video]"]) and rows["models/m1 [video]"][1] == "—"  # the first rung has no gain
    assert "[" in rows["models/m2 [video]"][1] and "models/m2 [shuffled]" in rows
    assert {"colour", "count", "when_visible", "track"} <= set(rows)  # the per-task table, one row per task


def test_ladder_task_columns_stay_apart_when_two_models_share_a_folder_name():
    from benchmarks.ladder import column_labels

    labels = column_labels(["models/sft", "/tmp/a/model", "/tmp/b/model"])
    assert labels == {"models/sft": "sft", "/tmp/a/model": "/tmp/a/model", "/tmp/b/model": "/tmp/b/model"}


def test_mc_chain_benchmark_prints_each_models_breakdown():
    rows = table_rows(run_script("mc_chain.py", "--smoke"))
    assert len(rows["models/m1"]) == 7 and " / " in rows["models/m1"][5]
    assert {"colour", "shape", "direction", "order"} & set(rows)  # the per-task table of the perception before the look-up


def test_mc_chain_tells_perception_look_up_and_copy_apart():
    from benchmarks.mc_chain import breakdown

    record = {"options": ["blue", "white", "red", "green"], "answer": "B"}

    def chain(option, letter, answer):
        return f"<think>The circle is {option}. Among the options, {option} is option {letter}.</think><answer>{answer}</answer>"

    assert breakdown(record, chain("white", "B", "B")) == {
        "correct": True, "has_step": True, "names_right_option": True, "looks_up_its_option": True,
        "answer_copies_step": True}
    seen_wrong = breakdown(record, chain("red", "C", "C"))  # perception: right look-up of the wrong colour
    assert not seen_wrong["correct"] and not seen_wrong["names_right_option"] and seen_wrong["looks_up_its_option"]
    looked_up_wrong = breakdown(record, chain("white", "D", "D"))
    assert looked_up_wrong["names_right_option"] and not looked_up_wrong["looks_up_its_option"]
    copied_wrong = breakdown(record, chain("white", "B", "A"))
    assert copied_wrong["looks_up_its_option"] and not copied_wrong["answer_copies_step"]
    no_step = breakdown(record, "<answer>B</answer>")
    assert no_step["correct"] and not no_step["has_step"] and no_step["names_right_option"] is None
    off_list = breakdown(record, chain("purple", "A", "A"))  # names no option: its look-up is not scored
    assert off_list["looks_up_its_option"] is None


def test_chain_copy_benchmark_prints_both_tables():
    out = run_script("chain_copy.py", "--smoke")
    assert "binding, direct answers:" in out and "copies in the chain of thought:" in out
    lines = [line for line in out.splitlines() if line.startswith("| models/m1 |")]
    assert len(lines) == 3  # one row per binding task, one copy row
    assert {line.split("|")[2].strip() for line in lines[:2]} == {"colour_word", "shape_word"}


def test_chain_copy_tells_a_copied_question_from_a_wrong_one():
    from benchmarks.chain_copy import copies

    asked = {"question": "Describe the motion of the red circle.", "meta": {"task": "describe_motion"}}
    assert copies(asked, "<think>The red circle appears at 1.0 s and vanishes at 5.0 s.</think>")["names_asked_object"]
    assert copies(asked, "<think>The blue square appears at 1.0 s and vanishes at 5.0 s.</think>") == {
        "names_asked_object": False, "copies_time": None, "answer_follows_step": None}
    when = {"question": "When is the red circle visible?", "meta": {"task": "when_visible"}}
    chain = "<think>The red circle appears at 1.0 s and vanishes at 5.0 s. So it is visible from 1.0 to 6.0 s.</think>"
    assert copies(when, chain + "<answer>1.0 to 6.0</answer>")["answer_follows_step"] is True
    assert copies(when, chain + "<answer>2.0 to 6.0</answer>")["answer_follows_step"] is False
    assert copies(when, "<answer>1.0 to 6.0</answer>")["answer_follows_step"] is None  # no step to follow
    at = {"question": "How many coloured shapes are visible at 5.0 s? Ignore grey dots.", "meta": {"task": "count_at_time"}}
    assert copies(at, "<think>At 5.0 s the frame shows the red circle. That makes 1.</think>")["copies_time"] is True
    assert copies(at, "<think>At 2.0 s the frame shows no coloured shape. That makes 0.</think>")["copies_time"] is False


def test_chain_copy_counts_the_other_shapes_colour_as_a_binding_error():
    from types import SimpleNamespace

    from benchmarks.chain_copy import binding

    scene = SimpleNamespace(objects=[SimpleNamespace(colour="red", shape="circle"),
                                     SimpleNamespace(colour="blue", shape="square")])
    record = {"answer": "red", "meta": {"task": "colour_word"}}
    assert binding(record, "<answer>red</answer>", scene) == {"correct": True, "names_other_object": None}
    assert binding(record, "<answer>blue</answer>", scene) == {"correct": False, "names_other_object": True}
    assert binding(record, "<answer>green</answer>", scene) == {"correct": False, "names_other_object": False}
    shape = {"answer": "square", "meta": {"task": "shape_word"}}
    assert binding(shape, "<answer>circle</answer>", scene)["names_other_object"] is True


def test_copy_warmup_benchmark_prints_both_models():
    rows = table_rows(run_script("copy_warmup.py", "--smoke"))
    assert {"sft from the base", "sft after the induction warm-up"} <= set(rows)
    assert rows["sft from the base"][2] == "—"  # the control has no rung before it
    assert rows["sft after the induction warm-up"][2].startswith(("+", "-"))


def test_binding_benchmark_prints_both_directions_and_every_head():
    out = run_script("binding.py", "--smoke")
    lines = [[c.strip() for c in line.strip("|").split("|")] for line in out.splitlines()
             if line.startswith("| models/")]
    directions = [cells[1] for cells in lines if len(cells) == 4 and cells[1].startswith(("colour of", "shape of"))]
    assert directions == ["colour of the named shape", "shape of the named colour"]
    tiny = yaml.safe_load((ROOT / "params.yaml").read_text())["model"]["tiny"]
    heads = [cells[1] for cells in lines if cells[1][0].isdigit()]
    assert heads == [f"{layer}.{head}" for layer in range(tiny["num_hidden_layers"])
                     for head in range(tiny["num_attention_heads"])]


def test_binding_masks_split_the_named_shape_from_the_others():
    """The named shape's tokens are those its pixels cover in the frames, the others' likewise: a mask
    built from the wrong object or time would cover other tokens."""
    import numpy as np

    from benchmarks.binding import named_mask
    from videoreasoner.core.params import load_params
    from videoreasoner.data.world.config import WorldConfig
    from videoreasoner.data.world.streams import scene_for
    from videoreasoner.training.dense_targets import COLOUR_CLASSES, token_targets

    world = WorldConfig.from_params(load_params(ROOT / "params.yaml")["data"]["synthetic"])
    index = next(i for i in range(50) if len(scene_for(world, "val", i)[0].objects) == 2)
    scene = scene_for(world, "val", index)[0]
    a, b = scene.objects
    times, grid = (1.0, 3.0, 5.0, 7.0), (2, 8, 8)
    colour, _ = token_targets(scene, times, grid)
    named, other = named_mask(scene, {"answer": a.colour}, times, grid)
    assert named.any() and other.any()
    shows_a, shows_b = (colour[:, COLOUR_CLASSES.index(o.colour)] > 0 for o in (a, b))
    # as drawn, with the later shape on top: a token where one shape hides the other lacks its colour
    assert (named >= shows_a).all() and (other >= shows_b).all()
    assert shows_b[named & ~shows_a].all() and shows_a[other & ~shows_b].all()
    flipped = named_mask(scene, {"answer": b.shape}, times, grid)
    np.testing.assert_array_equal(flipped[0], other)


def test_induction_batch_scores_only_words_that_copy_an_earlier_segment():
    import random

    from benchmarks.copy_warmup import induction_batch

    ids, attention, loss_mask = induction_batch(random.Random(3), list(range(100, 140)), 64)
    for row, mask, marks in zip(ids.tolist(), attention.tolist(), loss_mask.tolist()):
        length = sum(mask)
        assert mask == [1] * length + [0] * (len(row) - length)
        scored = [t for t, m in enumerate(marks) if m]
        # the scored positions predict the second copy's 2nd… last word: a contiguous run ending the row
        assert scored == list(range(scored[0], length - 1)) and len(scored) >= 3
        copy = row[scored[0]:length]  # the second copy, its first word included
        earlier = row[:scored[0]]
        assert any(earlier[i:i + len(copy)] == copy for i in range(len(earlier) - len(copy) + 1))


def test_naming_items_pair_the_asked_shape_with_the_other_one(monkeypatch):
    from types import SimpleNamespace

    from benchmarks import copy_warmup

    scenes = {"two": [("red", "circle"), ("blue", "square")], "one": [("red", "circle")]}
    monkeypatch.setattr(copy_warmup, "scene_of", lambda record, world: SimpleNamespace(objects=[
        SimpleNamespace(colour=c, shape=s) for c, s in scenes[record["clip"]]]))

    def record(clip, task, question, kind="reasoning"):
        return {"clip": clip, "question": question, "meta": {"kind": kind, "task": task}}

    records = [record("one", "when_visible", "When is the red circle visible?"),
               record("two", "count", "How many coloured shapes appear in the video?"),
               record("two", "when_visible", "When is the red circle visible?", kind="perception"),
               record("two", "appear_time", "At what time, in seconds, does the blue square first appear?"),
               record("two", "when_visible", "When is the red circle visible?")]
    items = copy_warmup.naming_items(records, None, limit=10)
    assert [(r["meta"]["task"], asked, other) for r, asked, other in items] == [
        ("appear_time", "blue square", "red circle"), ("when_visible", "red circle", "blue square")]
    assert len(copy_warmup.naming_items(records, None, limit=1)) == 1


def test_naming_preference_compares_the_steps_without_the_end_token():
    from types import SimpleNamespace

    from benchmarks.copy_warmup import naming_preference

    class Engine:  # log-probabilities by completion; the last one is the end token the step never has
        scores = {"<think>The red circle appears": (-1.0, -1.0, -9.0), "<think>The blue square appears": (-1.5, -1.0, 0.0)}

        def loglik(self, records, completions):
            return [SimpleNamespace(token_logprobs=self.scores[c]) for c in completions]

    item = ({}, "red circle", "blue square")
    assert naming_preference(Engine(), [item]) == 1.0  # -2.0 against -2.5: the end token would flip it
    assert naming_preference(Engine(), [({}, "blue square", "red circle")]) == 0.0
    assert naming_preference(Engine(), []) is None


@pytest.mark.slow  # two flow runs, each starting Prefect's temporary server
def test_pipeline_benchmark_prints_its_tables():
    out = run_script("pipeline.py", "--until", "ingest", "--no-register",
                     "--set", "data.synthetic.videos={train: 2, val: 1, test: 1}", timeout=600)
    rows = table_rows(out)
    assert rows["generate"][0].endswith(" s") and rows["ingest"][1].endswith(" s")
    assert rows["up-to-date `dvc repro` (0 stages re-ran)"][1] == "≤ 5.0 s"
    assert "up-to-date flow re-run (0 stages re-ran)" in rows


# ---- the pipeline benchmark's pieces -------------------------------------------------------------------
PREFECT_LOG = """\
23:59:58.100 | INFO    | Flow run 'x' - stages in DAG order: generate -> ingest
23:59:58.500 | INFO    | Task run 'dvc repro generate' - $ dvc repro --single-item generate
23:59:59.000 | INFO    | Task run 'dvc repro generate' - [generate] Running stage 'generate':
00:00:01.500 | INFO    | Task run 'dvc repro generate' - Finished in state Completed()
00:00:02.000 | INFO    | Task run 'dvc repro ingest' - $ dvc repro --single-item ingest
00:00:03.250 | INFO    | Task run 'dvc repro ingest' - Finished in state Completed()
00:00:03.300 | INFO    | Task run 'register and promote' - Finished in state Completed()
"""


def test_task_spans_read_the_flow_log_across_midnight():
    spans = bench_pipeline.task_spans(PREFECT_LOG)
    assert spans == pytest.approx({"generate": 3.0, "ingest": 1.25})


def test_overheads_split_dvc_from_the_rest():
    o = bench_pipeline.overheads(100.0, {"a": 50.0, "b": 30.0}, {"a": 55.0, "b": 33.0})
    assert o["commands_s"] == 80.0 and o["overhead"] == pytest.approx(0.2)
    assert o["dvc_s"] == pytest.approx(8.0) and o["rest_s"] == pytest.approx(12.0)


def test_instrumented_dvc_yaml_times_each_kept_stage(tmp_path):
    shutil.copy(ROOT / "dvc.yaml", tmp_path / "dvc.yaml")
    kept = bench_pipeline.instrument(tmp_path, "ingest", Path(".bench/t.jsonl"))
    spec = yaml.safe_load((tmp_path / "dvc.yaml").read_text())
    assert kept == list(spec["stages"]) == ["generate", "ingest"]
    assert spec["stages"]["generate"]["cmd"] == (
        "python benchmarks/pipeline.py --time-stage .bench/t.jsonl generate -- python -m stages.generate")


def test_stage_timer_records_seconds_and_passes_the_exit_code(tmp_path):
    log = tmp_path / "t.jsonl"
    wrapper = [sys.executable, str(ROOT / "benchmarks/pipeline.py"), "--time-stage", str(log), "s", "--"]
    assert subprocess.run([*wrapper, sys.executable, "-c", "raise SystemExit(3)"], check=False).returncode == 3
    entry = json.loads(log.read_text())
    assert entry["stage"] == "s" and entry["rc"] == 3 and entry["seconds"] > 0
    assert bench_pipeline.stage_seconds(log) == {"s": entry["seconds"]}


def test_set_params_overrides_dotted_keys(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("sft: {max_steps: 120}\ndata: {synthetic: {videos: {train: 1000}}}\n")
    bench_pipeline.set_params(path, bench_pipeline.parse_set(["sft.max_steps=2", "data.synthetic.videos={train: 6}"]))
    expected = {"sft": {"max_steps": 2}, "data": {"synthetic": {"videos": {"train": 6}}}}
    assert yaml.safe_load(path.read_text()) == expected
    with pytest.raises(KeyError, match="nosuch"):
        bench_pipeline.set_params(path, {"nosuch.key": 1})


# ---- the input-pipeline fix ----------------------------------------------------------------------------
def test_fast_assistant_mask_equals_the_chat_templates_mask(tmp_path):
    """Every train row (reasoning and perception items) of a small world: the token-id mask is found
    and is the template's `{% generation %}` mask; the collator takes it after its one check."""
    import torch

    from videoreasoner.core.atomic import read_jsonl
    from videoreasoner.training.sft_trainer import training_chat_template
    from videoreasoner.training.sft_data import ChatMLAssistantMask, VideoSFTCollator, to_dataset
    from videoreasoner.training.tiny_model import TinyConfig, build_tiny
    from videoreasoner.video.config import VideoConfig
    from videoreasoner.video.inputs import processor_inputs
    from tests.helpers_world import TINY_SIZES, VIDEO, make_workspace

    root = make_workspace(tmp_path, videos={"train": 1})
    records = read_jsonl(root / "data/validated/train.jsonl")
    video = VideoConfig.from_params(VIDEO)
    _, processor = build_tiny(TinyConfig.from_params(TINY_SIZES), records, video)
    template = training_chat_template(processor)
    collator = VideoSFTCollator(processor, video, chat_template=template)
    rows = list(to_dataset(records, root))
    fast = ChatMLAssistantMask(processor.tokenizer)
    for start in range(0, len(rows), 4):
        chunk = rows[start:start + 4]
        convs = [r["messages"] for r in chunk]
        videos = [collator.video(c[0]["content"][0]["video"]) for c in convs]
        batch = processor_inputs(processor, convs, videos, video, assistant_mask=True, chat_template=template)
        mask = fast(batch["input_ids"], batch["attention_mask"], convs)
        assert mask is not None and torch.equal(mask, batch["assistant_masks"])
        labels = collator(chunk)["labels"]
        assert torch.equal(labels != -100, batch["assistant_masks"].bool())
    assert collator._fast_checked and collator._fast_misses == 0


def test_decoding_benchmark_prints_the_project_and_qwen_vl_utils_side_by_side():
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in run_script("decoding.py", "--smoke").splitlines()
            if line.startswith("| ") and not line.startswith("| clip")]
    assert [r[1] for r in rows] == ["project (cold)", "project (probed)", "qwen-vl-utils (decord)"]
    assert rows[0][2] == rows[1][2] == "4" and float(rows[1][4]) > 0  # the frames asked for, frames/s
    qwen = rows[2]
    assert qwen[2] == "4" or "not installed" in qwen[5]  # measured, or says why not
