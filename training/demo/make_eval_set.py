"""Writes an evaluation set: 50 drawing requests and 50 questions about 50 images, from seeds
outside the training range. --split held-out (eval-set.json): only the colour x shape pairs the
training never saw together (world.HELD_OUT); --split seen (seen.json, images seen-*.png): only
pairs it saw, for comparison. eval.mjs and the package's tests read them; they are committed so
neither needs Python.

Usage: python make_eval_set.py --out eval-set [--split held-out|seen]
       python make_eval_set.py --probe FILE [--split held-out|seen|extra] [--count N] [--start I]

--probe writes 100 drawing requests alone (--count), from seeds apart from the committed sets' (and from
training's), to choose between checkpoints without tuning on the evaluation:
`node eval.mjs --set FILE --repeat 2`. --start skips the first I requests of that sequence: the
committed fresh-held-out.json and fresh-seen.json are --count 200 --start 100, requests no choice
was ever made on (the first 100 chose between training runs).
"""
from __future__ import annotations

import argparse
import json
import os
import random

from PIL import Image

import data
import world


def drawing_requests(offset: int, count: int, pairs, start: int = 0) -> list[dict]:
    """count drawing requests from seeds EVAL_SEED_BASE + offset + i (i from start), each drawn with
    seed i + 1."""
    draws = []
    for i in range(start, start + count):
        scene, request = world.drawing_scene(data.EVAL_SEED_BASE + offset + i, pairs)
        draws.append({'prompt': request, 'colour': scene.colour, 'shape': scene.shape, 'seed': i + 1})
    return draws


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--out')
    ap.add_argument('--probe', help='write a drawing-only probe set to this JSON file instead')
    ap.add_argument('--count', type=int, help='requests (and questions): 50, or 100 with --probe')
    ap.add_argument('--start', type=int, default=0, help='with --probe: the first request, 0 or more')
    ap.add_argument('--split', choices=['held-out', 'seen', 'extra'], default='held-out',
                    help='extra (with --probe): shapes in world.EXTRA_COLOURS, judged among all 16 colours')
    a = ap.parse_args()
    if (a.out is None) == (a.probe is None):
        ap.error('give --out or --probe')
    if a.start < 0 or (a.start and not a.probe):
        ap.error('--start is 0 or more, and only with --probe')
    if a.count is None:
        a.count = 100 if a.probe else 50
    if a.split == 'extra' and not a.probe:
        ap.error('--split extra is a drawing-only set: use it with --probe')
    pairs = {'held-out': world.HELD_OUT_PAIRS, 'seen': world.TRAIN_PAIRS, 'extra': world.EXTRA_PAIRS}[a.split]
    if a.probe:
        offset = {'held-out': 70_000, 'seen': 75_000, 'extra': 95_000}[a.split]
        draws = drawing_requests(offset, a.count, pairs, a.start)
        colours = world.PALETTE if a.split == 'extra' else world.COLOURS
        with open(a.probe, 'w') as f:
            json.dump({'split': f'{a.split} probe', 'held_out_pairs': world.HELD_OUT_PAIRS, 'colours': colours,
                       'backgrounds': world.BACKGROUNDS, 'draw': draws, 'ask': []}, f, indent=1)
            f.write('\n')
        print('wrote', a.probe)
        return
    prefix = 'image' if a.split == 'held-out' else 'seen'
    offset = 0 if a.split == 'held-out' else 5000
    os.makedirs(a.out, exist_ok=True)
    draws = drawing_requests(offset, a.count, pairs)
    questions = []
    kinds = ['colour', 'shape', 'count', 'position', 'background']
    for i in range(a.count):
        seed = data.EVAL_SEED_BASE + offset + 1000 + i
        kind = kinds[i % len(kinds)]
        scene = world.scene_from_seed(seed, pairs, multi=(kind == 'count'))
        rng = random.Random(seed)
        name = f'{prefix}-{i:02d}.png'
        Image.fromarray(world.render(scene)).save(os.path.join(a.out, name))
        questions.append({'image': name, 'kind': kind, 'question': rng.choice(world.QUESTIONS[kind]),
                          'answer': world.answer(scene, kind), 'colour': scene.colour, 'shape': scene.shape})
    with open(os.path.join(a.out, 'eval-set.json' if a.split == 'held-out' else 'seen.json'), 'w') as f:
        json.dump({'split': a.split, 'held_out_pairs': world.HELD_OUT_PAIRS, 'colours': world.COLOURS,
                   'backgrounds': world.BACKGROUNDS, 'draw': draws, 'ask': questions}, f, indent=1)
        f.write('\n')
    print('wrote', a.out)


if __name__ == '__main__':
    main()
