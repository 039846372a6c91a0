"""Batch plumbing of the transformers engine (videoreasoner/inference/engines.py HFEngine): per-row video
tensors, rows repeated for n samples each, and the log-probability recorder that sees the logits before
temperature / top-k / top-p."""
from __future__ import annotations

from videoreasoner.video.inputs import VIDEO_KEYS


def split_rows(batch) -> list[dict]:
    """Per-row video tensors of a processor batch with one video per row."""
    grid = batch["video_grid_thw"]
    pixels = batch["pixel_values_videos"].split(grid.prod(dim=-1).tolist(), dim=0)
    return [{"pixel_values_videos": pixels[i], "video_grid_thw": grid[i:i + 1],
             "second_per_grid_ts": batch["second_per_grid_ts"][i:i + 1]} for i in range(len(pixels))]


def repeat_rows(batch, n: int, device) -> dict:
    """The batch with every row repeated n times (rows i*n .. i*n+n-1 are copies of row i), video tensors
    included (generate's own expansion would interleave the flattened patches of different videos)."""
    import torch

    out = {k: v.repeat_interleave(n, dim=0).to(device) for k, v in batch.items()
           if k not in VIDEO_KEYS and hasattr(v, "repeat_interleave")}
    rows = [row for row in split_rows(batch) for _ in range(n)]
    for key in VIDEO_KEYS:
        out[key] = torch.cat([row[key] for row in rows]).to(device)
    return out


class LogprobRecorder:
    """A logits processor that records log p(token) of each chosen token from the logits it sees
    (after vision-token suppression, before temperature/top-k/top-p). Keeps one step in memory."""

    def __init__(self, prompt_len: int):
        self.prompt_len = prompt_len
        self.steps: list = []
        self._last = None

    def __call__(self, input_ids, scores):
        import torch

        if self._last is not None:
            self.steps.append(self._last.gather(1, input_ids[:, -1:]).squeeze(1))
        self._last = torch.log_softmax(scores.float(), dim=-1)
        return scores

    def finish(self, sequences):
        import torch

        if self._last is not None and sequences.shape[1] > self.prompt_len + len(self.steps):
            self.steps.append(self._last.gather(1, sequences[:, -1:]).squeeze(1))
        self._last = None
        return torch.stack(self.steps, dim=1) if self.steps else sequences.new_zeros((len(sequences), 0)).float()
