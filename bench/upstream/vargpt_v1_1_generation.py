#!/usr/bin/env python3
"""Time the upstream PyTorch VARGPT-v1.1 image path on the CPU: text-to-image and
one instruction edit, end to end and per stage.

Runs the reference implementation of VARGPT-family/VARGPT-v1.1 (packages
`vargpt_qwen_v1_1/` and `patching_utils/`, imported from a checkout given by
--upstream or $UPSTREAM_V11; nothing of it is copied here) on a checkpoint
folder and prints one JSON object.

The timed call is upstream's own generation loop: the sampler that upstream's
`patching(model)` installs (`patching_utils/vargpt_sample.py`) called as
transformers-4.46 `generate()` calls it. The first new token is forced to
<|image_gen_start|> (a random-weight checkpoint does not choose it); the
sampler then feeds it, predicts one more token and runs the model's forward
with `inference_image_gen=True`, which draws the image with upstream's
`autoregressive_infer_cfg` (10 scales, 512x512 for the released schedule,
cfg 3, tau 0.5, top-k 900, top-p 0.97, hard-coded there), decodes it with the
BSQ VAE and writes it with cv2. Per-stage figures come from timing wrappers
around upstream's modules and functions (see STAGES); they do not change any
arithmetic.

The loading, the compatibility shims and the helpers are those of
vargpt_v1_1_understanding.py next to this file (imported, not repeated); the
generation side needs a few more shims, all in "GENERATION SHIMS" below.

--check-fixture EXPECTED_DIR runs the fixture's generation and editing cases
through the same timed code path (the fixture's scale schedule registered as
one more entry of upstream's schedule table, wall clock pinned as the fixture
did) and compares token ids, every scale's sampled bits and the image with
the stored reference.
"""

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
import types

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vargpt_v1_1_understanding as U  # noqa: E402


# =============================================================================
# GENERATION SHIMS (in addition to the understanding script's S1, T1-T3, L1-L5)
# =============================================================================

def flash_attn_varlen_kvpacked_func(q, kv, cu_seqlens_q, cu_seqlens_k, max_seqlen_q=None, max_seqlen_k=None,
                                    dropout_p=0.0, softmax_scale=None, causal=False, **kwargs):
    """[G1] CPU stand-in for flash-attn's varlen kv-packed attention (flash-attn is
    CUDA-only): per sequence, non-causal softmax(q k^T * scale) v accumulated in
    float32 (float64 for float64 inputs), output in the input dtype -- what the
    CUDA kernel computes. q: (Nq, H, c), kv: (Nk, 2, H, c). Upstream casts float32
    q/kv to bf16 before this call (Infinity cross-attention and the attentive
    pool text_proj_for_sos); that rounding is kept, as upstream does it."""
    if causal or dropout_p:
        raise NotImplementedError("flash-attn stand-in: causal / dropout not used by upstream inference")
    acc = torch.float64 if q.dtype == torch.float64 else torch.float32
    scale = softmax_scale if softmax_scale is not None else q.shape[-1] ** -0.5
    out = torch.empty(q.shape, dtype=q.dtype)
    cq = cu_seqlens_q.tolist()
    ck = cu_seqlens_k.tolist()
    for i in range(len(cq) - 1):
        qi = q[cq[i]:cq[i + 1]].to(acc).transpose(0, 1)            # H Lq c
        ki = kv[ck[i]:ck[i + 1], 0].to(acc).transpose(0, 1)        # H Lk c
        vi = kv[ck[i]:ck[i + 1], 1].to(acc).transpose(0, 1)        # H Lk c
        att = torch.softmax((qi @ ki.transpose(-1, -2)) * scale, dim=-1)
        out[cq[i]:cq[i + 1]] = (att @ vi).transpose(0, 1).to(q.dtype)
    return out


