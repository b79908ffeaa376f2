#!/usr/bin/env python3
"""Time the upstream PyTorch BLIP3-o understanding path on the CPU.

BLIP3-o (GitHub JiuhaiChen/BLIP3o, branch main) answers questions about images
with the stock Qwen2.5-VL model: its inference class
`blip3oQwenForInferenceLM` (blip3o/model/language_model/
blip3o_qwen_inference.py) subclasses transformers'
`Qwen2_5_VLForConditionalGeneration`, and its only own code on that path,
`prepare_inputs_for_generation`, passes `images`/`image_sizes` through. So the
understanding path is transformers' own class, run here as the fixture's
author ran it (fixture README, shim T3): transformers 5.x
`Qwen2_5_VLForConditionalGeneration` + `Qwen2_5_VLProcessor` on the same
weights (key map `visual.` -> `model.visual.`, `model.` -> `model.language_model.`,
lm_head tied to the token embedding), greedy `generate()`.

Prints one JSON object (medians of --runs runs after --warmup):

  * visionEncode -- `model.model.visual(pixel_values, grid_thw)`: patch embed,
                    windowed ViT blocks, 2x2 PatchMerger, for one image,
  * prefill      -- generate()'s first forward without the ViT inside it (token
                    embedding, image-feature scatter, M-RoPE index, LLM, lm_head),
  * decode       -- --new-tokens greedy steps after it (each: generate()'s
                    bookkeeping, one forward with the KV cache, argmax); eos ignored,
  * memory       -- peak RSS (whole process, and the inference phase alone).

--check-fixture EXPECTED_DIR runs the fixture's understanding case (greedy, 8
new tokens) through the same timed code and compares ids, ViT output, prefill
logits and every step's logits with the stored reference.

See README.md next to this file for the environment.
"""

import argparse
import contextlib
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vargpt_v1_1_understanding import (  # noqa: E402  (shared helpers, no upstream import)
    bench_image, cpu_model, file_sha256, memory_report, rel_err, reset_peak_rss, rss_status, safetensors_files, versions,
    write_result)

UPSTREAM_MODULE = os.path.join("blip3o", "model", "language_model", "blip3o_qwen_inference.py")


# =============================================================================
# Checkpoint and processor (the released BLIP3-o layout: transformers-4.51 flat
# config, 4.51 key names, bf16 shards)
# =============================================================================

def read_flat_config(model_dir):
    with open(os.path.join(model_dir, "config.json")) as f:
        return json.load(f)


def qwen_config(flat, attn):
    """The 4.51 flat config (text fields at the top level, beside vision_config)
    as a 5.x Qwen2_5_VLConfig (nested text_config)."""
    from transformers import Qwen2_5_VLConfig
    flat = dict(flat)
    vision = flat.pop("vision_config")
    text = dict(flat, model_type="qwen2_5_vl_text")
    ids = {k: flat[k] for k in ("image_token_id", "video_token_id", "vision_start_token_id",
                                "vision_end_token_id") if k in flat}
    config = Qwen2_5_VLConfig(text_config=text, vision_config=vision,
                              tie_word_embeddings=flat.get("tie_word_embeddings", False), **ids)
    config._attn_implementation = attn
    config.text_config._attn_implementation = attn
    config.vision_config._attn_implementation = attn
    return config


def map_key(k):
    """[T3] 4.51 key names -> 5.x stock Qwen2_5_VLForConditionalGeneration."""
    if k.startswith("visual."):
        return "model." + k
    if k.startswith("model."):
        return "model.language_model." + k[len("model."):]
    return k


