"""Stage 1: the multi-scale VQ-VAE, trained on the world's images (held-out pairs excluded).

The first steps decode the encoder's features unquantized, so the autoencoder learns before the
codebook constrains it. Loss: L2 + 0.2 L1 reconstruction, shapes weighted 5x (shape_weights), +
VAR's residual-quantization loss (beta 0.25), + optionally the error of each picture's mean shape
colour (colour_error; stage 6). Codes unused over the last 100 steps are restarted on random
encoder features, so the whole codebook stays in use.
"""
from __future__ import annotations

import argparse
import math
import os
import time

import torch
import torch.nn.functional as F

import data
import world
from model import DemoConfig, VqVae, vae_pixels


def shape_mask(x):
    """[B, 1, H, W]: 1 on the shapes (pixels away from the border's median colour), 0 elsewhere."""
    B = x.shape[0]
    border = torch.cat((x[:, :, 0], x[:, :, -1], x[:, :, :, 0], x[:, :, :, -1]), 2)  # [B, 3, 4 * side]
    bg = border.median(2).values.view(B, 3, 1, 1)
    return ((x - bg).abs().sum(1, keepdim=True) > 0.15).float()


def shape_weights(mask, weight: float = 5.0):
    """Per-pixel loss weights: the shapes count `weight` times the background. Shapes cover a tenth
    of the image; unweighted, the autoencoder learns the backgrounds first and for a long time draws
    every shape in one average colour."""
    return 1.0 + (weight - 1.0) * mask


def colour_error(rec, x, mask):
    """Squared error of each picture's mean colour over its shapes, averaged over the batch. The
    judge names a drawing's colour from its shape's dominant colour (its first version: the mean),
    and a per-pixel loss spread over a shape's edges lets a whole shape drift between neighbouring
    named colours (yellow to orange, blue to purple)."""
    area = mask.sum((2, 3)).clamp(min=1.0)
    return ((((rec - x) * mask).sum((2, 3)) / area) ** 2).mean()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--out', required=True)
    ap.add_argument('--steps', type=int, default=3000)
    ap.add_argument('--minutes', type=float, default=20)
    ap.add_argument('--batch', type=int, default=16)
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--restart-until', type=int, default=2400,
                    help='restart unused codes every 100 steps up to this step (not after, so they settle)')
    ap.add_argument('--lr', type=float, default=2e-3)
    ap.add_argument('--ae-warmup', type=int, default=100, help='steps that decode the features unquantized first')
    ap.add_argument('--decoder-only', action='store_true',
                    help='with --resume: train only post_quant_conv and the decoder, so the codes (and a '
                         'generator trained on them) stay valid')
    ap.add_argument('--resume', help='continue from this state dict, or from the VQ-VAE of this exported model folder')
    ap.add_argument('--schedule', choices=('constant', 'cosine'), default='constant',
                    help='learning rate after the 50 warm-up steps: constant, or a cosine decay to 5%% at --steps')
    ap.add_argument('--colour-loss', type=float, default=0.0,
                    help="weight of the squared error of each picture's mean shape colour (colour_error)")
    ap.add_argument('--extra-colours', type=float, default=0.0,
                    help='share of each batch painted in world.EXTRA_COLOURS (a single shape each)')
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    cfg = DemoConfig()
    vae = VqVae(cfg)
    if a.resume:
        from export import load_vqvae_state
        vae.load_state_dict(load_vqvae_state(a.resume))
    trained = vae.parameters()
    if a.decoder_only:
        vae.requires_grad_(False)
        vae.decoder.requires_grad_(True)
        vae.post_quant_conv.requires_grad_(True)
        trained = [p for p in vae.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trained, lr=a.lr, weight_decay=0.0, betas=(0.9, 0.95))
    used = torch.zeros(cfg.codebook)
    gen = torch.Generator().manual_seed(a.seed + (1 if a.resume else 0))
    t0 = time.time()
    for step in range(a.steps):
        seeds = torch.randint(0, data.TRAIN_SEEDS, (a.batch,), generator=gen)
        n_extra = round(a.batch * a.extra_colours)
        pictures = data.images(seeds[n_extra:].tolist())
        if n_extra:
            pictures = torch.cat((data.images(seeds[:n_extra].tolist(), world.EXTRA_PAIRS, multi=False), pictures))
        x = vae_pixels(pictures)
        mask = shape_mask(x)
        weights = shape_weights(mask)
        decay = 1.0 if a.schedule == 'constant' else 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * step / a.steps))
        for g in opt.param_groups:
            g['lr'] = a.lr * min(1.0, (step + 1) / 50) * decay
        # bf16 convolutions (faster on AVX512-BF16), f32 weights and losses.
        with torch.autocast('cpu', dtype=torch.bfloat16):
            if a.decoder_only:
                with torch.no_grad():
                    indices = vae.encode_indices(x)
                    f_hat = vae.quantize.fhat_from_indices(indices, vae.final)
                rec, vq_loss = vae.decode_fhat(f_hat), torch.zeros(())
            elif step < a.ae_warmup and not a.resume:
                f = vae.features(x)
                _, vq_loss, indices = vae.quantize(f.float())
                rec = vae.decode_fhat(f)
            else:
                rec, vq_loss, indices = vae(x)
        rec = rec.float()
        err = (rec - x) ** 2 + 0.2 * (rec - x).abs()
        loss = (err * weights).sum() / weights.sum() / 3 + vq_loss
        if a.colour_loss:
            loss = loss + a.colour_loss * colour_error(rec, x, mask)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        for idx in indices:
            used.index_add_(0, idx.flatten(), torch.ones(idx.numel()))
        if step % 100 == 99:
            dead = (used == 0).nonzero().flatten()
            if len(dead) and step < a.restart_until and not a.decoder_only:
                with torch.no_grad():
                    f = vae.features(x).permute(0, 2, 3, 1).reshape(-1, cfg.cvae)
                    pick = torch.randint(0, f.shape[0], (len(dead),), generator=gen)
                    vae.quantize.embedding.weight[dead] = f[pick] + 0.01 * torch.randn(len(dead), cfg.cvae, generator=gen)
            psnr = 10 * torch.log10(4 / F.mse_loss(rec.clamp(-1, 1), x)).item()
            print(f'step {step + 1} loss {loss.item():.4f} vq {vq_loss.item():.4f} psnr {psnr:.1f} dB '
                  f'dead {len(dead)} {time.time() - t0:.0f}s', flush=True)
            used.zero_()
            torch.save(vae.state_dict(), a.out)
        if time.time() - t0 > a.minutes * 60:
            print(f'stopped by the {a.minutes} minute cap after step {step + 1} of {a.steps}', flush=True)
            break
    torch.save(vae.state_dict(), a.out)
    print('saved', a.out, flush=True)


if __name__ == '__main__':
    # Two threads by default (the 2-core machine this was made on); DEMO_THREADS=1 runs two stages
    # side by side without oversubscribing the cores, which slows PyTorch several-fold.
    torch.set_num_threads(int(os.environ.get('DEMO_THREADS', '2')))
    main()
