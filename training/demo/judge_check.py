"""How often the pixel judge (judge.mjs) is itself wrong, on pictures whose truth is known: fresh
drawing scenes of the world, rendered (the judge should read every one right) and passed through
the demo's VQ-VAE (a generator's best drawing: rims blurred, corners softened, colours moved as the
autoencoder moves them). A judge that misreads these counts right drawings wrong.

Usage: python judge_check.py MODEL_DIR_OR_VQVAE_STATE [--count 400] [--offset 0] [--judge FILE ...]

It also prints, per true shape, the median of the two profile harmonics judge.mjs (or the last
--judge) reads on the round trips: judge.mjs's shape thresholds are the midpoints between these
medians on the default pictures (--offset 0). --offset 10000 draws a second, fresh set of pictures
to check the judge on pictures its thresholds were not set from. --judge takes any module
exporting judgeDrawing (an earlier judge.mjs from git, say), several to compare them on the same
pictures.
"""
from __future__ import annotations

import argparse
import os
import statistics
from collections import Counter

import numpy as np
import torch

import data
import world
from export import load_vqvae_state
from judging import to_rgb, verdicts
from model import DemoConfig, VqVae, vae_pixels

SEED_BASE = {'held-out pairs': data.EVAL_SEED_BASE + 120_000, 'seen pairs': data.EVAL_SEED_BASE + 140_000}


@torch.no_grad()
def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('vqvae', help='an exported model folder, or a VQ-VAE state dict')
    ap.add_argument('--count', type=int, default=400, help='pictures per set (at most 10000)')
    ap.add_argument('--offset', type=int, default=0, help='added to the pictures\' seeds: 0 or 10000')
    ap.add_argument('--judge', action='append', help='judge module(s); default judge.mjs')
    ap.add_argument('--node', default='node')
    a = ap.parse_args()
    if not 0 < a.count <= 10_000 or a.offset not in (0, 10_000):
        ap.error('--count is 1 to 10000, --offset 0 or 10000 (the seed ranges stay apart)')
    judges = a.judge or [os.path.join(os.path.dirname(os.path.abspath(__file__)), 'judge.mjs')]
    vae = VqVae(DemoConfig())
    vae.load_state_dict(load_vqvae_state(a.vqvae))
    vae.eval()
    harmonics: dict[str, dict[str, list[float]]] = {}
    for name, pairs in (('held-out pairs', world.HELD_OUT_PAIRS), ('seen pairs', world.TRAIN_PAIRS)):
        scenes = [world.drawing_scene(SEED_BASE[name] + a.offset + i, pairs)[0] for i in range(a.count)]
        rendered = np.stack([world.render(s) for s in scenes])
        round_trip = to_rgb(vae.decode_indices(vae.encode_indices(vae_pixels(torch.from_numpy(rendered)))))
        want = [(s.colour, s.shape) for s in scenes]
        for kind, rgb in (('rendered', rendered), ('VQ-VAE round trip', round_trip)):
            for path in judges:
                found = verdicts(rgb, a.node, path)
                got = [(v['colour'], v['shape']) for v in found]
                right = sum(g == w for g, w in zip(got, want))
                misses = Counter(f'{w[0]} {w[1]} -> {g[0]} {g[1]}' for g, w in zip(got, want) if g != w)
                print(f'{name}, {kind}, {os.path.basename(path)}: {right}/{a.count} right; '
                      f'misses {dict(misses.most_common(8))}')
                if kind == 'VQ-VAE round trip' and path == judges[-1]:
                    for v, (_, shape) in zip(found, want):
                        for feature in ('triangle', 'c4'):
                            if feature in v:
                                harmonics.setdefault(shape, {}).setdefault(feature, []).append(v[feature])
    for shape, features in sorted(harmonics.items()):
        print(f'round trips of {shape}s, median harmonics: '
              + ', '.join(f'{f} {statistics.median(values):.3f}' for f, values in features.items()))


if __name__ == '__main__':
    torch.set_num_threads(int(os.environ.get('DEMO_THREADS', '2')))
    main()