def install_generation_shims():
    """Called after U.import_upstream (upstream imported, model not yet built)."""
    import transformers.cache_utils as cache_utils
    from transformers.generation.utils import GenerationMixin
    import vargpt_qwen_v1_1.var_model.infinity.models.basic as basic
    import vargpt_qwen_v1_1.var_model.infinity.models.infinity as infinity
    import vargpt_qwen_v1_1.var_model.infinity.models.fused_op as fused_op
    applied = []

    # [G1] the attention above, where upstream bound the S1 import stub
    sys.modules["flash_attn"].flash_attn_varlen_kvpacked_func = flash_attn_varlen_kvpacked_func
    basic.flash_attn_varlen_kvpacked_func = flash_attn_varlen_kvpacked_func
    applied.append("G1 flash_attn_varlen_kvpacked_func (CPU, fp32 accumulation)")

    # [G2] infinity/models/fused_op.py wraps its AdaLN norms in torch.compile
    # (inductor); on this CPU run the wrapped eager functions are used instead
    # (the same Python code: LayerNorm in fp32, cast back, x*(1+scale)+shift).
    # Infinity binds them at import and hands them to its blocks at construction.
    for name in ("fused_rms_norm", "fused_ada_layer_norm", "fused_ada_rms_norm"):
        f = getattr(fused_op, name)
        eager = getattr(f, "_torchdynamo_orig_callable", None) or getattr(f, "__wrapped__", f)
        setattr(fused_op, name, eager)
        if hasattr(infinity, name):
            setattr(infinity, name, eager)
    applied.append("G2 fused_op torch.compile wrappers -> eager functions")

    # [G3] import-only names patching_utils/vargpt_sample.py imports (removed in 5.x)
    for name in ("OffloadedCache", "QuantizedCacheConfig"):
        if not hasattr(cache_utils, name):
            setattr(cache_utils, name, type(name, (), {"__doc__": "import-only placeholder"}))
            applied.append(f"G3 transformers.cache_utils.{name} placeholder")

    # [G4] GenerationMixin methods the upstream sampler calls with their 4.46
    # signatures / behaviour: _get_initial_cache_position(input_ids, model_kwargs)
    # (4.46 body), _has_unfinished_sequences(..., cur_len=, max_length=) (the two
    # kwargs only mattered under torch.compile), and _update_model_kwargs_for_generation
    # also advancing cache_position (4.46; upstream's prepare_inputs_for_generation reads it).
    def _get_initial_cache_position(self, input_ids, model_kwargs):
        cache_position = torch.ones_like(input_ids[0, :], dtype=torch.int64).cumsum(0) - 1
        past_length = 0
        cache = model_kwargs.get("past_key_values")
        if cache is not None and hasattr(cache, "get_seq_length"):
            past_length = cache.get_seq_length() or 0
        model_kwargs["cache_position"] = cache_position[past_length:]
        return model_kwargs
    GenerationMixin._get_initial_cache_position = _get_initial_cache_position

    orig_has_unfinished = GenerationMixin._has_unfinished_sequences

    def _has_unfinished_sequences(self, this_peer_finished, synced_gpus, device, cur_len=None, max_length=None):
        return orig_has_unfinished(self, this_peer_finished, synced_gpus, device)
    GenerationMixin._has_unfinished_sequences = _has_unfinished_sequences

    orig_update = GenerationMixin._update_model_kwargs_for_generation

    def _update_model_kwargs_for_generation(self, outputs, model_kwargs, is_encoder_decoder=False, num_new_tokens=1):
        model_kwargs = orig_update(self, outputs, model_kwargs, is_encoder_decoder=is_encoder_decoder,
                                   num_new_tokens=num_new_tokens)
        if model_kwargs.get("use_cache", True) and model_kwargs.get("cache_position") is not None:
            model_kwargs["cache_position"] = model_kwargs["cache_position"][-1:] + num_new_tokens
        return model_kwargs
    GenerationMixin._update_model_kwargs_for_generation = _update_model_kwargs_for_generation
    applied.append("G4 GenerationMixin 4.46 sampler helpers")
    return applied


class ForceImageStart:
    """LogitsProcessor: at the first new position every logit but
    <|image_gen_start|>'s is -inf, so the greedy pick is the start token (a
    trained checkpoint picks it itself for a drawing request; random weights do
    not). Later positions are untouched."""

    def __init__(self, prompt_len, start_id):
        self.prompt_len = prompt_len
        self.start_id = start_id

    def __call__(self, input_ids, scores):
        if input_ids.shape[1] == self.prompt_len:
            forced = torch.full_like(scores, -float("inf"))
            forced[:, self.start_id] = 0.0
            return forced
        return scores


