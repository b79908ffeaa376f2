"""What the VAR is told to draw.

The condition examined is the first image position's input to the VAR blocks (the LLM's final
hidden state there, through image_gen_projector_out), which alone decides the first scale's one
code. That code does not decide the drawing's colour (prefix_probe.py: the 2x2 scale's four codes
do), so what this measures is how the request is read, not where a drawing goes wrong. It reads
drawing requests through the exported model's own forward pass (the trainer's, float32).

1. For each held-out pair, the training pairs whose condition for "draw a {colour} {shape}" is
   nearest, by cosine similarity.
2. A linear probe: colour and shape classifiers (logistic regression) fitted on the conditions of
   2000 training-pair requests in the world's phrasings, then asked about 400 held-out-pair
   requests. A condition that says colour and shape the same way whatever they are paired with is
   read right on pairs the probe never saw.

Usage: python condition_similarity.py [MODEL_DIR]   (default: model-bf16/, the demo model's bf16 master)
"""
from __future__ import annotations

import os
import sys
from typing import Callable

import torch
import torch.nn.functional as F

import data
import tokenizer as demo_tokenizer
import world
from export import load_exported
from train_joint import COLOUR_INDEX, SHAPE_INDEX, gen_prompt, make_config
from train_reward import image_inputs, llm_image_hidden

HERE = os.path.dirname(os.path.abspath(__file__))
PROBE_SEEDS = data.EVAL_SEED_BASE + 80_000  # apart from training, eval-set/ and the drawing probes


@torch.no_grad()
def conditions(model, tok, cfg, requests: list[str], batch: int = 100) -> torch.Tensor:
    L = sum(p * p for p in cfg.patch_nums)
    out = []
    for i in range(0, len(requests), batch):
        chunk = requests[i:i + batch]
        x = image_inputs(model, torch.zeros(len(chunk), L - 1, cfg.cvae))  # position 0 is the start token alone
        ids = [tok.encode(gen_prompt(r)).ids + [cfg.gen_start] for r in chunk]
        out.append(model.image_gen_projector_out(llm_image_hidden(model, ids, x, 1))[:, 0])
    return torch.cat(out)


def labelled_requests(pairs, seeds):
    requests, labels = [], []
    for seed in seeds:
        scene, request = world.drawing_scene(seed, pairs)
        requests.append(request)
        labels.append((COLOUR_INDEX[scene.colour], SHAPE_INDEX[scene.shape]))
    return requests, torch.tensor(labels)


def fit_probe(x, y, classes: int, steps: int = 500) -> Callable[[torch.Tensor], torch.Tensor]:
    """Logistic regression on standardized features; returns the fitted classifier's logits."""
    mean, std = x.mean(0), x.std(0) + 1e-6
    head = torch.nn.Linear(x.shape[1], classes)
    opt = torch.optim.LBFGS(head.parameters(), max_iter=steps, line_search_fn='strong_wolfe')
    z = (x - mean) / std

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(head(z), y) + 1e-3 * head.weight.square().sum()
        loss.backward()
        return loss

    opt.step(closure)
    return lambda v: head((v - mean) / std)


def main():
    folder = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, 'model-bf16')
    tok = demo_tokenizer.load()
    cfg = make_config(tok)
    model = load_exported(folder)

    pairs = world.TRAIN_PAIRS + world.HELD_OUT_PAIRS
    names = dict(zip(pairs, conditions(model, tok, cfg, [f'draw a {c} {s}' for c, s in pairs])))
    for pair in world.HELD_OUT_PAIRS:
        v = names[pair]
        nearest = sorted(((torch.cosine_similarity(v, names[p], 0).item(), p) for p in world.TRAIN_PAIRS),
                         reverse=True)[:4]
        print(' '.join(pair) + ':', ', '.join(f'{p[0]} {p[1]} {s:.3f}' for s, p in nearest))

    train_req, train_y = labelled_requests(world.TRAIN_PAIRS, range(PROBE_SEEDS, PROBE_SEEDS + 2000))
    test_req, test_y = labelled_requests(world.HELD_OUT_PAIRS, range(PROBE_SEEDS + 5000, PROBE_SEEDS + 5400))
    x_train, x_test = conditions(model, tok, cfg, train_req), conditions(model, tok, cfg, test_req)
    colours, shapes = list(COLOUR_INDEX), list(SHAPE_INDEX)
    for what, column, classes in (('colour', 0, colours), ('shape', 1, shapes)):
        with torch.enable_grad():
            probe = fit_probe(x_train, train_y[:, column], len(classes))
        with torch.no_grad():
            seen_right = (probe(x_train).argmax(-1) == train_y[:, column]).float().mean().item()
            guess = probe(x_test).argmax(-1)
        right = (guess == test_y[:, column]).float().mean().item()
        print(f'linear probe, {what}: training pairs {100 * seen_right:.1f}% (fitted on), held-out pairs {100 * right:.1f}%')
        for pair in world.HELD_OUT_PAIRS:
            rows = (test_y[:, 0] == COLOUR_INDEX[pair[0]]) & (test_y[:, 1] == SHAPE_INDEX[pair[1]])
            counts = torch.bincount(guess[rows], minlength=len(classes))
            said = ', '.join(f'{classes[i]} {int(c)}' for i, c in sorted(enumerate(counts), key=lambda t: -t[1]) if c > 0)
            print(f'  {pair[0]} {pair[1]} ({int(rows.sum())}): {said}')


if __name__ == '__main__':
    torch.set_num_threads(1)
    main()
