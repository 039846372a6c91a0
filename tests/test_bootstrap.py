"""bootstrap: the tiny default is built and aligned on perception items; a real base is only resolved."""
import json

import pytest

from videoreasoner.core.atomic import read_jsonl
from stages.bootstrap import BootstrapRun, run
from videoreasoner.training.model_io import POINTER_FILE, load_model_and_processor, resolve
from tests.helpers_world import TINY_SIZES, VIDEO, make_workspace, trl_params


def _cfg(root, model, **kw):
    return BootstrapRun(model=model, video=VIDEO, train_file=root / "data/validated/train.jsonl",
                        video_root=root, out_dir=root / kw.pop("out", "models/base"),
                        report_path=root / "reports/bootstrap/summary.json",
                        checkpoint_dir=root / "checkpoints/bootstrap", tracking=False, **kw)


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory):
    root = make_workspace(tmp_path_factory.mktemp("ws"))
    summary = run(_cfg(root, {"base": "tiny", "tiny": TINY_SIZES, "alignment": trl_params(2)}))
    return root, summary


def test_tiny_base_is_aligned_on_perception_items_only(tiny_base):
    root, summary = tiny_base
    train = read_jsonl(root / "data/validated/train.jsonl")
    n_perception = sum(r["meta"]["kind"] == "perception" for r in train)
    assert 0 < n_perception < len(train)
    assert summary["alignment_records"] == n_perception and summary["alignment_steps"] == 2
    assert json.loads((root / "reports/bootstrap/summary.json").read_text())["base"] == "tiny"
    model, processor = load_model_and_processor(root / "models/base")
    assert type(model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    assert type(processor).__name__ == "Qwen2_5_VLProcessor"
    assert (root / "models/base/model.safetensors").is_file()


def test_a_local_path_base_is_copied_through_the_same_loader(tiny_base):
    import torch

    root, _ = tiny_base
    summary = run(_cfg(root, {"base": str(root / "models/base")}, out="models/copy"))
    assert summary["base"] == str(root / "models/base") and summary["copied"]
    a, _ = load_model_and_processor(root / "models/base")
    b, _ = load_model_and_processor(root / "models/copy")
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), name


def test_a_base_can_be_kept_as_a_pointer(tiny_base):
    root, _ = tiny_base
    run(_cfg(root, {"base": str(root / "models/base"), "copy_base": False}, out="models/pointer"))
    assert (root / "models/pointer" / POINTER_FILE).is_file()
    assert resolve(root / "models/pointer") == str(root / "models/base")
    model, _ = load_model_and_processor(root / "models/pointer")
    assert model.config.text_config.hidden_size == TINY_SIZES["hidden_size"]


def test_model_params_are_checked(tmp_path):
    with pytest.raises(ValueError, match="unknown key 'bsae'"):
        run(_cfg(tmp_path, {"bsae": "tiny"}))
    with pytest.raises(ValueError, match="model.base"):
        run(_cfg(tmp_path, {"tiny": {}}))
