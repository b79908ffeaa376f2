"""The drawing path trained on its own drawings, rewarded by the pixel judge: an experiment after
stage 7, not part of train.sh. It raised the seen pairs it was rewarded on and not the held-out
ones (README.md, stage 6's "tried and not kept"), so the shipped model does not use it.

Every earlier stage teaches the generator to predict the world's codes from the true codes before
them (teacher forcing). What the evaluation asks is different: that a whole drawing, sampled scale
by scale with classifier-free guidance as the runtime samples it, comes out in the requested colour
and shape. Here each step samples G drawings per request exactly that way (guidance ramp, top-p),
decodes them with the frozen VQ-VAE, judges them with judge.mjs (the evaluation's own checker) and
takes a policy-gradient step on the guided log-probabilities of the sampled codes, each drawing
weighted by its reward minus the mean reward of its request's group (no learned baseline, as in
GRPO). Requests come from training pairs only: the held-out pairs are never drawn or judged here.

The teacher-forced loss on the world's own pictures stays on beside it (--anchor drawings per
step), so the generator keeps the distribution it learned while its sampled mistakes are pushed
down. Only image_gen_projector, image_gen_projector_out and the VAR learn; reading is untouched.

Usage: python train_reward.py --init-from MODEL_DIR --out STATE.pt [--steps 300] [--requests 4 --group 8]
"""
from __future__ import annotations

import argparse
import math
import os
import random
import time

import torch

import data
import tokenizer as demo_tokenizer
import world
from export import load_exported
from judging import judge, to_rgb
from model import DemoModel
from train_joint import Batcher, draw_loss, gen_prompt, llm_over_image, make_config


def image_inputs(model: DemoModel, teacher):
    """The L image positions' LLM inputs from VAR's inputs for scales 1.. ([B, L - 1, Cvae])."""
    return model.image_gen_projector(model.vargpt_gen.inputs(teacher))


def llm_image_hidden(model: DemoModel, prompts, x_img, upto: int):
    """The LLM's final hidden states at the first `upto` image positions, after each prompt."""
    hidden, lens = llm_over_image(model, prompts, x_img[:, :upto])
    return torch.stack([hidden[i, n:n + upto] for i, n in enumerate(lens)])


def var_logits(model: DemoModel, h):
    """VAR's logits for the positions of h [B, T, H] (LLM-width rows), T <= L."""
    return model.vargpt_gen.decode(model.image_gen_projector_out(h))


def guided(cond, uncond, si: int, scales: int, cfg_scale: float):
    t = cfg_scale * si / (scales - 1) if scales > 1 else 0.0
    return (1 + t) * cond - t * uncond


def top_p_sample(logits, top_p: float, gen: torch.Generator):
    """[N, V] -> [N]: the smallest set of codes whose probability reaches top_p, renormalised."""
    probs = logits.float().softmax(-1)
    sorted_p, order = probs.sort(-1, descending=True)
    keep = sorted_p.cumsum(-1) - sorted_p < top_p  # always keeps the first
    sorted_p = torch.where(keep, sorted_p, torch.zeros_like(sorted_p))
    pick = torch.multinomial(sorted_p, 1, generator=gen)
    return order.gather(-1, pick).squeeze(-1)


@torch.no_grad()
def sample_drawings(model: DemoModel, prompts, noise, cfg_scale: float, top_p: float, gen: torch.Generator,
                    prefix=()):
    """Draws as the runtime does (scale by scale, CFG on raw logits with the linear ramp, top-p);
    the unconditional row is VAR on `noise` in place of the LLM's states. Returns per-scale codes.
    `prefix` fixes the first len(prefix) scales' codes ([B, pn*pn] each) instead of sampling them."""
    cfg = model.cfg
    vae = model.vae_local
    pns = cfg.patch_nums
    B = len(prompts)
    L = sum(p * p for p in pns)
    uncond = var_logits(model, noise)
    indices = []
    teacher = torch.zeros(B, L - 1, cfg.cvae)  # inputs of scales not yet sampled stay zero (unseen)
    start = 0
    for si, pn in enumerate(pns):
        end = start + pn * pn
        if si > 0:
            teacher[:, :end - 1] = vae.quantize.teacher_inputs(indices, vae.final)
        if si < len(prefix):
            indices.append(prefix[si])
            start = end
            continue
        x_img = image_inputs(model, teacher)
        h = llm_image_hidden(model, prompts, x_img, end)
        cond = var_logits(model, h)[:, start:end]
        logits = guided(cond, uncond[:, start:end], si, len(pns), cfg_scale)
        indices.append(top_p_sample(logits.reshape(B * pn * pn, -1), top_p, gen).view(B, pn * pn))
        start = end
    return indices


