"""Stage 2: everything but the VQ-VAE, trained together on the two tasks the model serves.

- Drawing: "USER: {request} ASSISTANT:" <|image_gen_start|> then VAR's teacher-forced inputs for
  the image's scales (SOS, then word_embed of the area-downsampled running f_hat), projected into
  the LLM; the LLM's final hidden states at those positions go through image_gen_projector_out and
  the VAR blocks (block-causal), and VAR's head predicts each scale's codes (cross-entropy against
  the frozen VQ-VAE's codes of the scene). The LLM also learns to answer a request with
  <|image_gen_start|>.
- Classifier-free guidance: at inference the unconditional row feeds Gaussian noise to
  image_gen_projector_out in place of the LLM's hidden states (VARGPT v1's CFG). Here 10% of the
  drawing samples do exactly that, so the unconditional row predicts the average scene and
  guidance moves away from it.
- Understanding: "USER: <image>\n{question} ASSISTANT:" with the <image> placeholder expanded to one
  position per CLIP patch, features from the last CLIP layer (CLS dropped) through the LLaVA
  projector; cross-entropy on the answer and </s>.

Stage 5 runs the same drawing loss alone (--generator-only): the vision tower, the LLM and the
VQ-VAE are frozen, so reading is untouched; only image_gen_projector, image_gen_projector_out and
the VAR learn, and every sample of a step is a drawing.

Stage 7 is its mirror image (--reader-only): only the vision tower and the LLaVA projector learn,
on questions alone (and the tower's attribute losses), so the LLM and the drawing path, and with
them every drawing, stay exactly as they are.

--freeze-reader, --condition-loss (with --condition-positions), --early-weight, --partial-requests,
--extra-colours and --ask-batch 0 are the experiments recorded in README.md (the LLM trained again
with the drawing path; a loss on the drawing condition; the coarse scales' loss weighed up; drawings
in ten more colours; a model that only draws, from random weights), not in train.sh.
"""
from __future__ import annotations

import argparse
import os
import math
import random
import time
from typing import NamedTuple

import torch
import torch.nn.functional as F

import data
import tokenizer as demo_tokenizer
import world
from model import DemoConfig, DemoModel, clip_pixels, vae_pixels

UNCOND_RATE = 0.1
COLOUR_INDEX = {c: i for i, c in enumerate(world.COLOURS)}
SHAPE_INDEX = {s: i for i, s in enumerate(world.SHAPES)}


def make_config(tok) -> DemoConfig:
    cfg = DemoConfig()
    size = tok.get_vocab_size()
    cfg.vocab = (size + 63) // 64 * 64
    ids = {t: tok.token_to_id(t) for t in demo_tokenizer.SPECIAL}
    cfg.image_token, cfg.pad_token = ids['<image>'], ids['<pad>']
    cfg.gen_start, cfg.gen_end, cfg.gen_pad = ids['<|image_gen_start|>'], ids['<|image_gen_end|>'], ids['<|image_gen_pad|>']
    return cfg


def gen_prompt(request: str) -> str:
    return f'USER: {request} ASSISTANT:'


def ask_prompt(question: str) -> str:
    return f'USER: <image>\n{question} ASSISTANT:'


