"""Language warm-up of a fresh tiny model: text-only option look-ups before any video.

Multiple choice needs the language model to find a word among the options and answer with the letter
in front of it: an in-context copy (an induction skill). A 1 M-parameter model trained from scratch on
video items at 1e-3 never learns it (multiple choice stays at chance); a fresh language model of the
same size learns it in about 4,000 steps at 3e-4 (benchmarks/option_lookup.py prints that experiment).
So the pretrain stage first trains the language model and its head alone on generated look-ups
("The circle is X. Which option says X?", four single-token words as options) in the real
multiple-choice prompt (videoreasoner/video/inputs.user_text, the processor's chat template), scoring
only the letter after `<answer>`; the video phase then keeps look-up items in its mix.

Deterministic: the look-ups come from `random.Random(seed)` and the model has no dropout.
"""
from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence
from typing import Any

log = logging.getLogger(__name__)
LETTERS = "ABCD"


def single_token_words(tokenizer) -> list[str]:
    """Alphabetic vocabulary entries of 3+ letters that are one token after a space (option words)."""
    words = {tokenizer.decode([i]).strip() for i in range(tokenizer.vocab_size)}
    return sorted(w for w in words if w.isalpha() and len(w) >= 3 and len(tokenizer(" " + w)["input_ids"]) == 1)


def lookup_prompt(tokenizer, rng: random.Random, words: Sequence[str], subjects: Sequence[str]) -> tuple[str, int]:
    """(chat prompt ending in `<answer>`, index of the right letter) for one generated look-up."""
    from videoreasoner.video.inputs import user_text

    options, k = rng.sample(list(words), len(LETTERS)), rng.randrange(len(LETTERS))
    record = {"problem_type": "multiple_choice", "options": options,
              "question": f"The {rng.choice(list(subjects))} is {options[k]}. Which option says {options[k]}?"}
    messages = [{"role": "user", "content": [{"type": "text", "text": user_text(record)}]}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) + "<answer>", k


class LookupTask:
    """Batches of look-ups and the accuracy of a model's letter on a fixed held-out set."""

    def __init__(self, tokenizer, subjects: Sequence[str], held_out_words: Sequence[str], *, seed: int = 0,
                 held_out_items: int = 400):
        import torch

        if len(held_out_words) < len(LETTERS):
            raise ValueError(f"language warm-up: {len(held_out_words)} held-out words; a look-up needs {len(LETTERS)}")
        self.tokenizer, self.subjects = tokenizer, list(subjects)
        self.words = single_token_words(tokenizer)
        if len(self.words) < len(LETTERS):
            raise ValueError(f"language warm-up: the tokenizer has {len(self.words)} single-token words; "
                             f"a look-up needs {len(LETTERS)}")
        self.letter_ids = torch.tensor([tokenizer(letter)["input_ids"][0] for letter in LETTERS])
        self.held_out = self.batch(random.Random(seed + 123), list(held_out_words), held_out_items)

    def batch(self, rng: random.Random, pool: Sequence[str], n: int):
        """(tokenised prompts, left-padded; letter token id of each answer)."""
        items = [lookup_prompt(self.tokenizer, rng, pool, self.subjects) for _ in range(n)]
        enc = self.tokenizer([p for p, _ in items], return_tensors="pt", padding=True, padding_side="left")
        return enc, self.letter_ids[[k for _, k in items]]

    @staticmethod
    def letter_logits(model, enc):
        """The language model's logits at the last prompt position (no video)."""
        hidden = model.model.language_model(input_ids=enc["input_ids"],
                                            attention_mask=enc["attention_mask"]).last_hidden_state
        return model.lm_head(hidden[:, -1])

    def accuracy(self, model) -> float:
        import torch

        enc, target = self.held_out
        with torch.no_grad():
            return float((self.letter_logits(model, enc).argmax(-1) == target).float().mean())


def warm_up(model, task: LookupTask, *, steps: int, learning_rate: float, batch_size: int = 32, seed: int = 0,
            eval_every: int = 500, target_accuracy: float | None = None, on_eval=None) -> dict[str, Any]:
    """Train `model`'s language model and lm_head (AdamW, constant rate) on up to `steps` batches of
    look-ups over the tokenizer's single-token words, stopping at the first check (every `eval_every`
    steps) whose held-out accuracy reaches `target_accuracy`. The skill appears as a sudden jump whose
    step depends on the data order, hence a target rather than a fixed count. Returns {steps (taken),
    learning_rate, accuracy (held out, at the end), reached (None without a target), curve [[step,
    accuracy], ...], seconds}; on_eval(step, accuracy) is called at each check."""
    import torch

    params = list(model.model.language_model.parameters()) + list(model.lm_head.parameters())
    optimizer = torch.optim.AdamW(params, lr=learning_rate)
    rng, t0, curve = random.Random(seed), time.perf_counter(), []
    was_training = model.training
    model.train()
    for step in range(steps + 1):
        if step % eval_every == 0 or step == steps:
            curve.append([step, round(task.accuracy(model), 4)])
            log.info("language warm-up step %d: look-up accuracy %.3f", step, curve[-1][1])
            if on_eval is not None:
                on_eval(step, curve[-1][1])
            if target_accuracy is not None and curve[-1][1] >= target_accuracy:
                break
        if step == steps:
            break
        enc, target = task.batch(rng, task.words, batch_size)
        loss = torch.nn.functional.cross_entropy(task.letter_logits(model, enc), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.train(was_training)
    accuracy = curve[-1][1]
    return {"steps": curve[-1][0], "learning_rate": learning_rate, "accuracy": accuracy,
            "reached": None if target_accuracy is None else accuracy >= target_accuracy, "curve": curve,
            "seconds": round(time.perf_counter() - t0, 1)}
