"""Checks that the runtime computes what the trainer computes, on the exported checkpoint.

Writes the trainer's own forward passes (float32, no autocast) for one question about a scene and
one drawing replayed from the scene's codes and fixed noise, then runs check_runtime.mjs, which
loads the exported folder through the package's public API with trace and replay and compares:

- the tokenizer: the package's ids for both prompts equal the training ids;
- understanding: the prefill's last-position logits;
- drawing: per scale, the conditional and unconditional VAR logits (the unconditional row is fed
  the same Gaussian rows), and the decoded image.

Usage: python check_runtime.py --checkpoint joint.pt --work DIR  (exit status 1 on a mismatch)
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import numpy as np
import torch

import tokenizer as demo_tokenizer
import world
from export import load_trained, write_folder
from model import clip_pixels, vae_pixels
from train_joint import ask_prompt, gen_prompt

HERE = os.path.dirname(os.path.abspath(__file__))


def save(work: str, name: str, t: torch.Tensor) -> dict:
    arr = t.detach().to(torch.float32).contiguous().numpy()
    arr.tofile(os.path.join(work, name + '.f32'))
    return {'file': name + '.f32', 'shape': list(arr.shape)}


@torch.no_grad()
def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--checkpoint', required=True)
    ap.add_argument('--work', required=True)
    ap.add_argument('--vqvae', help='as export.py --vqvae')
    ap.add_argument('--node', default='node')
    a = ap.parse_args()
    torch.set_num_threads(2)
    model = load_trained(a.checkpoint, a.vqvae)
    cfg = model.cfg
    folder = os.path.join(a.work, 'model')
    write_folder(model, folder, 'float32', {'max_new_tokens': 32})
    tok = demo_tokenizer.load()
    out = {'model': folder, 'tensors': {}}

    # Understanding: a held-out scene, one question.
    scene, _kind, question, _answer = world.qa_from_seed(12345, world.HELD_OUT_PAIRS)
    image = world.render(scene)
    from PIL import Image
    Image.fromarray(image).save(os.path.join(a.work, 'ask.png'))
    prompt = tok.encode(ask_prompt(question)).ids
    at = prompt.index(cfg.image_token)
    ids = prompt[:at] + [cfg.image_token] * cfg.image_tokens + prompt[at + 1:]
    tokens = torch.tensor([ids])
    embeds = model.embed(tokens)
    feats = model.image_features(clip_pixels(torch.from_numpy(image)[None]))
    embeds = embeds.masked_scatter((tokens == cfg.image_token).unsqueeze(-1), feats)
    hidden = model.llm_hidden(embeds)
    out['ask'] = {'question': question, 'image': os.path.join(a.work, 'ask.png'), 'prompt': ask_prompt(question),
                  'prompt_ids': prompt}
    out['tensors']['ask.prefillLogits'] = save(a.work, 'ask_logits', model.logits(hidden[0, -1]))

    # Drawing: the codes of a held-out scene, replayed, with seeded Gaussian rows for the
    # unconditional branch.
    scene, request = world.drawing_scene(777, world.HELD_OUT_PAIRS)
    img = torch.from_numpy(world.render(scene))[None]
    vae = model.vae_local
    indices = vae.encode_indices(vae_pixels(img))
    teacher = vae.quantize.teacher_inputs(indices, vae.final)
    var = model.vargpt_gen
    x_img = model.image_gen_projector(var.inputs(teacher))
    p_ids = tok.encode(gen_prompt(request)).ids + [cfg.gen_start]
    seq = torch.cat((model.embed(torch.tensor([p_ids])), x_img), 1)
    h = model.llm_hidden(seq)[:, len(p_ids):]
    g = torch.Generator().manual_seed(5)
    noise = torch.randn(1, var.L, cfg.llm_hidden, generator=g)
    cond = var.decode(model.image_gen_projector_out(h))[0]
    uncond = var.decode(model.image_gen_projector_out(noise))[0]
    decoded = vae.decode_indices(indices)[0]
    out['draw'] = {'prompt': request, 'prompt_text': gen_prompt(request), 'input_ids': p_ids, 'indices': [i[0].tolist() for i in indices],
                   'noise': save(a.work, 'noise', noise[0])}
    begin = 0
    for si, pn in enumerate(cfg.patch_nums):
        end = begin + pn * pn
        out['tensors'][f's{si}.logitsCond'] = save(a.work, f's{si}_cond', cond[begin:end])
        out['tensors'][f's{si}.logitsUncond'] = save(a.work, f's{si}_uncond', uncond[begin:end])
        begin = end
    out['tensors']['image'] = save(a.work, 'image', decoded)
    with open(os.path.join(a.work, 'expected.json'), 'w') as f:
        json.dump(out, f)
    r = subprocess.run([a.node, os.path.join(HERE, 'check_runtime.mjs'), os.path.join(a.work, 'expected.json')])
    sys.exit(r.returncode)


if __name__ == '__main__':
    main()
