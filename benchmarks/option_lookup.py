"""Can the tiny model's language model learn option look-up, and at which learning rate?

Multiple choice needs the model to find a word among the options and give the letter before it. This
trains the language model alone on text-only look-ups ("The circle is X. Which option says X?" with four
single-token words as options), rendered in the real multiple-choice prompt (videoreasoner/answers/format
via video/inputs.user_text), scoring only the letter after `<answer>`. It prints the accuracy on held-out
look-ups over the world's colour words every --eval-every steps (chance 0.25).

  python benchmarks/option_lookup.py --lr 3e-4 --steps 5000              # fresh tiny model (params model.tiny)
  python benchmarks/option_lookup.py --lr 3e-4 --model pretrained/tiny-video-base

Measured (README, "Option look-up needs a lower learning rate"): fresh, 3e-4: 0.35 at 3,000 steps, 0.93 at
5,000; at 1e-3 it stays at chance, as does the shipped base (trained at 1e-3) at either rate.
Run from a workspace whose data/ is generated (a fresh model trains its tokenizer on the train split).
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

LETTERS = "ABCD"


def single_token_words(tokenizer) -> list[str]:
    """Alphabetic vocabulary entries of 3+ letters that are one token after a space (option words)."""
    words = {tokenizer.decode([i]).strip() for i in range(tokenizer.vocab_size)}
    return sorted(w for w in words if w.isalpha() and len(w) >= 3 and len(tokenizer(" " + w)["input_ids"]) == 1)


def lookup_prompt(tokenizer, rng: random.Random, words: list[str], shapes: list[str]) -> tuple[str, int]:
    """(chat prompt ending in `<answer>`, index of the right letter)."""
    from videoreasoner.video.inputs import user_text

    options, k = rng.sample(words, 4), rng.randrange(4)
    record = {"problem_type": "multiple_choice", "options": options,
              "question": f"The {rng.choice(shapes)} is {options[k]}. Which option says {options[k]}?"}
    messages = [{"role": "user", "content": [{"type": "text", "text": user_text(record)}]}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) + "<answer>", k


def load(model_path: str | None):
    from videoreasoner.core.atomic import read_jsonl
    from videoreasoner.core.params import section
    from videoreasoner.core.paths import split_file
    from videoreasoner.training.model_io import load_model_and_processor
    from videoreasoner.training.tiny_model import TinyConfig, build_tiny
    from videoreasoner.video.config import VideoConfig

    if model_path:
        return load_model_and_processor(model_path, "float32")
    tiny = TinyConfig.from_params(section("model").get("tiny") or {})
    return build_tiny(tiny, read_jsonl(split_file("train")), VideoConfig.from_params(section("video")))


def main(argv: list[str] | None = None) -> int:
    import torch

    from videoreasoner.core.params import section
    from videoreasoner.data.world.config import WorldConfig

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="a saved model (default: a fresh tiny model)")
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--eval-items", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    world = WorldConfig.from_params(section("data")["synthetic"])
    model, processor = load(args.model)
    tokenizer = processor.tokenizer
    words, shapes = single_token_words(tokenizer), list(world.shapes)
    letter_ids = torch.tensor([tokenizer(letter)["input_ids"][0] for letter in LETTERS])
    language_model, head = model.model.language_model, model.lm_head

    def batch(rng: random.Random, pool: list[str], n: int):
        items = [lookup_prompt(tokenizer, rng, pool, shapes) for _ in range(n)]
        enc = tokenizer([p for p, _ in items], return_tensors="pt", padding=True, padding_side="left")
        return enc, letter_ids[[k for _, k in items]]

    def last_logits(enc):
        hidden = language_model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
        return head(hidden[:, -1])

    held_out = batch(random.Random(args.seed + 123), list(world.colours), args.eval_items)
    params = list(language_model.parameters()) + list(head.parameters())
    optimizer = torch.optim.AdamW(params, lr=args.lr)
    rng, t0 = random.Random(args.seed), time.perf_counter()
    print(f"{len(words)} option words; lr {args.lr}; {'model ' + args.model if args.model else 'fresh tiny model'}")
    print("| step | look-up accuracy (colour words, chance 0.25) | seconds |\n|---:|---:|---:|")
    for step in range(args.steps + 1):
        if step % args.eval_every == 0 or step == args.steps:
            with torch.no_grad():
                accuracy = (last_logits(held_out[0]).argmax(-1) == held_out[1]).float().mean().item()
            print(f"| {step} | {accuracy:.3f} | {time.perf_counter() - t0:.0f} |", flush=True)
        if step == args.steps:
            break
        enc, target = batch(rng, words, args.batch_size)
        loss = torch.nn.functional.cross_entropy(last_logits(enc), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return 0


if __name__ == "__main__":
    sys.exit(main())
