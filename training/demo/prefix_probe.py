"""Which scales decide whether a drawing comes out right: each request is drawn with its first k
scales' codes fixed to the autoencoder's codes of a true picture of the request (the scene the
request was written from), and the rest sampled as the runtime samples them (guidance 3 on its
ramp, top-p 0.96; `train_reward.sample_drawings`). If fixing k scales lifts the judged-right rate
and fixing k - 1 does not, the misses are decided at scale k.

Requests come from fresh scenes (seeds apart from training, from eval-set/ and from the probe sets);
every k draws the same requests with the same noise and sampler seed.

Usage: python prefix_probe.py MODEL_DIR [--k 0,1,2,3] [--split held|seen] [--count 200]
"""
from __future__ import annotations

import argparse
import collections
import os

import numpy as np
import torch

import data
import tokenizer as demo_tokenizer
import world
from export import load_exported
from judging import judge, to_rgb
from model import vae_pixels
from train_joint import gen_prompt
from train_reward import sample_drawings

SEED_OFFSET = 100_000  # apart from eval-set/, the drawing probes (+70_000) and the other probes


def names_place(request: str) -> bool:
    return any(f' {place}' in request for place in world.POSITIONS)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('model', help='an exported model folder (export.py)')
    ap.add_argument('--k', default='0,1,2,3', help='numbers of leading scales to fix, comma-separated')
    ap.add_argument('--split', choices=('held', 'seen'), default='held')
    ap.add_argument('--count', type=int, default=200)
    ap.add_argument('--seed', type=int, default=99)
    a = ap.parse_args()
    torch.set_num_threads(int(os.environ.get('DEMO_THREADS', '2')))
    tok = demo_tokenizer.load()
    model = load_exported(a.model)
    cfg, vae = model.cfg, model.vae_local
    pairs = world.HELD_OUT_PAIRS if a.split == 'held' else world.TRAIN_PAIRS
    offset = SEED_OFFSET + (0 if a.split == 'held' else 10_000)
    requests = [world.drawing_scene(data.EVAL_SEED_BASE + offset + i, pairs) for i in range(a.count)]
    pictures = torch.tensor(np.stack([world.render(scene) for scene, _ in requests]))
    with torch.no_grad():
        true_codes = vae.encode_indices(vae_pixels(pictures))
    L = sum(p * p for p in cfg.patch_nums)
    for k in (int(v) for v in a.k.split(',')):
        gen = torch.Generator().manual_seed(a.seed)
        right = 0
        by_place = collections.Counter()  # (names the place, right) -> draws
        by_pair: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        for b in range(0, a.count, 25):
            chunk = requests[b:b + 25]
            prompts = [tok.encode(gen_prompt(request)).ids + [cfg.gen_start] for _, request in chunk]
            noise = torch.randn(len(prompts), L, cfg.llm_hidden, generator=gen)
            prefix = [codes[b:b + 25] for codes in true_codes[:k]]
            with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
                codes = sample_drawings(model, prompts, noise, 3.0, 0.96, gen, prefix)
                verdicts = judge(to_rgb(vae.decode_indices(codes)))
            for (scene, request), (colour, shape) in zip(chunk, verdicts):
                ok = colour == scene.colour and shape == scene.shape
                right += ok
                by_place[names_place(request), ok] += 1
                by_pair[f'{scene.colour} {scene.shape}']['right' if ok else f'{colour} {shape}'] += 1
        print(f'first {k} scales fixed: {right} / {a.count} right', flush=True)
        for named in (True, False):
            n = by_place[named, True] + by_place[named, False]
            print(f'  requests that {"name" if named else "leave out"} the place: {by_place[named, True]} / {n}')
        for pair, counts in sorted(by_pair.items()):
            misses = ', '.join(f'{what} {n}' for what, n in counts.most_common() if what != 'right')
            print(f'  {pair}: {counts["right"]} / {sum(counts.values())}' + (f' (drawn as: {misses})' if misses else ''))


if __name__ == '__main__':
    main()
