"""Answer rates of exported models on fresh questions, 200 per kind, held-out and seen pairs.

    python probe_answers.py MODEL_DIR [MODEL_DIR...]

The committed evaluation (eval-set/, eval.mjs) asks 10 questions of each kind, too few to tell
two checkpoints apart or to choose between them without tuning on that set. This asks questions
on seeds of their own (never trained on, never in eval-set/), through the trainer's own forward
pass on the exported weights, and prints the exact-answer rate per pair set and kind.
"""
from __future__ import annotations

import argparse
import json
import os

import torch

import data
import tokenizer as demo_tokenizer
import world
from export import load_exported
from train_joint import Batcher, answer_rate, make_config

SEED_BASE = data.EVAL_SEED_BASE + 150_000  # eval-set/ uses +0..+7000, the training probes +50_000..
KINDS = ('shape', 'colour', 'count', 'position', 'background')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('models', nargs='+')
    ap.add_argument('--per-kind', type=int, default=200)
    a = ap.parse_args()
    tok = demo_tokenizer.load()
    cfg = make_config(tok)
    batcher = Batcher(tok, cfg, 0)
    for folder in a.models:
        model = load_exported(folder)
        model.eval()
        rates = {}
        for set_name, pairs, base in (('held-out', world.HELD_OUT_PAIRS, SEED_BASE),
                                      ('seen', world.TRAIN_PAIRS, SEED_BASE + 50_000)):
            for n, kind in enumerate(KINDS):
                seeds = range(base + 1000 * n, base + 1000 * n + a.per_kind)
                rates[f'{set_name} {kind}'] = round(answer_rate(model, batcher, pairs, kind, seeds), 3)
            rates[f'{set_name} all'] = round(sum(rates[f'{set_name} {k}'] for k in KINDS) / len(KINDS), 3)
        print(json.dumps({'model': folder, **rates}), flush=True)


if __name__ == '__main__':
    torch.set_num_threads(int(os.environ.get('DEMO_THREADS', '2')))
    main()