class Batcher:
    def __init__(self, tok, cfg: DemoConfig, seed: int, question_weights: dict[str, int] | None = None):
        self.tok, self.cfg = tok, cfg
        self.rng = random.Random(seed)
        self.question_weights = question_weights
        self.extra_seeds: list[int] = []  # set by extra_colour_seeds before draw_batch(extra=...)

    def draw_batch(self, n: int, partial: float = 0.0, extra: float = 0.0):
        """n drawing requests (token ids), their pictures, and the [n, 2] (colour, shape) indices
        each request names (-1 where it leaves one out, or names an extra colour). With
        probability `partial` a request names only the colour ("a yellow shape") or only the shape
        ("a square"); with probability `extra` the shape is in one of world.EXTRA_COLOURS."""
        scenes, prompts, attrs = [], [], []
        for _ in range(n):
            seed = self.rng.randrange(data.TRAIN_SEEDS)
            names = 'both'
            if partial > 0 and self.rng.random() < partial:
                names = self.rng.choice(('colour', 'shape'))
            pairs = world.TRAIN_PAIRS
            if extra > 0 and self.rng.random() < extra:
                pairs, seed = world.EXTRA_PAIRS, self.rng.choice(self.extra_seeds)
            scene, request = world.drawing_scene(seed, pairs, names)
            scenes.append(scene)
            prompts.append(self.tok.encode(gen_prompt(request)).ids + [self.cfg.gen_start])
            attrs.append((COLOUR_INDEX.get(scene.colour, -1) if names != 'shape' else -1,
                          SHAPE_INDEX[scene.shape] if names != 'colour' else -1))
        imgs = torch.from_numpy(__import__('numpy').stack([world.render(s) for s in scenes]))
        return prompts, imgs, torch.tensor(attrs)

    def ask_batch(self, n: int, unnamed: int = 0):
        """n questions about training pairs, then `unnamed` about shapes in unnamed colours."""
        ids, targets, imgs = [], [], []
        for i in range(n + unnamed):
            seed = self.rng.randrange(data.TRAIN_SEEDS)
            if i < n:
                scene, _kind, question, ans = world.qa_from_seed(seed, world.TRAIN_PAIRS, self.question_weights)
            else:
                scene, _kind, question, ans = world.unnamed_qa_from_seed(seed, self.question_weights)
            one = self.encode_question(scene, question, ans)
            ids.append(one[0])
            targets.append(one[1])
            imgs.append(one[2])
        return ids, targets, torch.from_numpy(__import__('numpy').stack(imgs))

    def encode_question(self, scene, question: str, ans: str):
        """(token ids with the image placeholder expanded, (answer start, answer ids), pixels)."""
        prompt = self.tok.encode(ask_prompt(question)).ids
        full = self.tok.encode(ask_prompt(question) + ' ' + ans).ids
        assert full[:len(prompt)] == prompt, (prompt, full)
        answer = full[len(prompt):] + [2]
        at = prompt.index(self.cfg.image_token)
        expanded = prompt[:at] + [self.cfg.image_token] * self.cfg.image_tokens + prompt[at + 1:]
        return expanded + answer, (len(expanded), answer), world.render(scene)


@torch.no_grad()
def extra_colour_seeds(vae, count: int, seed: int) -> list[int]:
    """Training seeds for extra-colour drawings: `count` seeds, less those whose picture the frozen
    VQ-VAE encodes to codes that judge.mjs reads, decoded, as a held-out pair (it turns a few mint
    and teal diamonds blue): a generator trained on them would be shown that pair's codes."""
    from judging import judge, to_rgb
    vae.eval()
    rng = random.Random(seed)
    seeds = [rng.randrange(data.TRAIN_SEEDS) for _ in range(count)]
    kept = []
    for at in range(0, count, 200):
        chunk = seeds[at:at + 200]
        pictures = torch.from_numpy(__import__('numpy').stack(
            [world.render(world.drawing_scene(s, world.EXTRA_PAIRS)[0]) for s in chunk]))
        decoded = to_rgb(vae.decode_indices(vae.encode_indices(vae_pixels(pictures))))
        kept += [s for s, (c, sh) in zip(chunk, judge(decoded)) if (c, sh) not in world.HELD_OUT]
    print(f'extra-colour seeds: {len(kept)} of {count} kept', flush=True)
    return kept


def pad(seqs, value):
    T = max(len(s) for s in seqs)
    out = torch.full((len(seqs), T), value, dtype=torch.long)
    mask = torch.zeros(len(seqs), T, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, :len(s)] = torch.tensor(s)
        mask[i, :len(s)] = 1
    return out, mask


