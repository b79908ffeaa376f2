"""Stage 4a: a new vision tower, trained from scratch to see each attribute apart from the others.

The tower trained in stage 2 (through the LLM, on questions) names colours, counts and places, but
not shapes apart from their colours: a linear probe of its features names held-out pairs' shapes
almost never (1-5%), and neither further question training with the LLM frozen nor a direct shape
loss on top of it moved that. It had settled on colour x shape conjunctions. A fresh tower trained
directly on the attributes does separate them (held-out shapes right about 70% of the time after a
few hundred steps) when, besides the training pairs, it sees shapes painted in unnamed colours
(world.unnamed_qa_from_seed: never a colour that could pass for a held-out pair).

Here: linear heads on the CLS output for shape, colour (the six, or unnamed), count, place and
background, cross-entropy on each. The heads are used only in training (never exported);
train_joint.py --vision then puts this tower into the model and keeps the heads' losses on while
the LLM learns to read it.
"""
from __future__ import annotations

import argparse
import math
import os
import random
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import data
import world
from model import DemoConfig, clip_pixels

COLOUR_CLASSES = list(world.COLOURS) + [world.UNNAMED]
POSITION_CLASSES = list(world.POSITIONS)
BACKGROUND_CLASSES = list(world.BACKGROUNDS)
PROBE_SEED_BASE = data.EVAL_SEED_BASE + 50_000  # held-out probes; eval-set/ uses +0..+7000


class AttributeHeads(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.shape = nn.Linear(width, len(world.SHAPES))
        self.colour = nn.Linear(width, len(COLOUR_CLASSES))
        self.count = nn.Linear(width, 3)
        self.position = nn.Linear(width, len(POSITION_CLASSES))
        self.background = nn.Linear(width, len(BACKGROUND_CLASSES))

    def losses(self, cls: torch.Tensor, labels: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        cls = cls.float()
        return {k: F.cross_entropy(getattr(self, k)(cls), y, ignore_index=-100) for k, y in labels.items()}


def labels_of(scenes) -> dict[str, torch.Tensor]:
    return {
        'shape': torch.tensor([world.SHAPES.index(s.shape) for s in scenes]),
        'colour': torch.tensor([COLOUR_CLASSES.index(s.colour) for s in scenes]),
        'count': torch.tensor([s.count - 1 for s in scenes]),
        'position': torch.tensor([POSITION_CLASSES.index(s.position_word) if s.position_word else -100 for s in scenes]),
        'background': torch.tensor([BACKGROUND_CLASSES.index(s.background) for s in scenes]),
    }


def attribute_batch(rng: random.Random, n: int):
    """n scenes, half of training pairs and half in unnamed colours, as CLIP pixels and labels."""
    scenes = [world.scene_from_seed(rng.randrange(data.TRAIN_SEEDS), world.TRAIN_PAIRS, multi=True) for _ in range(n // 2)]
    scenes += [world.unnamed_qa_from_seed(rng.randrange(data.TRAIN_SEEDS))[0] for _ in range(n - n // 2)]
    imgs = torch.from_numpy(np.stack([world.render(s) for s in scenes]))
    return clip_pixels(imgs), labels_of(scenes)


def cls_features(tower, pixels):
    return tower(pixel_values=pixels).last_hidden_state[:, 0]


def probe_heads(tower, heads, n: int = 200) -> dict[str, float]:
    """Head accuracy on single shapes of the held-out pairs (a measurement, never trained on)."""
    scenes = [world.scene_from_seed(PROBE_SEED_BASE + i, world.HELD_OUT_PAIRS, multi=False) for i in range(n)]
    pixels = clip_pixels(torch.from_numpy(np.stack([world.render(s) for s in scenes])))
    labels = labels_of(scenes)
    was = tower.training
    tower.eval()
    with torch.no_grad():
        cls = cls_features(tower, pixels).float()
        out = {k: (getattr(heads, k)(cls).argmax(-1) == labels[k]).float().mean().item() for k in ('shape', 'colour')}
    tower.train(was)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--out', required=True)
    ap.add_argument('--steps', type=int, default=1000)
    ap.add_argument('--minutes', type=float, default=60)
    ap.add_argument('--batch', type=int, default=64)
    ap.add_argument('--lr', type=float, default=1e-3)
    ap.add_argument('--seed', type=int, default=0)
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    from transformers import CLIPVisionModel
    cfg = DemoConfig()
    tower = CLIPVisionModel(cfg.clip_config())
    heads = AttributeHeads(cfg.vis_hidden)
    params = list(tower.parameters()) + list(heads.parameters())
    opt = torch.optim.AdamW(params, lr=a.lr, weight_decay=0.05, betas=(0.9, 0.95))
    warmup = 50
    sched = lambda s: min(1.0, (s + 1) / warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, s / a.steps))))
    rng = random.Random(a.seed + 7)
    t0 = time.time()
    step = 0
    while step < a.steps and time.time() - t0 < a.minutes * 60:
        for g in opt.param_groups:
            g['lr'] = a.lr * sched(step)
        pixels, labels = attribute_batch(rng, a.batch)
        losses = heads.losses(cls_features(tower, pixels), labels)
        loss = sum(losses.values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 2.0)
        opt.step()
        step += 1
        if step % 50 == 0:
            print(f'step {step} ' + ' '.join(f'{k} {v.item():.3f}' for k, v in losses.items()) +
                  f' held-out probe {probe_heads(tower, heads)} {time.time() - t0:.0f}s', flush=True)
    state = {'model': {f'vision_tower.{k}': v for k, v in tower.state_dict().items()}, 'heads': heads.state_dict(), 'step': step}
    torch.save(state, a.out)
    print('saved', a.out, 'at step', step, flush=True)


if __name__ == '__main__':
    torch.set_num_threads(int(os.environ.get('DEMO_THREADS', '2')))
    main()