@contextlib.contextmanager
def pinned_wall_clock(seed):
    """Upstream seeds its sampler with int(time.time() * 1000) inside forward.
    Pin time.time() for the call so that the seed is `seed` (as the fixture
    generator did); every other clock is untouched."""
    t = seed / 1000.0
    if int(t * 1000) != seed:
        t = (seed + 0.5) / 1000.0
    orig = time.time
    time.time = lambda: t
    try:
        yield
    finally:
        time.time = orig


# =============================================================================
# Stage timing: wrappers around upstream's modules / functions
# =============================================================================

STAGES = {
    "prompt_forward": "the sampler's first model forward: token embedding (+ ViT and merger for the edit) "
                      "+ LLM over the prompt + lm_head over every prompt position",
    "start_token_forward": "the sampler's second forward: <|image_gen_start|> through the LLM with the KV "
                           "cache + lm_head (predicts the token after it, which is never fed)",
    "image_llm": "inside the image forward: every LLM pass of autoregressive_infer_cfg (per scale the "
                 "conditional rows with the KV cache, and the unconditional rows without a cache)",
    "image_condition": "text_norm, text_proj_for_sos (attentive pool), text_proj_for_ca, get_ca_kv_cross "
                       "(image_gen_projector_out over the context), shared_ada_lin, and image_gen_projector "
                       "of the start input",
    "infinity_projector_in": "image_gen_projector_out of the LLM rows (LLM width -> Infinity width), per scale",
    "infinity_level_embed": "add_lvl_embeding, per scale",
    "infinity_blocks": "the Infinity blocks (self-attention with the scale KV cache, cross-attention, FFN, "
                       "AdaLN), per scale, both CFG rows",
    "infinity_head": "get_logits (AdaLN before head + bitwise head), both CFG rows",
    "sampling": "sample_with_top_k_top_p_also_inplace_modifying_logits_ (top-k, top-p, multinomial) per "
                "scale; the CFG mix and 1/tau multiply before it are inline in upstream and fall in 'other'",
    "codes": "indices_to_codes, the bilinear F.interpolate calls (summed codes and next-scale input), "
             "norm0_ve, word_embed and image_gen_projector of the next scale's input",
    "vae_decode": "vae_local.decode of the summed codes",
    "lm_head_last_scale": "after the image: upstream's forward applies lm_head to the last scale's hidden "
                          "rows (its result is not used)",
    "image_write": "cv2.imwrite of the uint8 image (a PNG under a temporary folder)",
    "image_forward_other": "the rest of the image forward (CFG mix, 1/tau, uint8 conversion, Python)",
}


class StageTimer:
    """Outermost-region timing: a region entered while another is open counts
    toward the open one only, so nested upstream calls (e.g. image_gen_projector_out
    inside get_ca_kv_cross, F.interpolate inside the VAE) are not counted twice."""

    def __init__(self):
        self.active = False
        self.depth = 0
        self.acc = {}
        self.phase = None
        self.seen_llm = False

    def reset(self):
        self.acc = {}
        self.seen_llm = False

    def region(self, name_or_fn, fn):
        timer = self

        def wrapped(*args, **kwargs):
            if not timer.active or timer.depth > 0:
                return fn(*args, **kwargs)
            name = name_or_fn() if callable(name_or_fn) else name_or_fn
            if name is None:
                return fn(*args, **kwargs)
            timer.depth += 1
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                timer.acc[name] = timer.acc.get(name, 0.0) + time.perf_counter() - t0
                timer.depth -= 1
        wrapped._timed = True
        return wrapped


