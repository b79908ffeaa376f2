"""The autoencoder's ceiling on drawing: the world's own pictures, encoded to VAR's multi-scale codes
and decoded, judged by judge.mjs exactly as eval.mjs judges a drawing. A generator learns to emit
these codes, so it can draw a colour and shape right no more often than this.

Usage: python eval_vqvae.py MODEL_DIR_OR_STATE_DICT [--count 60]
"""
from __future__ import annotations

import argparse
import os

import numpy as np
import torch

import data
import world
from export import load_vqvae_state
from judging import judge, to_rgb
from model import DemoConfig, VqVae, vae_pixels

SEED_BASE = data.EVAL_SEED_BASE + 90_000  # apart from eval-set/ and train_joint's probes


@torch.no_grad()
def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('vqvae', help='an exported model folder, or a VQ-VAE state dict')
    ap.add_argument('--count', type=int, default=60, help='pictures per set')
    ap.add_argument('--node', default='node')
    a = ap.parse_args()
    vae = VqVae(DemoConfig())
    vae.load_state_dict(load_vqvae_state(a.vqvae))
    vae.eval()
    for name, pairs in (('held-out pairs', world.HELD_OUT_PAIRS), ('seen pairs', world.TRAIN_PAIRS)):
        scenes = [world.drawing_scene(SEED_BASE + i, pairs)[0] for i in range(a.count)]
        pictures = torch.from_numpy(np.stack([world.render(s) for s in scenes]))
        rec = vae.decode_indices(vae.encode_indices(vae_pixels(pictures)))
        want = [[s.colour, s.shape] for s in scenes]
        got = [{'colour': c, 'shape': sh} for c, sh in judge(to_rgb(rec), a.node)]
        colour = sum(g['colour'] == w[0] for g, w in zip(got, want))
        shape = sum(g['shape'] == w[1] for g, w in zip(got, want))
        both = sum(g['colour'] == w[0] and g['shape'] == w[1] for g, w in zip(got, want))
        shifts: dict[str, int] = {}
        for g, w in zip(got, want):
            if g['colour'] != w[0]:
                shifts[f"{w[0]} -> {g['colour']}"] = shifts.get(f"{w[0]} -> {g['colour']}", 0) + 1
        print(f'{name}: colour and shape right {both}/{a.count}, colour {colour}, shape {shape}; '
              f'colour misses {dict(sorted(shifts.items(), key=lambda kv: -kv[1]))}')


if __name__ == '__main__':
    torch.set_num_threads(int(os.environ.get('DEMO_THREADS', '2')))
    main()