def llm_over_image(model: DemoModel, prompts, x_img):
    """The LLM's final hidden states over each prompt followed by its image positions' inputs
    x_img [B, T, H] (then padding), and the prompts' lengths."""
    ids, _ = pad(prompts, model.cfg.pad_token)
    lens = [len(p) for p in prompts]
    T = x_img.shape[1]
    mask = torch.zeros(len(prompts), ids.shape[1] + T, dtype=torch.long)
    tok_emb = model.embed(ids)
    rows = []
    for i, n in enumerate(lens):  # prompt, then the image tokens, then padding
        rows.append(torch.cat((tok_emb[i, :n], x_img[i], tok_emb[i, n:]), 0))
        mask[i, :n + T] = 1
    return model.llm_hidden(torch.stack(rows), mask), lens


class ConditionHeads(torch.nn.Module):
    """Linear colour and shape classifiers on the VAR's input at the first `positions` image
    positions (the LLM's hidden states there through image_gen_projector_out; one set of heads for
    all), used only in training, never exported. One linear read-out of colour shared by every
    shape (and of shape by every colour) asks the LLM to say each attribute the same way whatever
    it is paired with, which is what a request for an unseen pair needs."""

    def __init__(self, width: int, positions: int = 1):
        super().__init__()
        self.positions = positions  # how many image positions, from the first, the heads read
        self.colour = torch.nn.Linear(width, len(COLOUR_INDEX))
        self.shape = torch.nn.Linear(width, len(SHAPE_INDEX))

    def loss(self, condition, attrs):
        """Cross-entropy of each named attribute (attrs [B, 2], -1 where not named)."""
        total = condition.new_zeros(())
        for head, labels in ((self.colour, attrs[:, 0]), (self.shape, attrs[:, 1])):
            named = labels >= 0
            if named.any():
                total = total + F.cross_entropy(head(condition[named]).float(), labels[named])
        return total


class DrawLoss(NamedTuple):
    var: torch.Tensor
    start: torch.Tensor
    acc_first: float
    acc_all: float
    condition: torch.Tensor  # ConditionHeads' loss (zero without heads)


def draw_loss(model: DemoModel, prompts, imgs, gen: torch.Generator, heads: ConditionHeads | None = None,
              attrs: torch.Tensor | None = None, early_weight: float = 1.0, early_tokens: int = 5) -> DrawLoss:
    cfg = model.cfg
    vae = model.vae_local
    with torch.no_grad():
        indices = vae.encode_indices(vae_pixels(imgs))
        teacher = vae.quantize.teacher_inputs(indices, vae.final)
    target = torch.cat(indices, 1)  # [B, L]
    var = model.vargpt_gen
    x_img = model.image_gen_projector(var.inputs(teacher))  # [B, L, H]
    B, L = target.shape
    hidden, lens = llm_over_image(model, prompts, x_img)
    h_img = torch.stack([hidden[i, n:n + L] for i, n in enumerate(lens)])
    uncond = torch.rand(B, generator=gen) < UNCOND_RATE
    if uncond.any():
        noise = torch.randn(B, L, cfg.llm_hidden, generator=gen)
        h_img = torch.where(uncond.view(B, 1, 1), noise, h_img)
    var_in = model.image_gen_projector_out(h_img)
    logits = var.decode(var_in)
    condition_loss = torch.zeros(())
    if heads is not None:
        keep = ~uncond
        P = heads.positions
        condition_loss = heads.loss(var_in[keep, :P].reshape(-1, var_in.shape[-1]),
                                    attrs[keep].repeat_interleave(P, 0))
    per_token = F.cross_entropy(logits.reshape(B * L, -1), target.reshape(-1), reduction='none').view(B, L)
    if early_weight != 1.0:
        per_token = torch.cat([per_token[:, :early_tokens] * early_weight, per_token[:, early_tokens:]], 1)
    var_loss = per_token.mean()
    # The LLM answers a drawing request with <|image_gen_start|>: predicted at the last prompt token.
    last = torch.stack([hidden[i, n - 2] for i, n in enumerate(lens)])
    start_loss = F.cross_entropy(model.logits(last), torch.full((B,), cfg.gen_start))
    with torch.no_grad():
        acc = (logits.argmax(-1) == target).float()
        first_scales = acc[:, :30].mean().item()
    return DrawLoss(var_loss, start_loss, first_scales, acc.mean().item(), condition_loss)