def guided_logprob(model: DemoModel, prompts, noise, indices, cfg_scale: float):
    """Σ over positions of log p(code) under the guided distribution (before top-p), per drawing,
    teacher-forced on the sampled codes: [B]; and the per-position entropy's mean."""
    cfg = model.cfg
    vae = model.vae_local
    pns = cfg.patch_nums
    L = sum(p * p for p in pns)
    with torch.no_grad():
        teacher = vae.quantize.teacher_inputs(indices, vae.final)
    h = llm_image_hidden(model, prompts, image_inputs(model, teacher), L)
    cond = var_logits(model, h)
    uncond = var_logits(model, noise)
    parts, start = [], 0
    for si, pn in enumerate(pns):
        end = start + pn * pn
        parts.append(guided(cond[:, start:end], uncond[:, start:end], si, len(pns), cfg_scale))
        start = end
    logp = torch.cat(parts, 1).float().log_softmax(-1)
    target = torch.cat(indices, 1)
    chosen = logp.gather(-1, target.unsqueeze(-1)).squeeze(-1)
    entropy = -(logp.exp() * logp).sum(-1).mean()
    return chosen.sum(1), entropy


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--init-from', required=True, help='an exported model folder (export.py)')
    ap.add_argument('--out', required=True)
    ap.add_argument('--steps', type=int, default=300, help='length of the learning-rate schedule')
    ap.add_argument('--minutes', type=float, default=120)
    ap.add_argument('--requests', type=int, default=4, help='training-pair requests per step')
    ap.add_argument('--group', type=int, default=8, help='drawings sampled per request')
    ap.add_argument('--anchor', type=int, default=12, help='teacher-forced drawings per step beside them')
    ap.add_argument('--lr', type=float, default=1e-4)
    ap.add_argument('--cfg', type=float, default=3.0, help='guidance scale (the shipped default)')
    ap.add_argument('--top-p', type=float, default=0.96, help='as the runtime samples images by default')
    ap.add_argument('--seed', type=int, default=8)
    ap.add_argument('--node', default='node')
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    tok = demo_tokenizer.load()
    cfg = make_config(tok)
    model = DemoModel(cfg)
    model.load_state_dict(load_exported(a.init_from).state_dict())
    model.requires_grad_(False)
    for part in (model.image_gen_projector, model.image_gen_projector_out, model.vargpt_gen):
        part.requires_grad_(True)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW([{'params': [p for p in params if p.dim() >= 2], 'weight_decay': 0.05},
                             {'params': [p for p in params if p.dim() < 2], 'weight_decay': 0.0}],
                            lr=a.lr, betas=(0.9, 0.95))
    warmup = 20
    sched = lambda s: min(1.0, (s + 1) / warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, s / a.steps))))
    rng = random.Random(a.seed)
    batcher = Batcher(tok, cfg, a.seed + 1)
    gen = torch.Generator().manual_seed(a.seed + 2)
    L = sum(p * p for p in cfg.patch_nums)
    model.train()
    model.vae_local.eval()
    print('parameters', sum(p.numel() for p in params), flush=True)
    t0 = time.time()
    step = 0
    recent: list[float] = []
    while step < a.steps and time.time() - t0 < a.minutes * 60:
        for g in opt.param_groups:
            g['lr'] = a.lr * sched(step)
        wants, prompts = [], []
        for _ in range(a.requests):
            scene, request = world.drawing_scene(rng.randrange(data.TRAIN_SEEDS), world.TRAIN_PAIRS)
            ids = tok.encode(gen_prompt(request)).ids + [cfg.gen_start]
            for _ in range(a.group):
                wants.append((scene.colour, scene.shape))
                prompts.append(ids)
        noise = torch.randn(len(prompts), L, cfg.llm_hidden, generator=gen)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            model.eval()
            indices = sample_drawings(model, prompts, noise, a.cfg, a.top_p, gen)
            model.train()
        with torch.no_grad():
            verdicts = judge(to_rgb(model.vae_local.decode_indices(indices)), a.node)
        reward = torch.tensor([0.5 * (c == w[0]) + 0.5 * (s == w[1]) for (c, s), w in zip(verdicts, wants)])
        right = sum(c == w[0] and s == w[1] for (c, s), w in zip(verdicts, wants)) / len(wants)
        advantage = reward - reward.view(a.requests, a.group).mean(1, keepdim=True).expand(-1, a.group).reshape(-1)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            logp, entropy = guided_logprob(model, prompts, noise, indices, a.cfg)
            pg_loss = -(advantage * logp).mean() / L
            anchor_loss = torch.zeros(())
            if a.anchor > 0:
                aprompts, aimgs, _ = batcher.draw_batch(a.anchor)
                anchor_loss = draw_loss(model, aprompts, aimgs, gen)[0]
        loss = pg_loss + anchor_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 2.0)
        opt.step()
        step += 1
        recent = (recent + [right])[-25:]
        if step % 5 == 0:
            print(f'step {step} sampled right {right:.2f} (last 25 steps {sum(recent) / len(recent):.3f}) '
                  f'reward {reward.mean():.3f} pg {pg_loss.item():+.4f} anchor {anchor_loss.item():.3f} '
                  f'entropy {entropy.item():.3f} lr {a.lr * sched(step):.2e} {time.time() - t0:.0f}s', flush=True)
        if step % 50 == 0:
            torch.save({'model': model.state_dict(), 'step': step}, a.out)
    if step < a.steps:
        print(f'stopped by the {a.minutes} minute cap after step {step} of {a.steps}', flush=True)
    torch.save({'model': model.state_dict(), 'step': step}, a.out)
    print('saved', a.out, 'at step', step, flush=True)


if __name__ == '__main__':
    torch.set_num_threads(int(os.environ.get('DEMO_THREADS', '2')))
    main()