def install_stage_timers(model, timer):
    import torch.nn.functional as F
    import cv2
    import vargpt_qwen_v1_1.modeling_vargpt_qwen2_vl as modeling

    def wrap_method(obj, name, region):
        fn = getattr(obj, name)
        setattr(obj, name, timer.region(region, fn))

    def wrap_forward(module, region):
        # instance attribute: nn.Module.__call__ looks up self.forward
        module.forward = timer.region(region, module.forward)

    in_image = lambda: timer.phase == "image"  # noqa: E731

    def llm_region():
        if not in_image():
            return None
        timer.seen_llm = True
        return "image_llm"
    wrap_forward(model.model, llm_region)
    g = model.vargpt_gen
    for name in ("text_norm", "text_proj_for_sos", "text_proj_for_ca", "shared_ada_lin"):
        wrap_forward(getattr(g, name), lambda: "image_condition" if in_image() else None)
    wrap_method(model, "get_ca_kv_cross", lambda: "image_condition" if in_image() else None)
    wrap_forward(model.image_gen_projector,
                 lambda: None if not in_image() else ("codes" if timer.seen_llm else "image_condition"))
    wrap_forward(model.image_gen_projector_out, lambda: "infinity_projector_in" if in_image() else None)
    wrap_method(g, "add_lvl_embeding", lambda: "infinity_level_embed" if in_image() else None)
    for chunk in g.block_chunks:
        for m in chunk.module:
            wrap_forward(m, lambda: "infinity_blocks" if in_image() else None)
    wrap_method(g, "get_logits", lambda: "infinity_head" if in_image() else None)
    modeling.sample_with_top_k_top_p_also_inplace_modifying_logits_ = timer.region(
        lambda: "sampling" if in_image() else None, modeling.sample_with_top_k_top_p_also_inplace_modifying_logits_)
    wrap_method(model.vae_local.quantizer.lfq, "indices_to_codes", lambda: "codes" if in_image() else None)
    wrap_forward(g.norm0_ve, lambda: "codes" if in_image() else None)
    wrap_forward(g.word_embed, lambda: "codes" if in_image() else None)
    wrap_method(model.vae_local, "decode", lambda: "vae_decode" if in_image() else None)
    wrap_forward(model.lm_head, lambda: "lm_head_last_scale" if in_image() else None)
    # module attribute F.interpolate: upstream calls it as F.interpolate(...)
    F.interpolate = timer.region(lambda: "codes" if in_image() else None, F.interpolate)
    # upstream's modeling module uses cv2 for imwrite only
    modeling.cv2 = types.SimpleNamespace(imwrite=timer.region(lambda: "image_write" if in_image() else None,
                                                              cv2.imwrite))

    # The sampler's three top-level forwards: prompt, start token, image.
    orig_forward = model.forward

    def forward(*args, **kwargs):
        n = timer.calls = getattr(timer, "calls", 0) + 1
        phase = {1: "prompt_forward", 2: "start_token_forward"}.get(n, "image")
        if kwargs.get("inference_image_gen"):
            phase = "image"
        timer.phase = phase
        t0 = time.perf_counter()
        try:
            return orig_forward(*args, **kwargs)
        finally:
            dt = time.perf_counter() - t0
            key = phase if phase != "image" else "image_forward_total"
            timer.acc[key] = timer.acc.get(key, 0.0) + dt
            timer.phase = None
    model.forward = forward


# Bits per scale, for --check-fixture: the sampler's output, captured.
class BitsRecorder:
    def __init__(self):
        self.bits = []

    def install(self):
        import vargpt_qwen_v1_1.modeling_vargpt_qwen2_vl as modeling
        fn = modeling.sample_with_top_k_top_p_also_inplace_modifying_logits_
        rec = self

        def sample(*args, **kwargs):
            out = fn(*args, **kwargs)
            rec.bits.append(out.detach().clone())
            return out
        modeling.sample_with_top_k_top_p_also_inplace_modifying_logits_ = sample


# =============================================================================
# The timed call
# =============================================================================

def make_generation_config(model, max_length):
    from transformers import GenerationConfig
    gc = GenerationConfig(do_sample=False, max_length=max_length, output_attentions=False,
                          output_hidden_states=False, output_scores=False, output_logits=False,
                          return_dict_in_generate=False)
    gc._pad_token_tensor = None
    return gc


def draw(model, inputs, start_id, seed, out_png):
    """One upstream generation: sampler, forced start token, image branch.
    Returns (output ids, wall seconds)."""
    from transformers import LogitsProcessorList, StoppingCriteriaList
    from transformers.generation.stopping_criteria import MaxLengthCriteria
    from transformers.cache_utils import DynamicCache
    ids = inputs["input_ids"]
    kw = {"attention_mask": inputs["attention_mask"], "past_key_values": DynamicCache(), "use_cache": True}
    if "pixel_values" in inputs:
        kw["pixel_values"] = inputs["pixel_values"]
        kw["image_grid_thw"] = inputs["image_grid_thw"]
    max_length = ids.shape[1] + 8
    model._IMAGE_GEN_PATH = out_png
    with pinned_wall_clock(seed), torch.no_grad():
        t0 = time.perf_counter()
        out = model._sample(ids, logits_processor=LogitsProcessorList([ForceImageStart(ids.shape[1], start_id)]),
                            stopping_criteria=StoppingCriteriaList([MaxLengthCriteria(max_length)]),
                            generation_config=make_generation_config(model, max_length),
                            synced_gpus=False, streamer=None, **kw)
        wall = time.perf_counter() - t0
    return out, wall