def ask_loss(model: DemoModel, ids, targets, imgs):
    cfg = model.cfg
    tokens, mask = pad(ids, cfg.pad_token)
    embeds = model.embed(tokens)
    feats = model.image_features(clip_pixels(imgs))  # [B, P, H]
    is_img = tokens == cfg.image_token
    embeds = embeds.masked_scatter(is_img.unsqueeze(-1), feats.to(embeds.dtype))
    hidden = model.llm_hidden(embeds, mask)
    logits_list, labels = [], []
    for i, (start, answer) in enumerate(targets):
        logits_list.append(hidden[i, start - 1:start - 1 + len(answer)])
        labels.extend(answer)
    logits = model.logits(torch.cat(logits_list, 0))
    labels = torch.tensor(labels)
    loss = F.cross_entropy(logits, labels)
    with torch.no_grad():
        ok = [bool((model.logits(hidden[i, s - 1:s - 1 + len(a)]).argmax(-1) == torch.tensor(a)).all())
              for i, (s, a) in enumerate(targets)]
    return loss, sum(ok) / len(ok)


PROBE_SEED_BASE = data.EVAL_SEED_BASE + 50_000  # held-out probes; eval-set/ uses +0..+7000


def answer_rate(model: DemoModel, batcher: Batcher, pairs, kind: str, seeds) -> float:
    """Exact-answer rate on one question of `kind` per seed, about a scene of `pairs` (position is
    asked about single shapes, count about one to three)."""
    ids, targets, imgs = [], [], []
    for seed in seeds:
        scene = world.scene_from_seed(seed, pairs, multi=(kind == 'count'))
        one = batcher.encode_question(scene, random.Random(seed).choice(world.QUESTIONS[kind]), world.answer(scene, kind))
        ids.append(one[0]), targets.append(one[1]), imgs.append(one[2])
    with torch.no_grad():
        return ask_loss(model, ids, targets, torch.from_numpy(__import__('numpy').stack(imgs)))[1]