def load_model(model_dir, dtype, attn):
    """Stock 5.x class built under no_init_weights() and filled with
    load_state_dict from the checkpoint (every stock tensor must come from it;
    lm_head is tied to the embedding when tie_word_embeddings). Checkpoint
    tensors outside the understanding model (latent queries, DiT, a generation
    vision tower) are skipped and counted."""
    from safetensors.torch import load_file
    from transformers import Qwen2_5_VLForConditionalGeneration
    from transformers.initialization import no_init_weights

    t0 = time.perf_counter()
    flat = read_flat_config(model_dir)
    config = qwen_config(flat, attn)
    with no_init_weights():
        model = Qwen2_5_VLForConditionalGeneration(config)
    model.eval()
    model.requires_grad_(False)
    model.to(dtype)   # the checkpoint's torch_dtype (bf16) is not the compute dtype: --dtype is
    wanted = set(model.state_dict().keys())
    state, skipped, ckpt_dtypes = {}, {}, set()
    for fn in safetensors_files(model_dir):
        for k, v in load_file(fn).items():
            mk = map_key(k)
            if mk in wanted:
                state[mk] = v
                ckpt_dtypes.add(str(v.dtype).replace("torch.", ""))
            else:
                group = ".".join(k.split(".")[:2])
                skipped[group] = skipped.get(group, 0) + 1
    tied = bool(config.tie_word_embeddings)
    missing = sorted(wanted - set(state))
    allowed_missing = {"lm_head.weight"} if tied else set()
    if set(missing) - allowed_missing:
        raise SystemExit(f"checkpoint lacks {len(missing)} tensors of the stock model, e.g. {missing[:5]}")
    model.load_state_dict(state, strict=False)   # copies with dtype conversion (bf16 -> f32 exact)
    del state
    if tied:
        model.lm_head.weight = model.model.language_model.embed_tokens.weight
    load_s = time.perf_counter() - t0
    info = {
        "attn_implementation": attn,
        "attn_classes": {"vision": type(model.model.visual.blocks[0].attn).__name__,
                         "llm": type(model.model.language_model.layers[0].self_attn).__name__},
        "checkpoint_dtypes": sorted(ckpt_dtypes),
        "skipped_checkpoint_tensors": skipped,
        "tied_lm_head": tied,
        "params": {"llm": sum(p.numel() for p in model.model.language_model.parameters())
                   + (0 if tied else model.lm_head.weight.numel()),
                   "vision": sum(p.numel() for p in model.model.visual.parameters())},
        "load_s": round(load_s, 3),
    }
    return model, config, flat, info


def load_tokenizer(model_dir):
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(model_dir)


def build_processor(model_dir, tokenizer=None, min_pixels=None, max_pixels=None):
    """[T3/T6] Qwen2_5_VLProcessor(Qwen2VLImageProcessorPil(**preprocessor_config.json),
    the checkpoint's tokenizer, chat_template.json). No video processor (5.x's
    needs torchvision); the processor's class check is relaxed for it only."""
    from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessorPil

    class ImageOnlyProcessor(Qwen2_5_VLProcessor):
        def check_argument_for_proper_class(self, name, arg):
            if name == "video_processor" and arg is None:
                return None
            return super().check_argument_for_proper_class(name, arg)

    with open(os.path.join(model_dir, "preprocessor_config.json")) as f:
        pcfg = json.load(f)
    for k in ("image_processor_type", "processor_class"):
        pcfg.pop(k, None)
    if min_pixels is not None:
        pcfg["min_pixels"] = min_pixels
    if max_pixels is not None:
        pcfg["max_pixels"] = max_pixels
    if min_pixels is not None or max_pixels is not None:
        pcfg.pop("size", None)
    chat_template = None
    ct_path = os.path.join(model_dir, "chat_template.json")
    if os.path.isfile(ct_path):
        with open(ct_path) as f:
            chat_template = json.load(f)["chat_template"]
    return ImageOnlyProcessor(image_processor=Qwen2VLImageProcessorPil(**pcfg),
                              tokenizer=tokenizer or load_tokenizer(model_dir),
                              video_processor=None, chat_template=chat_template)


# =============================================================================
# The timed path: transformers' stock generate() on the stock class
# =============================================================================

class ForwardClock:
    """Forward hooks on the whole model and on its vision tower: wall-clock
    end of every model forward, and the ViT time since the previous forward
    ended (wherever generate() runs the ViT). No arithmetic changes."""

    def __init__(self, model):
        self.ends, self.vit_in = [], []
        self._vit_t0 = None
        self._vit_acc = 0.0
        self.handles = [
            model.register_forward_hook(self._post),
            model.model.visual.register_forward_pre_hook(self._vpre),
            model.model.visual.register_forward_hook(self._vpost),
        ]

    def _post(self, *a):
        self.ends.append(time.perf_counter())
        self.vit_in.append(self._vit_acc)
        self._vit_acc = 0.0

    def _vpre(self, *a):
        self._vit_t0 = time.perf_counter()

    def _vpost(self, *a):
        self._vit_acc += time.perf_counter() - self._vit_t0

    def remove(self):
        for h in self.handles:
            h.remove()


