"""The autoencoder's ceiling on drawing: the world's own pictures, encoded to VAR's multi-scale codes
and decoded, judged by judge.mjs exactly as eval.mjs judges a drawing. A generator learns to emit
these codes, so it can draw a colour and shape right no more often than this.

Usage: python eval_vqvae.py MODEL_DIR_OR_STATE_DICT [--count 60]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile

import numpy as np
import torch

import data
import world
from export import load_vqvae_state
from model import DemoConfig, VqVae, vae_pixels

HERE = os.path.dirname(os.path.abspath(__file__))
SEED_BASE = data.EVAL_SEED_BASE + 90_000  # apart from eval-set/ and train_joint's probes

JUDGE = """
import { readFileSync } from 'node:fs';
const { judgeDrawing } = await import(process.argv[1]);
const { colours } = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const { side, want } = JSON.parse(readFileSync(process.argv[3], 'utf8'));
const pixels = readFileSync(process.argv[4]);
const n = side * side * 3;
console.log(JSON.stringify(want.map((_, i) => judgeDrawing(new Uint8Array(pixels.subarray(i * n, (i + 1) * n)), side, side, colours))));
"""


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
    with tempfile.TemporaryDirectory() as tmp:
        for name, pairs in (('held-out pairs', world.HELD_OUT_PAIRS), ('seen pairs', world.TRAIN_PAIRS)):
            scenes = [world.drawing_scene(SEED_BASE + i, pairs)[0] for i in range(a.count)]
            pictures = torch.from_numpy(np.stack([world.render(s) for s in scenes]))
            rec = vae.decode_indices(vae.encode_indices(vae_pixels(pictures)))
            rgb = ((rec + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()
            want = [[s.colour, s.shape] for s in scenes]
            rgb.tofile(os.path.join(tmp, 'rgb'))
            with open(os.path.join(tmp, 'want.json'), 'w') as f:
                json.dump({'side': world.SIZE, 'want': want}, f)
            out = subprocess.run([a.node, '--input-type=module', '-e', JUDGE, os.path.join(HERE, 'judge.mjs'),
                                  os.path.join(HERE, 'eval-set', 'eval-set.json'), os.path.join(tmp, 'want.json'),
                                  os.path.join(tmp, 'rgb')], capture_output=True, text=True, check=True)
            got = json.loads(out.stdout)
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