def heldout_probe(model, tok, cfg, per_kind: int = 40) -> dict[str, float]:
    """Exact-answer rates by kind on held-out-pair questions (a measurement, never trained on)."""
    model.eval()
    b = Batcher(tok, cfg, 0)
    rates = {kind: answer_rate(model, b, world.HELD_OUT_PAIRS, kind, range(PROBE_SEED_BASE + 1000 * n, PROBE_SEED_BASE + 1000 * n + per_kind))
             for n, kind in enumerate(('shape', 'colour', 'count', 'position'))}
    model.train()
    model.vae_local.eval()
    return rates


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--vqvae', help='the frozen VQ-VAE (required unless --init-from, whose own is used by default)')
    ap.add_argument('--out', required=True)
    ap.add_argument('--resume')
    ap.add_argument('--minutes', type=float, default=60)
    ap.add_argument('--steps', type=int, default=4000, help='length of the learning-rate schedule')
    ap.add_argument('--draw-batch', type=int, default=12)
    ap.add_argument('--ask-batch', type=int, default=12)
    ap.add_argument('--lr', type=float, default=1e-3)
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--question-weights', default='',
                    help='kind=N,...: ask that kind of question N times as often (e.g. shape=3)')
    ap.add_argument('--unnamed', type=int, default=0,
                    help='questions per step about shapes in unnamed colours (world.unnamed_qa_from_seed)')
    ap.add_argument('--vision', help='put in the vision tower trained by train_vision.py, and keep its attribute losses on '
                                     '(--reader-only keeps them on from fresh heads without it)')
    ap.add_argument('--vision-batch', type=int, default=32, help='images per step for those attribute losses')
    ap.add_argument('--init-from', help='start from an exported model folder (export.py) instead of --resume')
    ap.add_argument('--generator-only', action='store_true',
                    help='train only the drawing path after the LLM (image_gen_projector, image_gen_projector_out, '
                         'the VAR), on drawing samples alone: reading, and the LLM, stay exactly as they are')
    ap.add_argument('--reader-only', action='store_true',
                    help='train only the vision tower and the LLaVA projector, on questions alone: the LLM '
                         'and the drawing path, and so every drawing, stay exactly as they are')
    ap.add_argument('--freeze-reader', action='store_true',
                    help='keep the vision tower and the LLaVA projector as they are (the LLM and the drawing path learn)')
    ap.add_argument('--condition-loss', type=float, default=0.0,
                    help='weight of ConditionHeads: colour and shape read linearly from the VAR input at the first --condition-positions image positions')
    ap.add_argument('--condition-positions', type=int, default=1,
                    help='the heads read this many image positions from the first (one set of heads for all)')
    ap.add_argument('--early-weight', type=float, default=1.0,
                    help='weight of the first --early-tokens image tokens\' loss (the others weigh 1)')
    ap.add_argument('--early-tokens', type=int, default=5, help='1 + 4: the 1x1 and 2x2 scales')
    ap.add_argument('--partial-requests', type=float, default=0.0,
                    help='share of drawing requests that name only the colour or only the shape')
    ap.add_argument('--extra-colours', type=float, default=0.0,
                    help='share of drawing requests for a shape in one of world.EXTRA_COLOURS (needs the LLM to learn: '
                         'not with --generator-only)')
    ap.add_argument('--extra-seeds', type=int, default=3000, help='the pool extra_colour_seeds draws from')
    a = ap.parse_args()
    if a.generator_only and a.reader_only:
        ap.error('--generator-only and --reader-only train disjoint parts: choose one')
    if a.extra_colours > 0 and (a.generator_only or a.reader_only):
        ap.error('--extra-colours names colours only a learning LLM can read')
    if a.freeze_reader and a.reader_only:
        ap.error('--freeze-reader freezes what --reader-only trains')
    question_weights = {k: int(v) for k, v in (kv.split('=') for kv in a.question_weights.split(',') if kv)}
    torch.manual_seed(a.seed)
    tok = demo_tokenizer.load(a.extra_colours > 0)
    cfg = make_config(tok)
    model = DemoModel(cfg)
    if a.init_from:
        from export import load_exported
        model.load_state_dict(load_exported(a.init_from).state_dict())
    if a.vqvae:
        model.vae_local.load_state_dict(torch.load(a.vqvae))
    elif not a.init_from:
        ap.error('--vqvae is required without --init-from')
    model.vae_local.requires_grad_(False)
    if a.generator_only:
        model.requires_grad_(False)
        for part in (model.image_gen_projector, model.image_gen_projector_out, model.vargpt_gen):
            part.requires_grad_(True)
    if a.reader_only:
        model.requires_grad_(False)
        for part in (model.vision_tower, model.multi_modal_projector):
            part.requires_grad_(True)
    if a.freeze_reader:
        for part in (model.vision_tower, model.multi_modal_projector):
            part.requires_grad_(False)
    start_step = 0
    if a.resume:
        state = torch.load(a.resume)
        model.load_state_dict(state['model'])
        start_step = state['step']
    heads = None
    if a.vision:
        from train_vision import AttributeHeads
        vision = torch.load(a.vision)
        own = model.state_dict()
        for k, v in vision['model'].items():
            own[k].copy_(v)
        heads = AttributeHeads(cfg.vis_hidden)
        heads.load_state_dict(vision['heads'])
    if a.reader_only and heads is None:
        # The tower learns beside its attribute losses here too, from fresh heads on its CLS output
        # (train_vision.py's; never exported): they name shapes apart from colours directly.
        from train_vision import AttributeHeads
        heads = AttributeHeads(cfg.vis_hidden)
    params = [p for p in model.parameters() if p.requires_grad]
    if heads is not None:
        params += list(heads.parameters())
    condition_heads = ConditionHeads(cfg.var_width, a.condition_positions) if a.condition_loss > 0 else None
    if condition_heads is not None:
        params += list(condition_heads.parameters())
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    opt = torch.optim.AdamW([{'params': decay, 'weight_decay': 0.05}, {'params': no_decay, 'weight_decay': 0.0}],
                            lr=a.lr, betas=(0.9, 0.95))
    if a.resume and 'opt' in state and heads is None and not a.generator_only:  # (--reader-only always has heads)
        opt.load_state_dict(state['opt'])
    warmup = 150
    sched = lambda s: min(1.0, (s + 1) / warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, s / a.steps))))
    batcher = Batcher(tok, cfg, a.seed + start_step, question_weights)
    if a.extra_colours > 0:
        batcher.extra_seeds = extra_colour_seeds(model.vae_local, a.extra_seeds, a.seed)
    gen = torch.Generator().manual_seed(a.seed + 1 + start_step)
    model.train()
    model.vae_local.eval()
    print('parameters', sum(p.numel() for p in params), flush=True)
    t0 = time.time()
    step = start_step
    while step < a.steps and time.time() - t0 < a.minutes * 60:
        for g in opt.param_groups:
            g['lr'] = a.lr * sched(step)
        # bf16 matmuls (2.7x the f32 rate on AVX512-BF16 CPUs), f32 weights, optimizer and losses.
        with torch.autocast('cpu', dtype=torch.bfloat16):
            if a.reader_only:  # nothing on the drawing path learns
                var_loss, start_loss, acc_first, acc_all = torch.zeros(()), torch.zeros(()), float('nan'), float('nan')
                condition_loss = torch.zeros(())
            else:
                prompts, dimgs, attrs = batcher.draw_batch(a.draw_batch, a.partial_requests, a.extra_colours)
                var_loss, start_loss, acc_first, acc_all, condition_loss = draw_loss(model, prompts, dimgs, gen,
                                                                                     condition_heads, attrs,
                                                                                     a.early_weight, a.early_tokens)
            if a.generator_only:  # the LLM is frozen: its start-token loss has nothing to train
                start_loss, qa_loss, qa_acc = torch.zeros(()), torch.zeros(()), float('nan')
            elif a.ask_batch + a.unnamed == 0:  # drawing alone, the LLM learning with it
                qa_loss, qa_acc = torch.zeros(()), float('nan')
            else:
                ids, targets, aimgs = batcher.ask_batch(a.ask_batch, a.unnamed)
                qa_loss, qa_acc = ask_loss(model, ids, targets, aimgs)
            vision_loss = torch.zeros(())
            if heads is not None:
                from train_vision import attribute_batch, cls_features
                pixels, labels = attribute_batch(batcher.rng, a.vision_batch)
                vision_loss = sum(heads.losses(cls_features(model.vision_tower, pixels), labels).values())
        loss = var_loss + start_loss + qa_loss + vision_loss + a.condition_loss * condition_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 2.0)
        opt.step()
        step += 1
        if step % 25 == 0:
            print(f'step {step} var {var_loss.item():.3f} (acc first30 {acc_first:.2f} all {acc_all:.2f}) '
                  f'start {start_loss.item():.3f} condition {condition_loss.item():.3f} qa {qa_loss.item():.3f} (exact {qa_acc:.2f}) vision {vision_loss.item():.3f} '
                  f'lr {a.lr * sched(step):.2e} {time.time() - t0:.0f}s', flush=True)
        if step % 200 == 0:
            torch.save({'model': model.state_dict(), 'opt': opt.state_dict(), 'step': step}, a.out)
            if heads is not None:
                print(f'step {step} held-out probe {heldout_probe(model, tok, cfg)}', flush=True)
    if step < a.steps:
        print(f'stopped by the {a.minutes} minute cap after step {step} of {a.steps}', flush=True)
    torch.save({'model': model.state_dict(), 'opt': opt.state_dict(), 'step': step}, a.out)
    print('saved', a.out, 'at step', step, flush=True)


if __name__ == '__main__':
    # Two threads by default (the 2-core machine this was made on); DEMO_THREADS=1 runs two stages
    # side by side without oversubscribing the cores, which slows PyTorch several-fold.
    torch.set_num_threads(int(os.environ.get('DEMO_THREADS', '2')))
    main()