def generation_config(model, new_tokens, eos_token_id=None, want_logits=False):
    """Greedy, no logits processors; eos None: every run decodes exactly N tokens."""
    from transformers import GenerationConfig
    pad = model.config.text_config.pad_token_id if hasattr(model.config, "text_config") else None
    return GenerationConfig(do_sample=False, max_new_tokens=new_tokens, min_new_tokens=0,
                            eos_token_id=eos_token_id, pad_token_id=pad if pad is not None else 0,
                            num_beams=1, repetition_penalty=1.0, top_k=None, top_p=None, temperature=None,
                            return_dict_in_generate=True, output_logits=want_logits)


def vit(model, inputs):
    return model.model.visual(inputs["pixel_values"].to(model.model.visual.dtype),
                              grid_thw=inputs["image_grid_thw"])


def generate(model, inputs, gcfg):
    """One generate() call; returns (new ids, per-forward end times, ViT time per
    forward, call start, call end, logits per step or None)."""
    clock = ForwardClock(model)
    try:
        t0 = time.perf_counter()
        out = model.generate(**inputs, generation_config=gcfg)
        t1 = time.perf_counter()
    finally:
        clock.remove()
    n_prompt = inputs["input_ids"].shape[1]
    new_ids = out.sequences[0, n_prompt:].tolist()
    logits = [x[0].float() for x in out.logits] if gcfg.output_logits else None
    return new_ids, clock.ends, clock.vit_in, t0, t1, logits


def prepare_inputs(processor, conversation, image, dtype):
    prompt = processor.apply_chat_template(conversation, add_generation_prompt=True)
    inputs = processor(images=[image], text=prompt, return_tensors="pt")
    inputs["pixel_values"] = inputs["pixel_values"].to(dtype)
    return prompt, inputs


# -----------------------------------------------------------------------------

def run_fixture_check(args, dtype):
    from safetensors.torch import load_file
    from PIL import Image
    exp_dir = args.check_fixture
    with open(os.path.join(exp_dir, "understanding.json")) as f:
        exp = json.load(f)
    ref = load_file(os.path.join(exp_dir, "understanding.safetensors"))
    n_new = len(exp["generated_ids"])

    model, config, flat, info = load_model(args.model, dtype, args.attn)
    processor = build_processor(args.model)
    image = Image.open(os.path.join(exp_dir, "input.png")).convert("RGB")
    prompt, inputs = prepare_inputs(processor, exp["conversation"], image, dtype)

    report = {"mode": "check-fixture", "fixture": exp_dir, "model": args.model,
              "dtype": str(dtype).replace("torch.", ""), "threads": torch.get_num_threads(), **info}
    checks = {"prompt_equal": prompt == exp["prompt"],
              "input_ids_equal": bool(torch.equal(inputs["input_ids"][0], ref["input_ids"])),
              "pixel_values": rel_err(inputs["pixel_values"], ref["pixel_values"]),
              "image_grid_thw_equal": bool(torch.equal(inputs["image_grid_thw"].reshape(-1),
                                                        ref["image_grid_thw"].reshape(-1)))}
    eos = exp.get("generate", {}).get("eos_token_id")
    with torch.no_grad():
        v = vit(model, inputs)
        checks["vit_out"] = rel_err(v.pooler_output, ref["vit_out"])
        gen, _, _, _, _, logits = generate(model, inputs, generation_config(model, n_new, eos, want_logits=True))
    checks["prefill_last_logits"] = rel_err(logits[0], ref["prefill_last_logits"])
    steps = torch.stack(logits[1:])
    checks["step_logits"] = rel_err(steps, ref["step_logits"][:steps.shape[0]])
    checks["generated_ids"] = gen
    checks["expected_generated_ids"] = exp["generated_ids"]
    checks["generated_ids_equal"] = gen == exp["generated_ids"]
    tol = args.tolerance
    ok = (checks["generated_ids_equal"] and checks["input_ids_equal"]
          and checks["prefill_last_logits"]["rel_err_maxnorm"] <= tol)
    checks["tolerance_rel_err_maxnorm"] = tol
    checks["pass"] = bool(ok)
    report["checks"] = checks
    return report, ok


