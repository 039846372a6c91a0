"""A predictor factory with no model, for pyfunc tests. tests/fixtures/pyfunc_v0/python_model.pkl names
`canned_answer_factory` by this module path: keep both, or that fixture no longer loads."""
from __future__ import annotations


def canned_answer_factory(model_dir: str, policy: dict, settings: dict):
    """Every request is answered with the policy's `answer`, citing the problem type and the settings'
    fps: an answer that shows the request, the policy and the settings all reached the predictor."""
    def predict(record: dict, video_path: str) -> str:
        return (f"<think>{record['problem_type']} at {settings['video']['fps']} fps</think>"
                f"<answer>{policy['answer']}</answer>")

    return predict
