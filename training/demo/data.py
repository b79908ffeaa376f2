"""Datasets of the synthetic world, as tensors: every sample is a function of its seed."""
from __future__ import annotations

import numpy as np
import torch

import world

# Seed ranges: training draws from [0, TRAIN_SEEDS); evaluation uses seeds from EVAL_SEED_BASE up.
TRAIN_SEEDS = 1_000_000
EVAL_SEED_BASE = 10_000_000


def images(seeds, pairs=None, multi=True) -> torch.Tensor:
    pairs = pairs or world.TRAIN_PAIRS
    return torch.from_numpy(np.stack([world.render(world.scene_from_seed(int(s), pairs, multi)) for s in seeds]))