def run_bench(args, dtype):
    rss_start = rss_status()
    model, config, flat, info = load_model(args.model, dtype, args.attn)
    rss_after_load = rss_status()

    image, min_px, max_px = bench_image(args)
    width, height = image.size
    processor = build_processor(args.model, min_pixels=min_px, max_pixels=max_px)
    conversation = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": args.question}]}]
    prompt, inputs = prepare_inputs(processor, conversation, image, dtype)
    grid = inputs["image_grid_thw"][0].tolist()
    vc = config.vision_config
    n_patches = int(inputs["pixel_values"].shape[0])
    n_img_tokens = n_patches // (vc.spatial_merge_size ** 2)
    prompt_tokens = int(inputs["input_ids"].shape[1])
    N = args.new_tokens
    gcfg = generation_config(model, N + 1)   # the prefill's token + N decode steps

    reset_ok = reset_peak_rss()
    samples = {k: [] for k in ("vit", "prefill_full_forward", "prefill", "decode_total", "decode_step_median",
                               "generate_total")}
    generated = None
    with torch.no_grad():
        for r in range(args.warmup + args.runs):
            t0 = time.perf_counter()
            vit(model, inputs)
            t_vit = time.perf_counter() - t0

            generated, ends, vit_in, g0, g1, _ = generate(model, inputs, gcfg)
            if len(ends) != N + 1:
                raise SystemExit(f"generate() ran {len(ends)} forwards, expected {N + 1}")
            t_first = ends[0] - g0
            steps = [b - a for a, b in zip(ends[:-1], ends[1:])]
            if r >= args.warmup:
                samples["vit"].append(t_vit)
                samples["prefill_full_forward"].append(t_first)
                samples["prefill"].append(t_first - vit_in[0])
                samples["decode_total"].append(sum(steps))
                samples["decode_step_median"].append(statistics.median(steps))
                samples["generate_total"].append(g1 - g0)
            if not args.quiet:
                print(f"run {r}{' (warm-up)' if r < args.warmup else ''}: vit {t_vit*1e3:.1f} ms, "
                      f"first forward {t_first*1e3:.1f} ms (vit inside {vit_in[0]*1e3:.1f} ms), "
                      f"decode {N} tok {sum(steps)*1e3:.1f} ms", file=sys.stderr)
    rss_end = rss_status()

    med = {k: statistics.median(v) for k, v in samples.items()}
    tc = config.text_config
    up_file = os.path.join(args.upstream, UPSTREAM_MODULE) if args.upstream else None
    return {
        "mode": "bench",
        "family": "blip3o",
        "model": os.path.abspath(args.model),
        "upstream": ({"path": os.path.abspath(args.upstream), "blip3o_qwen_inference.py_sha256": file_sha256(up_file)}
                     if up_file and os.path.isfile(up_file) else None),
        "path": "transformers Qwen2_5_VLForConditionalGeneration.generate (stock class; BLIP3-o's "
                "blip3oQwenForInferenceLM inherits it unchanged for understanding)",
        "dtype": str(dtype).replace("torch.", ""),
        **info,
        "llm": {"hidden_size": tc.hidden_size, "layers": tc.num_hidden_layers, "heads": tc.num_attention_heads,
                "kv_heads": tc.num_key_value_heads, "intermediate_size": tc.intermediate_size,
                "vocab_size": tc.vocab_size},
        "vision": {"hidden_size": vc.hidden_size, "depth": vc.depth, "heads": vc.num_heads,
                   "fullatt_block_indexes": list(vc.fullatt_block_indexes), "window_size": vc.window_size},
        "image": {"source": args.image or f"synthetic {width}x{height}", "input_size_wh": list(image.size),
                  "resized_hw": [grid[1] * vc.patch_size, grid[2] * vc.patch_size], "grid_thw": grid,
                  "patches": n_patches, "llm_tokens": n_img_tokens, "min_pixels": min_px, "max_pixels": max_px},
        "prompt_tokens": prompt_tokens,
        "question": args.question,
        "new_tokens": N,
        "runs": args.runs, "warmup": args.warmup,
        "timings_ms": {
            # the runtime's profile stage names
            "visionEncode": med["vit"] * 1e3,
            "prefill": med["prefill"] * 1e3,
            "decode": med["decode_total"] * 1e3,
            # the VARGPT-v1.1 upstream script's names
            "vit_encode_merger": med["vit"] * 1e3,
            "prefill_full_forward": med["prefill_full_forward"] * 1e3,
            "prefill_llm_only": med["prefill"] * 1e3,
            "decode_total": med["decode_total"] * 1e3,
            "decode_per_token": med["decode_total"] / N * 1e3,
            "decode_step_median": med["decode_step_median"] * 1e3,
            "generate_total": med["generate_total"] * 1e3,
        },
        "throughput": {"prefill_tok_s": prompt_tokens / med["prefill"], "decode_tok_s": N / med["decode_total"]},
        "samples_ms": {k: [round(x * 1e3, 3) for x in v] for k, v in samples.items()},
        "memory_mb": memory_report(rss_start, rss_after_load, rss_end, reset_ok),
        "generated_ids": generated,
        "greedy": True, "eos_ignored": True, "logits_processors": "none",
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "cpu": {"model": cpu_model(), "logical_cpus": os.cpu_count()},
        "versions": versions(),
        "definitions": {
            "visionEncode": "model.model.visual(pixel_values, grid_thw) alone: patch embed, windowed ViT, merger",
            "prefill": "generate()'s first forward (from the generate() call: input preparation, token embedding, "
                       "image-feature scatter, M-RoPE index, LLM, lm_head on the last position, as generate asks) "
                       "minus the ViT inside it",
            "prefill_full_forward": "the same including the ViT",
            "decode": "the N later steps, end of one forward to end of the next: generate()'s bookkeeping, "
                      "greedy pick, one forward with the KV cache",
        },
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="BLIP3-o checkpoint folder (config.json, *.safetensors, tokenizer)")
    ap.add_argument("--upstream", default=os.environ.get("UPSTREAM_BLIP3O"),
                    help="JiuhaiChen/BLIP3o checkout (default $UPSTREAM_BLIP3O); only recorded: understanding "
                         "runs transformers' stock class, which upstream inherits")
    ap.add_argument("--image-size", default="448x448", help="WxH (or one number) of the synthetic test image")
    ap.add_argument("--image", default=None, help="use this image file instead of a synthetic one")
    ap.add_argument("--min-pixels", type=int, default=None)
    ap.add_argument("--max-pixels", type=int, default=None)
    ap.add_argument("--question", default="What is shown in this image?")
    ap.add_argument("--new-tokens", type=int, default=32, help="decode steps after the prefill (greedy, eos ignored)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default 2; 1 with --check-fixture)")
    ap.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    ap.add_argument("--attn", choices=["sdpa", "eager"], default="sdpa",
                    help="attention implementation of the LLM and the ViT (sdpa: transformers 4.51's default, "
                         "and the fixture's)")
    ap.add_argument("--check-fixture", metavar="EXPECTED_DIR", default=None,
                    help="compare with a fixture's expected/understanding.{json,safetensors} instead of timing")
    ap.add_argument("--tolerance", type=float, default=None,
                    help="max rel. error (max-norm) of the prefill logits for --check-fixture (default 1e-4; "
                         "3e-2 for bfloat16)")
    ap.add_argument("--out", default=None, help="also write the JSON here")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()

    torch.set_num_threads(args.threads if args.threads is not None else (1 if args.check_fixture else 2))
    dtype = torch.float32 if args.dtype == "float32" else torch.bfloat16
    if args.tolerance is None:
        args.tolerance = 1e-4 if dtype == torch.float32 else 3e-2
    run(args, dtype, run_fixture_check, run_bench, versions)


def run(args, dtype, check, bench, versions_of):
    """--check-fixture or timing, stdout kept for the JSON (library prints go to
    stderr); exit status 1 when the check fails."""
    with contextlib.redirect_stdout(sys.stderr):
        if args.check_fixture:
            result, ok = check(args, dtype)
            result["versions"] = versions_of()
        else:
            result, ok = bench(args, dtype), True
    write_result(result, ok, args.out)


if __name__ == "__main__":
    main()