def setup(args, dtype, schedules=None):
    up = U.import_upstream(args.upstream)
    gen_shims = install_generation_shims()
    for key, scales in (schedules or {}).items():
        register_schedule(scales, key)   # before construction: Infinity precomputes RoPE grids per entry
    model, config, info = U.load_model(up, args.model, dtype, args.attn, keep_gen_modules=True)
    sys.path.insert(0, os.path.abspath(args.upstream))
    from patching_utils.patching import patching
    patching(model)   # upstream's own sampler (vargpt_sample) as model._sample
    return up, model, config, info, gen_shims


def edit_inputs(up, args, config, dtype, image, instruction, min_px=None, max_px=None):
    processor = U.build_processor(up, args.model, min_px, max_px)
    conversation = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": instruction}]}]
    prompt, inputs = U.prepare_inputs(processor, conversation, image, dtype)
    return processor, prompt, inputs


def t2i_inputs(up, args, prompt_text):
    processor = U.build_processor(up, args.model)
    conversation = [{"role": "user", "content": [{"type": "text", "text": prompt_text}]}]
    prompt = processor.apply_chat_template(conversation, add_generation_prompt=True)
    inputs = processor(text=prompt, return_tensors="pt")
    return processor, prompt, inputs


def register_schedule(scales_thw, key):
    """[F1, --check-fixture only] one more entry in upstream's schedule table
    dynamic_resolution_h_w[1.0] (existing entries untouched, so the RoPE grid
    normalisation by the '1M' schedule is unchanged) for the fixture's smaller
    schedule, registered before the model is built; the model's
    vargpt_gen_args.pn selects it."""
    from vargpt_qwen_v1_1.var_model.infinity.utils.dynamic_resolution import dynamic_resolution_h_w
    dynamic_resolution_h_w[1.0][key] = {"pixel": None, "scales": [tuple(s) for s in scales_thw]}


def run_fixture_check(args, dtype):
    from safetensors.torch import load_file
    from PIL import Image
    exps = {}
    for case in ("generation", "editing"):
        with open(os.path.join(args.check_fixture, f"{case}.json")) as f:
            exps[case] = json.load(f)
    up, model, config, info, gen_shims = setup(
        args, dtype, {f"fixture-{case}": exp["scale_schedule"] for case, exp in exps.items()})
    start_id = config.special_tokens["image_gen_start_token_id"]
    report = {"mode": "check-fixture", "fixture": args.check_fixture, "model": args.model,
              "dtype": str(dtype).replace("torch.", ""), "threads": torch.get_num_threads(),
              "generation_shims": gen_shims, **info}
    ok_all = True
    timer = StageTimer()
    install_stage_timers(model, timer)
    rec = BitsRecorder()
    rec.install()
    for case in ("generation", "editing"):
        exp = exps[case]
        ref = load_file(os.path.join(args.check_fixture, f"{case}.safetensors"))
        model.vargpt_gen_args.pn = f"fixture-{case}"
        text = next(c["text"] for c in exp["conversation"][0]["content"] if c["type"] == "text")
        if case == "editing":
            image = Image.open(os.path.join(args.check_fixture, exp["image"])).convert("RGB")
            _, prompt, inputs = edit_inputs(up, args, config, dtype, image, text)
        else:
            _, prompt, inputs = t2i_inputs(up, args, text)
        rec.bits = []
        timer.reset()
        timer.calls = 0
        timer.active = True
        with tempfile.TemporaryDirectory() as tmp:
            png = os.path.join(tmp, "out.png")
            out, wall = draw(model, inputs, start_id, exp["seed"], png)
            img = np.asarray(Image.open(png).convert("RGB"))
        timer.active = False
        exp_img = ref["image_uint8"].numpy()
        checks = {"prompt_equal": prompt == exp["prompt"],
                  "input_ids_equal": bool(torch.equal(inputs["input_ids"][0], ref["input_ids"])),
                  "output_ids_equal": bool(torch.equal(out[0], ref["output_ids"])),
                  "token_after_start": int(out[0, -1]), "expected_token_after_start": exp["token_after_start"]}
        n_sc = len(exp["scale_schedule"])
        bits_eq = []
        for si in range(n_sc):
            got = rec.bits[si][0, :, 0] if si < len(rec.bits) else None
            want = ref[f"s{si}.bits"].reshape(-1)
            bits_eq.append(got is not None and bool(torch.equal(got.to(want.dtype), want)))
        checks["bits_equal_per_scale"] = bits_eq
        checks["image_shape"] = list(img.shape)
        checks["image_equal"] = img.shape == exp_img.shape and bool((img == exp_img).all())
        if img.shape == exp_img.shape:
            checks["image_max_abs_diff"] = int(np.abs(img.astype(int) - exp_img.astype(int)).max())
        checks["stage_ms"] = {k: round(v * 1e3, 3) for k, v in timer.acc.items()}
        checks["wall_ms"] = round(wall * 1e3, 3)
        ok = (checks["input_ids_equal"] and checks["output_ids_equal"] and all(bits_eq)
              and img.shape == exp_img.shape and checks["image_max_abs_diff"] <= args.image_tolerance)
        checks["pass"] = bool(ok)
        ok_all = ok_all and ok
        report[case] = checks
    report["image_tolerance"] = args.image_tolerance
    report["pass"] = bool(ok_all)
    return report, ok_all


