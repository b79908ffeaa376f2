"""The autoencoder's ceiling on drawing: the world's own pictures, encoded to VAR's multi-scale codes
and decoded, judged by judge.mjs exactly as eval.mjs judges a drawing. A generator learns to emit
these codes, so it can draw a colour and shape right no more often than this.

With --extra it also round-trips shapes painted in world.EXTRA_COLOURS: how often the decoded
shape's median colour is nearest its own among all named and extra colours, where the others go,
and how many such pictures the judge reads as a held-out pair (a generator trained on them would
be shown that pair).

Usage: python eval_vqvae.py MODEL_DIR_OR_STATE_DICT [--count 60] [--extra]
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
    ap.add_argument('--extra', action='store_true', help='also round-trip shapes in world.EXTRA_COLOURS')
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
    if a.extra:
        extra_colours(vae, 4 * a.count, a.node)


def extra_colours(vae: VqVae, count: int, node: str):
    scenes = [world.drawing_scene(SEED_BASE + i, world.EXTRA_PAIRS)[0] for i in range(count)]
    pictures = np.stack([world.render(s) for s in scenes])
    rec = to_rgb(vae.decode_indices(vae.encode_indices(vae_pixels(torch.from_numpy(pictures)))))
    palette = world.PALETTE
    names = list(palette)
    rgb = np.array([palette[n] for n in names], dtype=np.float64)
    kept, moved = 0, {}
    for scene, original, decoded in zip(scenes, pictures, rec):
        on_shape = np.abs(original.astype(np.int32) - world.BACKGROUNDS[scene.background]).sum(-1) > 60
        median = np.median(decoded[on_shape].astype(np.float64), 0)
        nearest = names[int(np.argmin(((rgb - median) ** 2).sum(-1)))]
        kept += nearest == scene.colour
        if nearest != scene.colour:
            moved[f'{scene.colour} -> {nearest}'] = moved.get(f'{scene.colour} -> {nearest}', 0) + 1
    held = sum((c, sh) in world.HELD_OUT for c, sh in judge(rec, node))
    print(f'extra colours: nearest its own of {len(palette)} colours {kept}/{count}; read as a held-out pair '
          f'{held}/{count}; moved {dict(sorted(moved.items(), key=lambda kv: -kv[1])[:12])}')


if __name__ == '__main__':
    torch.set_num_threads(int(os.environ.get('DEMO_THREADS', '2')))
    main()
