"""judge.mjs, the evaluation's pixel checker, from Python: the trainer's decoded pictures judged
exactly as eval.mjs judges the runtime's drawings."""
from __future__ import annotations

import json
import os
import subprocess
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))

_JUDGE = """
import { readFileSync } from 'node:fs';
const { judgeDrawing } = await import(process.argv[1]);
const { colours } = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const { side, count } = JSON.parse(process.argv[3]);
const pixels = readFileSync(process.argv[4]);
const n = side * side * 3;
const out = [];
for (let i = 0; i < count; i++) out.push(judgeDrawing(new Uint8Array(pixels.subarray(i * n, (i + 1) * n)), side, side, colours));
console.log(JSON.stringify(out.map(({ profile, background, ...v }) => v)));
"""


def to_rgb(pictures: torch.Tensor) -> np.ndarray:
    """VQ-VAE output in [-1, 1], [N, 3, S, S] -> [N, S, S, 3] uint8."""
    return ((pictures + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def verdicts(rgb: np.ndarray, node: str = 'node', judge_path: str | None = None) -> list[dict]:
    """judge.mjs (or another module exporting judgeDrawing) on [N, S, S, 3] uint8 pictures: each
    verdict's colour, shape (None where nothing is drawn) and the scalar features it read."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, 'rgb')
        np.ascontiguousarray(rgb).tofile(path)
        out = subprocess.run([node, '--input-type=module', '-e', _JUDGE, judge_path or os.path.join(HERE, 'judge.mjs'),
                              os.path.join(HERE, 'eval-set', 'eval-set.json'),
                              json.dumps({'side': rgb.shape[1], 'count': rgb.shape[0]}), path],
                             capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def judge(rgb: np.ndarray, node: str = 'node') -> list[tuple[str | None, str | None]]:
    """judge.mjs on [N, S, S, 3] uint8 pictures: (colour, shape) each, None where nothing is drawn."""
    return [(v['colour'], v['shape']) for v in verdicts(rgb, node)]