def summarize(samples):
    keys = sorted({k for s in samples for k in s})
    return {k: statistics.median([s.get(k, 0.0) for s in samples]) * 1e3 for k in keys}


def run_bench(args, dtype):
    rss_start = U.rss_status()
    up, model, config, info, gen_shims = setup(args, dtype)
    rss_after_load = U.rss_status()
    start_id = config.special_tokens["image_gen_start_token_id"]
    timer = StageTimer()
    install_stage_timers(model, timer)

    cases = {}
    if args.what in ("t2i", "both"):
        _, prompt, inputs = t2i_inputs(up, args, args.prompt)
        cases["t2i"] = {"prompt": prompt, "inputs": inputs}
    if args.what in ("edit", "both"):
        width, height = U.parse_size(args.edit_image_size)
        image = U.synthetic_image(width, height)
        with open(os.path.join(args.model, "preprocessor_config.json")) as f:
            pcfg = json.load(f)
        min_px = min(pcfg.get("min_pixels", 3136), width * height)
        max_px = max(pcfg.get("max_pixels", 12845056), width * height)
        _, prompt, inputs = edit_inputs(up, args, config, dtype, image, args.instruction, min_px, max_px)
        cases["edit"] = {"prompt": prompt, "inputs": inputs, "source": [width, height]}

    reset_ok = U.reset_peak_rss()
    result_cases = {}
    from vargpt_qwen_v1_1.var_model.infinity.utils.dynamic_resolution import dynamic_resolution_h_w
    schedule = [list(s) for s in dynamic_resolution_h_w[1.0][model.vargpt_gen_args.pn]["scales"]]
    with tempfile.TemporaryDirectory() as tmp:
        for name, case in cases.items():
            samples, walls = [], []
            for r in range(args.warmup + args.runs):
                timer.reset()
                timer.calls = 0
                timer.active = True
                png = os.path.join(tmp, f"{name}.png")
                out, wall = draw(model, case["inputs"], start_id, args.seed + r, png)
                timer.active = False
                acc = dict(timer.acc)
                named = sum(v for k, v in acc.items() if k not in ("prompt_forward", "start_token_forward",
                                                                   "image_forward_total"))
                acc["image_forward_other"] = acc.get("image_forward_total", 0.0) - named
                acc["end_to_end"] = wall
                if r >= args.warmup:
                    samples.append(acc)
                    walls.append(wall)
                if not args.quiet:
                    print(f"{name} run {r}{' (warm-up)' if r < args.warmup else ''}: {wall:.2f} s "
                          f"(prompt {acc.get('prompt_forward', 0):.2f}, image llm {acc.get('image_llm', 0):.2f}, "
                          f"blocks {acc.get('infinity_blocks', 0):.2f}, vae {acc.get('vae_decode', 0):.2f})",
                          file=sys.stderr)
            from PIL import Image
            size = list(Image.open(png).size)
            inp = case["inputs"]
            entry = {"prompt": case["prompt"], "prompt_tokens": int(inp["input_ids"].shape[1]),
                     "output_ids_tail": out[0, inp["input_ids"].shape[1]:].tolist(),
                     "image_size_wh": size, "timings_ms": summarize(samples),
                     "samples_ms": {k: [round(s.get(k, 0.0) * 1e3, 3) for s in samples] for k in samples[0]}}
            if name == "edit":
                grid = inp["image_grid_thw"][0].tolist()
                entry["source_image"] = {"input_size_wh": case["source"], "grid_thw": grid,
                                         "patches": int(inp["pixel_values"].shape[0]),
                                         "llm_tokens": int(inp["pixel_values"].shape[0]) // 4}
            result_cases[name] = entry
    rss_end = U.rss_status()
    return {
        "mode": "bench",
        "model": os.path.abspath(args.model),
        "upstream": {"path": os.path.abspath(args.upstream),
                     "modeling_vargpt_qwen2_vl.py_sha256": U.file_sha256(os.path.join(
                         args.upstream, "vargpt_qwen_v1_1", "modeling_vargpt_qwen2_vl.py"))},
        "dtype": str(dtype).replace("torch.", ""),
        **info,
        "scale_schedule": schedule,
        "sampling": {"cfg": 3, "tau": 0.5, "top_k": 900, "top_p": 0.97,
                     "note": "hard-coded in upstream's forward; seed = int(time.time()*1000) with the wall "
                             "clock pinned to --seed + run index"},
        "runs": args.runs, "warmup": args.warmup,
        "cases": result_cases,
        "stages": STAGES,
        "memory_mb": U.memory_report(rss_start, rss_after_load, rss_end, reset_ok),
        "threads": torch.get_num_threads(),
        "cpu": {"model": U.cpu_model(), "logical_cpus": os.cpu_count()},
        "versions": U.versions(),
        "shims": {"transformers": getattr(up, "transformers_shims", None), "generation": gen_shims},
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="checkpoint folder")
    ap.add_argument("--upstream", default=os.environ.get("UPSTREAM_V11"),
                    help="VARGPT-v1.1 checkout containing vargpt_qwen_v1_1/ and patching_utils/")
    ap.add_argument("--what", choices=["t2i", "edit", "both"], default="both")
    ap.add_argument("--prompt", default="Please design a drawing of a butterfly on a flower.")
    ap.add_argument("--instruction", default="Make it look like a watercolor painting.")
    ap.add_argument("--edit-image-size", default="512x512",
                    help="WxH of the synthetic source image of the edit (the processor keeps it: "
                         "smart_resize to multiples of 28)")
    ap.add_argument("--seed", type=int, default=1, help="pinned wall clock: the sampler seed of run r is seed + r")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default 2; 1 with --check-fixture)")
    ap.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    ap.add_argument("--attn", choices=["auto", "sdpa", "eager"], default=None,
                    help="LLM / ViT attention (default auto = sdpa; eager with --check-fixture)")
    ap.add_argument("--check-fixture", metavar="EXPECTED_DIR", default=None,
                    help="run the fixture's generation and editing cases and compare ids, bits and images")
    ap.add_argument("--image-tolerance", type=int, default=0,
                    help="--check-fixture: max |difference| of the uint8 image (default 0: identical)")
    ap.add_argument("--out", default=None)
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()
    if not args.upstream:
        raise SystemExit("--upstream DIR (or $UPSTREAM_V11) is required")

    threads = args.threads if args.threads is not None else (1 if args.check_fixture else 2)
    torch.set_num_threads(threads)
    if args.attn is None:
        args.attn = "eager" if args.check_fixture else "auto"
    dtype = torch.float32 if args.dtype == "float32" else torch.bfloat16
    if args.check_fixture:
        result, ok = run_fixture_check(args, dtype)
        result["versions"] = U.versions()
    else:
        result, ok = run_bench(args, dtype), True
    U.write_result(result, ok, args.out)


if __name__ == "__main__":
    main()
