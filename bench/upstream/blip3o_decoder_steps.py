"""Upstream baseline for BLIP3-o's stage 2 alone at full size: the diffusion decoder folder's UNet
Euler loop (the pipeline's loop as blip3o_generation.py runs it, CFG batch [cond, uncond]) for a few
steps and one VAE decode, on random CLIP features, in float32 with diffusers' classes. Stage 2 is
about 95 % of a BLIP3-o image; the full pipeline at 1024x1024 (LLM + DiT + UNet + VAE in float32)
does not fit a 24 GB machine under PyTorch, the decoder alone does.

    PYTHONPATH=/work/upstream-diffusers/src python bench/upstream/blip3o_decoder_steps.py \
        --model /path/to/checkpoint --size 1024 --steps 2 --out result.json

Prints (and writes) timings_ms: unet_step (median), unet_steps (every step), vae; memory_mb.
"""
import argparse
import os
import resource
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import blip3o_generation as G  # noqa: E402
import vargpt_v1_1_understanding as U  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="BLIP3-o checkpoint folder (its diffusion-decoder/ is read)")
    p.add_argument("--size", type=int, default=1024, help="image side in pixels")
    p.add_argument("--steps", type=int, default=2, help="Euler steps to time (the schedule is a 50-step one's first steps)")
    p.add_argument("--tokens", type=int, default=64, help="CLIP tokens per row (the release's 8x8 grid)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    G.install_import_stubs()  # diffusers 0.32.2 against transformers 5.x (see that script)
    with torch.inference_mode():
        dec = G.load_decoder(args.model, torch.float32)
        width = dec.unet.config.cross_attention_dim
        prompt = torch.randn(1, args.tokens, width)
        negative = torch.randn(1, args.tokens, width)
        # The pipeline's loop, cut after `steps` steps of the 50-step schedule.
        dec.scheduler.set_timesteps(50)
        timesteps = dec.scheduler.timesteps[: args.steps]
        set_timesteps = dec.scheduler.set_timesteps
        dec.scheduler.set_timesteps = lambda n: (set_timesteps(50), setattr(dec.scheduler, "timesteps", timesteps))
        latents, step_s = G.unet_denoise(dec, prompt, negative, args.size, args.size, 50)
        t0 = time.perf_counter()
        G.vae_decode(dec, latents)
        vae_s = time.perf_counter() - t0
    result = {
        "what": "BLIP3-o stage 2 alone (diffusers UNet2DConditionModel + EulerDiscreteScheduler + AutoencoderKL), float32",
        "size": args.size,
        "steps_timed": len(step_s),
        "threads": args.threads,
        "timings_ms": {
            "unet_step": round(1e3 * statistics.median(step_s), 1),
            "unet_steps": [round(1e3 * s, 1) for s in step_s],
            "vae": round(1e3 * vae_s, 1),
            "load": round(1e3 * dec.load_s, 1),
        },
        "memory_mb": {"peak_rss": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)},
        "versions": G.versions(),
    }
    U.write_result(result, True, args.out)


if __name__ == "__main__":
    main()
