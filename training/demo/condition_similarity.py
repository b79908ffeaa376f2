"""What the VAR is told to draw: for each held-out pair, the training pairs whose drawing condition
is nearest, by cosine similarity.

The condition compared is the first image position's input to the VAR blocks (the LLM's final
hidden state there, through image_gen_projector_out), which alone decides the first scale, the
picture's overall colour. It reads the request "draw a {colour} {shape}" through the exported
model's own forward pass (the trainer's, float32).

Usage: python condition_similarity.py [MODEL_DIR]   (default: the shipped demo model)
"""
from __future__ import annotations

import os
import sys

import torch

import tokenizer as demo_tokenizer
import world
from export import load_exported
from train_joint import gen_prompt, make_config
from train_reward import image_inputs, llm_image_hidden

HERE = os.path.dirname(os.path.abspath(__file__))


@torch.no_grad()
def main():
    folder = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, '..', '..', 'models', 'vargpt-v1-demo')
    tok = demo_tokenizer.load()
    cfg = make_config(tok)
    model = load_exported(folder)
    L = sum(p * p for p in cfg.patch_nums)
    x = image_inputs(model, torch.zeros(1, L - 1, cfg.cvae))  # position 0 is the start token alone

    def condition(colour: str, shape: str):
        ids = tok.encode(gen_prompt(f'draw a {colour} {shape}')).ids + [cfg.gen_start]
        return model.image_gen_projector_out(llm_image_hidden(model, [ids], x, 1))[0, 0]

    seen = {pair: condition(*pair) for pair in world.TRAIN_PAIRS}
    for pair in world.HELD_OUT_PAIRS:
        v = condition(*pair)
        nearest = sorted(((torch.cosine_similarity(v, u, 0).item(), p) for p, u in seen.items()), reverse=True)[:4]
        print(' '.join(pair) + ':', ', '.join(f'{p[0]} {p[1]} {s:.3f}' for s, p in nearest))


if __name__ == '__main__':
    main()
