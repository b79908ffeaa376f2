#!/usr/bin/env python3
"""Time the upstream PyTorch VARGPT-v1.1 understanding path on the CPU.

Runs the reference implementation of VARGPT-family/VARGPT-v1.1 (packages
`vargpt_qwen_v1_1/`, imported from a checkout given by --upstream or
$UPSTREAM_V11; nothing of it is copied here) on a checkpoint folder in the
Hugging Face layout and prints one JSON object with:

  * vit      -- Qwen2-VL vision tower + PatchMerger (`model.visual(...)`) for one
                image of the requested size,
  * prefill  -- the first forward of the understanding prompt (system + user
                question + image tokens), exactly as upstream runs it: one
                `model.forward` with pixel_values (ViT + token embedding +
                LLM + lm_head over all prompt positions); also the same forward
                given the precomputed inputs_embeds (LLM + lm_head only),
  * decode   -- N greedy single-token steps with the KV cache, eos ignored
                (`prepare_inputs_for_generation` + `model.forward` + argmax per
                step, the data flow of upstream's patched sampler),
  * memory   -- peak RSS (whole process, and the inference phase alone).

Medians of --runs runs after --warmup warm-up runs.

--check-fixture EXPECTED_DIR instead runs the fixture's understanding case
(greedy, 8 new tokens) through the same code path and compares generated ids,
prefill logits and intermediates with the stored reference.

See README.md next to this file for the environment and the compatibility
shims (all of them are in the "COMPATIBILITY SHIMS" section below).
"""

import argparse
import contextlib
import hashlib
import json
import math
import os
import platform
import resource
import statistics
import sys
import time
import types
import warnings

import numpy as np
import torch
import torch.nn as nn


# =============================================================================
# COMPATIBILITY SHIMS
#
# Upstream pins transformers==4.46.1, torch==2.1 and CUDA-only packages; this
# bench runs it under transformers 5.x and a CPU-only torch. Everything that
# differs from a plain upstream run is in this section; each shim says why.
# None of them changes the arithmetic of the understanding path.
# =============================================================================

def _stub_module(name, **attrs):
    mod = types.ModuleType(name)
    mod.__dict__.update(attrs)
    sys.modules[name] = mod
    return mod


def _unavailable(what):
    def f(*args, **kwargs):
        raise NotImplementedError(f"{what} is not available in this CPU benchmark environment "
                                  "(import-time stub; not used by the understanding path)")
    return f


def install_import_stubs():
    """[S1] Import-only stand-ins for packages upstream imports at module level
    but the understanding path never calls.

    * flash_attn: CUDA-only. `infinity/models/basic.py` imports
      flash_attn_varlen_kvpacked_func unconditionally (Infinity cross-attention,
      image generation only). `flash_attn.ops` stays absent, so basic.py takes its
      own "fused ops not installed" fallback. transformers sees no flash-attn
      distribution, so upstream's `is_flash_attn_2_available()` is False.
    * torchvision: the PyPI wheels are built against CUDA torch and fail to load
      with torch+cpu. Upstream uses it only for image generation/VAE helpers
      (make_grid, transforms, to_tensor).
    * timm: needs torchvision. Infinity blocks use DropPath (identity in eval mode,
      and the blocks are never run for understanding) and `register_model`.
    Real modules are used whenever they import. The transformers modules
    upstream uses are imported (and transformers' cached availability checks
    evaluated) before any stub exists, so transformers itself keeps seeing these
    packages as absent.
    """
    import importlib
    for name in ("transformers.modeling_utils", "transformers.activations", "transformers.generation",
                 "transformers.cache_utils", "transformers.modeling_attn_mask_utils",
                 "transformers.modeling_rope_utils", "transformers.modeling_outputs",
                 "transformers.modeling_flash_attention_utils", "transformers.image_processing_utils",
                 "transformers.image_transforms", "transformers.image_utils", "transformers.video_utils",
                 "transformers.processing_utils", "transformers.tokenization_utils_base",
                 "transformers.models.t5.modeling_t5", "transformers.models.t5.tokenization_t5",
                 "transformers.models.auto.modeling_auto", "transformers.models.auto.processing_auto"):
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    from transformers.utils import import_utils as iu
    for check in ("is_torchvision_available", "is_timm_available", "is_flash_attn_2_available",
                  "is_flash_attn_3_available", "is_flash_attn_4_available",
                  "is_flash_attn_greater_or_equal_2_10", "is_vision_available"):
        if hasattr(iu, check):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                getattr(iu, check)()
    try:
        import flash_attn  # noqa: F401
    except Exception:
        _stub_module("flash_attn",
                     flash_attn_varlen_kvpacked_func=_unavailable("flash_attn_varlen_kvpacked_func"),
                     flash_attn_varlen_func=_unavailable("flash_attn_varlen_func"),
                     flash_attn_func=_unavailable("flash_attn_func"),
                     __version__="0.0.0-stub")

    try:
        import torchvision  # noqa: F401
    except Exception:
        for k in [k for k in sys.modules if k == "torchvision" or k.startswith("torchvision.")]:
            del sys.modules[k]
        tv = _stub_module("torchvision", __version__="0.0.0-stub")
        tv.utils = _stub_module("torchvision.utils", make_grid=_unavailable("torchvision.utils.make_grid"),
                                save_image=_unavailable("torchvision.utils.save_image"))
        tv.transforms = _stub_module("torchvision.transforms")
        tv.transforms.functional = _stub_module("torchvision.transforms.functional",
                                                to_tensor=_unavailable("torchvision to_tensor"))
        tv.transforms.InterpolationMode = types.SimpleNamespace(BICUBIC="bicubic", BILINEAR="bilinear",
                                                                NEAREST="nearest", LANCZOS="lanczos")

    try:
        from timm.models.layers import DropPath  # noqa: F401
    except Exception:
        for k in [k for k in sys.modules if k == "timm" or k.startswith("timm.")]:
            del sys.modules[k]

        class DropPath(nn.Module):
            def __init__(self, drop_prob=0.0, scale_by_keep=True):
                super().__init__()
                self.drop_prob = drop_prob

            def forward(self, x):
                if self.training and self.drop_prob > 0:
                    raise NotImplementedError("timm stub: DropPath is eval-only here")
                return x

        def drop_path(x, drop_prob=0.0, training=False, scale_by_keep=True):
            if training and drop_prob > 0:
                raise NotImplementedError("timm stub: drop_path is eval-only here")
            return x

        timm = _stub_module("timm", __version__="0.0.0-stub")
        timm.models = _stub_module("timm.models", register_model=lambda fn: fn)
        timm.models.layers = _stub_module("timm.models.layers", DropPath=DropPath, drop_path=drop_path)
        timm.layers = timm.models.layers
        sys.modules["timm.layers"] = timm.layers
        timm.loss = _stub_module("timm.loss", SoftTargetCrossEntropy=_unavailable("timm SoftTargetCrossEntropy"))


def install_transformers_compat():
    """Restore the few transformers-4.46 names upstream relies on. Returns the list
    of shims that were actually needed."""
    import transformers
    applied = []

    # [T1] `VideoInput` moved from image_utils to video_utils in 5.x; upstream's
    # processor and image processor import it (type annotations only).
    import transformers.image_utils as image_utils
    if not hasattr(image_utils, "VideoInput"):
        from transformers.video_utils import VideoInput
        image_utils.VideoInput = VideoInput
        applied.append("T1 image_utils.VideoInput")

    # [T2] ROPE_INIT_FUNCTIONS['default'] was removed in 5.x; upstream's
    # Qwen2VLRotaryEmbedding looks it up. This is the 4.46 function verbatim:
    # inv_freq = 1 / base^(arange(0, dim, 2) / dim), attention scaling 1.0.
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
    if "default" not in ROPE_INIT_FUNCTIONS:
        def _compute_default_rope_parameters(config=None, device=None, seq_len=None, **rope_kwargs):
            if config is not None and len(rope_kwargs) > 0:
                raise ValueError("Unexpected arguments: `**rope_kwargs` and `config` are mutually exclusive")
            if len(rope_kwargs) > 0:
                base = rope_kwargs["base"]
                dim = rope_kwargs["dim"]
            else:
                base = config.rope_theta
                partial_rotary_factor = getattr(config, "partial_rotary_factor", 1.0)
                head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
                dim = int(head_dim * partial_rotary_factor)
            attention_factor = 1.0
            inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float().to(device) / dim))
            return inv_freq, attention_factor
        ROPE_INIT_FUNCTIONS["default"] = _compute_default_rope_parameters
        applied.append("T2 ROPE_INIT_FUNCTIONS['default']")

    # [T3] Cache.get_usable_length was removed in 5.x; upstream's
    # Qwen2VLSdpaAttention calls it (its result is not used further). 4.46 body.
    from transformers.cache_utils import Cache
    if not hasattr(Cache, "get_usable_length"):
        def get_usable_length(self, new_seq_length, layer_idx=0):
            max_length = None
            if hasattr(self, "get_max_cache_shape"):
                m = self.get_max_cache_shape()
                max_length = m if (isinstance(m, int) and m > 0) else None
            previous_seq_length = self.get_seq_length(layer_idx)
            if max_length is not None and previous_seq_length + new_seq_length > max_length:
                return max_length - new_seq_length
            return previous_seq_length
        Cache.get_usable_length = get_usable_length
        applied.append("T3 Cache.get_usable_length")

    _ = transformers
    return applied


def read_checkpoint_shapes(model_dir):
    """name -> (shape, dtype) for every tensor of the checkpoint (headers only)."""
    from safetensors import safe_open
    files = safetensors_files(model_dir)
    shapes = {}
    for fn in files:
        with safe_open(fn, framework="pt") as f:
            for k in f.keys():
                sl = f.get_slice(k)
                shapes[k] = (tuple(sl.get_shape()), sl.get_dtype())
    return shapes


def safetensors_files(model_dir):
    idx = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.isfile(idx):
        with open(idx) as f:
            wm = json.load(f)["weight_map"]
        return [os.path.join(model_dir, fn) for fn in sorted(set(wm.values()))]
    single = os.path.join(model_dir, "model.safetensors")
    if os.path.isfile(single):
        return [single]
    raise FileNotFoundError(f"no model.safetensors(.index.json) in {model_dir}")


def derive_generator_sizes(shapes):
    """[L1] Infinity / BSQ-VAE sizes from the checkpoint's tensor shapes.

    Upstream's constructor always builds the image decoder with hard-coded sizes
    (run_infinity.load_var_model: model_type 'infinity_2b' -> depth 32, C 2048,
    16 heads, 8 block chunks; bsq_vae.vae.vae_model: base_ch 128, ch_mult
    1,2,4,4,4, codebook_dim = vae_type 32). config.json does not carry them, so
    for any other checkpoint the sizes are derived from the tensors. For the real
    2B checkpoint the derived values equal the hard-coded ones.
    """
    p = "vargpt_gen."
    blocks = set()
    chunks = set()
    for k in shapes:
        if k.startswith(p + "block_chunks."):
            parts = k.split(".")
            chunks.add(int(parts[2]))
            blocks.add((int(parts[2]), int(parts[4])))
    if not blocks:
        return None
    C, d_vae = shapes[p + "word_embed.weight"][0]
    b0 = p + "block_chunks.0.module.0."
    inf = dict(
        depth=len(blocks),
        embed_dim=C,
        num_heads=shapes[b0 + "sa.scale_mul_1H11"][0][1],
        mlp_ratio=shapes[b0 + "ffn.fc1.weight"][0][0] / C,
        block_chunks=len(chunks),
        text_channels=shapes[p + "cfg_uncond"][0][1],
        text_maxlen=shapes[p + "cfg_uncond"][0][0],
    )
    if float(inf["mlp_ratio"]).is_integer():
        inf["mlp_ratio"] = int(inf["mlp_ratio"])
    v = "vae_local."
    base_ch = shapes[v + "encoder.conv_in.conv.weight"][0][0]
    levels = sorted({int(k.split(".")[3]) for k in shapes if k.startswith(v + "encoder.down.")})
    enc_mult = [shapes[f"{v}encoder.down.{i}.block.0.conv1.conv.weight"][0][0] // base_ch for i in levels]
    up_levels = sorted({int(k.split(".")[3]) for k in shapes if k.startswith(v + "decoder.up.")})
    dec_mult = [shapes[f"{v}decoder.up.{i}.block.0.conv1.conv.weight"][0][0] // base_ch for i in up_levels]
    n_res = len({int(k.split(".")[5]) for k in shapes if k.startswith(v + "encoder.down.0.block.")})
    codebook_dim = shapes[v + "decoder.conv_in.conv.weight"][0][1]
    n_down = len({int(k.split(".")[3]) for k in shapes
                  if k.startswith(v + "encoder.down.") and ".downsample." in k})
    vae = dict(base_ch=base_ch, encoder_ch_mult=enc_mult, decoder_ch_mult=dec_mult,
               num_res_blocks=n_res, codebook_dim=codebook_dim, patch_size=2 ** n_down)
    if codebook_dim != d_vae:
        raise ValueError(f"Infinity word_embed expects {d_vae} bits, VAE has codebook_dim {codebook_dim}")
    return {"infinity": inf, "vae": vae}


def install_generator_size_injection(sizes):
    """[L1] Make upstream's own builders construct Infinity / the VAE with the
    checkpoint's sizes: wrap run_infinity.load_infinity_train (sizes passed via
    model_kwargs/text_channels) and bsq_vae.vae.AutoEncoder (sizes set on its
    args namespace). The original constructors run unchanged otherwise."""
    import vargpt_qwen_v1_1.var_model.tools.run_infinity as run_infinity
    import vargpt_qwen_v1_1.var_model.infinity.models.bsq_vae.vae as bsq_vae_mod

    inf, vae = sizes["infinity"], sizes["vae"]
    if inf["text_maxlen"] != 512:
        raise ValueError(f"cfg_uncond has {inf['text_maxlen']} rows; upstream hard-codes text_maxlen=512")

    orig_load_infinity_train = run_infinity.load_infinity_train
    orig_autoencoder = bsq_vae_mod.AutoEncoder

    def load_infinity_train(*args, **kwargs):
        mk = dict(kwargs.get("model_kwargs") or {})
        mk.update(depth=inf["depth"], embed_dim=inf["embed_dim"], num_heads=inf["num_heads"],
                  mlp_ratio=inf["mlp_ratio"], block_chunks=inf["block_chunks"])
        kwargs["model_kwargs"] = mk
        kwargs["text_channels"] = inf["text_channels"]
        return orig_load_infinity_train(*args, **kwargs)

    def AutoEncoder(args):
        args.base_ch = vae["base_ch"]
        args.encoder_ch_mult = list(vae["encoder_ch_mult"])
        args.decoder_ch_mult = list(vae["decoder_ch_mult"])
        args.num_res_blocks = vae["num_res_blocks"]
        args.codebook_dim = vae["codebook_dim"]
        args.codebook_size = 2 ** vae["codebook_dim"]
        args.patch_size = vae["patch_size"]
        return orig_autoencoder(args)

    run_infinity.load_infinity_train = load_infinity_train
    bsq_vae_mod.AutoEncoder = AutoEncoder


# =============================================================================
# Loading
# =============================================================================

def import_upstream(upstream_dir):
    if not upstream_dir or not os.path.isdir(os.path.join(upstream_dir, "vargpt_qwen_v1_1")):
        raise SystemExit("--upstream DIR (or $UPSTREAM_V11) must point at a VARGPT-v1.1 checkout "
                         "containing vargpt_qwen_v1_1/")
    sys.path.insert(0, os.path.abspath(upstream_dir))
    install_import_stubs()
    applied = install_transformers_compat()
    # upstream prints progress from its constructors; keep stdout for the JSON
    with contextlib.redirect_stdout(sys.stderr):
        from vargpt_qwen_v1_1.configuration_vargpt_qwen2_vl import VARGPTQwen2VLConfig
        from vargpt_qwen_v1_1.modeling_vargpt_qwen2_vl import VARGPTQwen2VLForConditionalGeneration
        from vargpt_qwen_v1_1.processing_vargpt_qwen2_vl import VARGPTQwen2VLProcessor
        from vargpt_qwen_v1_1.image_processing_qwen2_vl import VARGPTQwen2VLImageProcessor
    return types.SimpleNamespace(Config=VARGPTQwen2VLConfig, Model=VARGPTQwen2VLForConditionalGeneration,
                                 Processor=VARGPTQwen2VLProcessor, ImageProcessor=VARGPTQwen2VLImageProcessor,
                                 transformers_shims=applied)


def resolve_attn(attn):
    if attn != "auto":
        return attn
    # transformers 4.46 picks SDPA for models with _supports_sdpa (upstream's
    # classes) whenever torch provides it (torch >= 2.1.1), on every device.
    return "sdpa" if hasattr(torch.nn.functional, "scaled_dot_product_attention") else "eager"


def load_model(up, model_dir, dtype, attn, keep_gen_modules):
    """[L2] Upstream constructor + strict load_state_dict of the checkpoint,
    instead of `from_pretrained`: transformers 5.x builds models on the meta
    device, where Infinity's constructor (tensor .item() calls) cannot run.
    [L3] Config: upstream VARGPTQwen2VLConfig.from_pretrained(model_dir);
    pad_token_id=None when absent (4.46 PretrainedConfig default; 5.x dropped the
    attribute and upstream's Qwen2VLModel reads it).
    [L4] Construction under transformers' no_init_weights(): every parameter is
    overwritten by the strict load (5.x post_init would otherwise run
    _init_weights on the vision sub-model whose config lacks initializer_range).
    """
    from transformers.initialization import no_init_weights
    from safetensors.torch import load_file

    t0 = time.perf_counter()
    shapes = read_checkpoint_shapes(model_dir)
    sizes = derive_generator_sizes(shapes)
    if sizes is None:
        raise SystemExit("checkpoint has no vargpt_gen.* tensors; upstream always builds the image decoder")
    install_generator_size_injection(sizes)

    config = up.Config.from_pretrained(model_dir)
    if not hasattr(config, "pad_token_id"):
        config.pad_token_id = None
    impl = resolve_attn(attn)
    config._attn_implementation = impl
    config.vision_config._attn_implementation = impl

    with contextlib.redirect_stdout(sys.stderr), no_init_weights():
        model = up.Model(config)
    model.eval()
    model.requires_grad_(False)
    t_construct = time.perf_counter() - t0

    state = {}
    for fn in safetensors_files(model_dir):
        state.update(load_file(fn))
    ckpt_dtypes = sorted({str(t.dtype).replace("torch.", "") for t in state.values()})
    if dtype == torch.bfloat16:
        model.to(torch.bfloat16)
    # load_state_dict copies into the existing parameters, converting dtype
    # (bf16 checkpoint -> fp32 model is an exact upcast, as upstream's
    # from_pretrained(torch_dtype=float32) does)
    missing, unexpected = model.load_state_dict(state, strict=True)
    del state
    n_gen = 0
    gen_dropped = False
    for name in ("vargpt_gen", "vae_local"):
        n_gen += sum(p.numel() for p in getattr(model, name).parameters())
    if not keep_gen_modules:
        # as upstream's own understanding evaluation does
        # (understand_eval/lmms_eval/models/vargpt_qwen2vl_v1_1.py: delattr after load)
        delattr(model, "vargpt_gen")
        delattr(model, "vae_local")
        gen_dropped = True
    load_s = time.perf_counter() - t0

    vis_attn = type(model.visual.blocks[0].attn).__name__
    llm_attn = type(model.model.layers[0].self_attn).__name__
    info = {
        "attn_implementation": impl,
        "attn_classes": {"vision": vis_attn, "llm": llm_attn},
        "checkpoint_dtypes": ckpt_dtypes,
        "params": {
            "llm": sum(p.numel() for p in model.model.parameters()) + model.lm_head.weight.numel(),
            "vision": sum(p.numel() for p in model.visual.parameters()),
            "image_generator (vargpt_gen + vae_local)": n_gen,
        },
        "generator_sizes_from_checkpoint": sizes,
        "generator_modules": ("built from the checkpoint, loaded strictly, then deleted before inference "
                              "(as upstream's lmms-eval wrapper does)" if gen_dropped else
                              "built from the checkpoint, loaded strictly, kept in memory (as upstream's demo)"),
        "construct_s": round(t_construct, 3),
        "load_s": round(load_s, 3),
    }
    return model, config, info


def build_processor(up, model_dir, min_pixels=None, max_pixels=None):
    """[L5] upstream VARGPTQwen2VLProcessor(image_processor=upstream
    VARGPTQwen2VLImageProcessor(**preprocessor_config.json),
    tokenizer=PreTrainedTokenizerFast(tokenizer.json), chat_template.json).
    5.x AutoProcessor / AutoTokenizer would substitute 5.x classes; 4.46's
    Qwen2TokenizerFast used tokenizer.json verbatim, as this does."""
    from transformers import PreTrainedTokenizerFast
    with open(os.path.join(model_dir, "preprocessor_config.json")) as f:
        pcfg = json.load(f)
    for k in ("image_processor_type", "processor_class", "size"):
        pcfg.pop(k, None)
    if min_pixels is not None:
        pcfg["min_pixels"] = min_pixels
    if max_pixels is not None:
        pcfg["max_pixels"] = max_pixels
    image_processor = up.ImageProcessor(**pcfg)
    tok_cfg = {}
    tc_path = os.path.join(model_dir, "tokenizer_config.json")
    if os.path.isfile(tc_path):
        with open(tc_path) as f:
            tok_cfg = json.load(f)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_file=os.path.join(model_dir, "tokenizer.json"),
        eos_token=tok_cfg.get("eos_token"), pad_token=tok_cfg.get("pad_token"),
    )
    chat_template = None
    ct_path = os.path.join(model_dir, "chat_template.json")
    if os.path.isfile(ct_path):
        with open(ct_path) as f:
            chat_template = json.load(f)["chat_template"]
    elif "chat_template" in tok_cfg:
        chat_template = tok_cfg["chat_template"]
    return up.Processor(image_processor=image_processor, tokenizer=tokenizer, chat_template=chat_template)


# =============================================================================
# The timed path: upstream model code only
# =============================================================================

class UnderstandingSession:
    """Greedy understanding generation with the data flow of upstream's
    `generate()` + patched `_sample` (patching_utils/vargpt_sample.py) for a
    text answer: per step `prepare_inputs_for_generation` (M-RoPE positions via
    get_rope_index at prefill, cache_position + rope_deltas afterwards),
    `model(**inputs, return_dict=True)`, argmax of the last position's logits,
    and transformers-4.46 `_update_model_kwargs_for_generation` bookkeeping
    (KV cache, attention mask, cache_position, rope_deltas). No logits
    processors, eos ignored."""

    def __init__(self, model, inputs):
        self.model = model
        self.input_ids = inputs["input_ids"]
        self.attention_mask = inputs["attention_mask"]
        self.pixel_values = inputs["pixel_values"]
        self.image_grid_thw = inputs["image_grid_thw"]

    def vit(self):
        m = self.model
        return m.visual(self.pixel_values.type(m.visual.get_dtype()), grid_thw=self.image_grid_thw)

    def _step(self, ids, kw):
        mi = self.model.prepare_inputs_for_generation(ids, **kw)
        out = self.model(**mi, return_dict=True)
        logits = out.logits[:, -1, :].float()
        tok = torch.argmax(logits, dim=-1)
        kw["past_key_values"] = out.past_key_values
        kw["attention_mask"] = torch.cat([kw["attention_mask"], kw["attention_mask"].new_ones((1, 1))], dim=-1)
        kw["cache_position"] = kw["cache_position"][-1:] + 1
        if getattr(out, "rope_deltas", None) is not None:
            kw["rope_deltas"] = out.rope_deltas
        ids = torch.cat([ids, tok[:, None]], dim=-1)
        return ids, kw, logits, mi

    def prefill(self):
        from transformers.cache_utils import DynamicCache
        kw = {
            "attention_mask": self.attention_mask,
            "past_key_values": DynamicCache(),
            "use_cache": True,
            "pixel_values": self.pixel_values,
            "image_grid_thw": self.image_grid_thw,
            "cache_position": torch.arange(self.input_ids.shape[1], dtype=torch.int64),
        }
        return self._step(self.input_ids, kw)

    def decode(self, ids, kw):
        return self._step(ids, kw)

    def prefill_llm_only(self, inputs_embeds, position_ids, rope_deltas):
        """The prefill forward given precomputed inputs_embeds (upstream's
        forward skips embedding + ViT then): LLM + lm_head only."""
        from transformers.cache_utils import DynamicCache
        out = self.model(input_ids=None, inputs_embeds=inputs_embeds, attention_mask=self.attention_mask,
                         position_ids=position_ids, past_key_values=DynamicCache(), use_cache=True,
                         rope_deltas=rope_deltas, return_dict=True)
        return out.logits[:, -1, :].float()


def capture_inputs_embeds(model):
    """Forward pre-hook on the LLM (upstream Qwen2VLModel) recording the
    inputs_embeds that upstream's forward built (token embeddings with the
    image features scattered in)."""
    store = {}

    def hook(module, args, kwargs):
        if "inputs_embeds" not in store and kwargs.get("inputs_embeds") is not None:
            store["inputs_embeds"] = kwargs["inputs_embeds"].detach().clone()
            store["position_ids"] = kwargs.get("position_ids")
    handle = model.model.register_forward_pre_hook(hook, with_kwargs=True)
    return store, handle


# =============================================================================
# Measurements
# =============================================================================

def rss_status():
    out = {}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    k, v = line.split(":", 1)
                    out[k] = int(v.split()[0]) / 1024.0
    except OSError:
        pass
    return out


def reset_peak_rss():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def memory_report(rss_start, rss_after_load, rss_end, reset_ok):
    """RSS figures in MiB: before and after loading, the peak through loading,
    the peak of the inference phase alone (after reset_peak_rss()) and of the
    whole process."""
    ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return {
        "rss_before_load": rss_start.get("VmRSS"),
        "rss_after_load": rss_after_load.get("VmRSS"),
        "peak_rss_through_load": rss_after_load.get("VmHWM"),
        "peak_rss_inference": rss_end.get("VmHWM") if reset_ok else None,
        "peak_rss_process": max(ru, rss_end.get("VmHWM", 0.0), rss_after_load.get("VmHWM", 0.0)),
        "inference_peak_reset": "/proc/self/clear_refs" if reset_ok else "unavailable",
    }


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def file_sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read())
    return h.hexdigest()


def versions():
    import transformers
    v = {"python": platform.python_version(), "torch": torch.__version__,
         "transformers": transformers.__version__}
    for name in ("numpy", "safetensors", "tokenizers", "PIL"):
        try:
            mod = __import__(name)
            v["pillow" if name == "PIL" else name] = getattr(mod, "__version__", "?")
        except Exception:
            pass
    return v


def parse_size(s):
    s = s.lower().replace("*", "x")
    if "x" in s:
        w, h = s.split("x", 1)
        return int(w), int(h)
    return int(s), int(s)


def synthetic_image(width, height, seed=0):
    """Deterministic RGB test image (smooth gradients + noise)."""
    from PIL import Image
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    r = 127 + 100 * np.sin(xx / max(width, 1) * 6.28)
    g = 127 + 100 * np.cos(yy / max(height, 1) * 6.28)
    b = 127 + 60 * np.sin((xx + yy) / max(width + height, 1) * 12.0)
    img = np.stack([r, g, b], axis=-1) + rng.normal(0, 20, size=(height, width, 3))
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")


def bench_image(args):
    """(image, min_pixels, max_pixels) for a timing run: --image with the
    checkpoint's pixel limits (or --min-pixels/--max-pixels), else a synthetic
    --image-size image with the limits widened to keep that size."""
    if args.image:
        from PIL import Image
        return Image.open(args.image).convert("RGB"), args.min_pixels, args.max_pixels
    width, height = parse_size(args.image_size)
    with open(os.path.join(args.model, "preprocessor_config.json")) as f:
        pcfg = json.load(f)
    min_px = args.min_pixels if args.min_pixels is not None else min(pcfg.get("min_pixels", 3136), width * height)
    max_px = args.max_pixels if args.max_pixels is not None else max(pcfg.get("max_pixels", 12845056), width * height)
    return synthetic_image(width, height), min_px, max_px


def rel_err(a, b):
    a = a.detach().double().reshape(-1)
    b = b.detach().double().reshape(-1)
    denom = b.abs().max().item()
    d = (a - b).abs().max().item()
    return {"max_abs_err": d, "max_abs_ref": denom, "rel_err_maxnorm": d / denom if denom else d,
            "rel_err_l2": ((a - b).norm() / b.norm()).item() if b.norm() > 0 else (a - b).norm().item()}


def prepare_inputs(processor, conversation, image, dtype):
    prompt = processor.apply_chat_template(conversation, add_generation_prompt=True)
    inputs = processor(images=[image], text=prompt, return_tensors="pt")
    if dtype == torch.float32:
        inputs = inputs.to(torch.float32)   # as upstream's demo: .to(device, torch.float32)
    return prompt, inputs


# -----------------------------------------------------------------------------

def run_fixture_check(args, up, dtype):
    from safetensors.torch import load_file
    from PIL import Image
    exp_dir = args.check_fixture
    with open(os.path.join(exp_dir, "understanding.json")) as f:
        exp = json.load(f)
    ref = load_file(os.path.join(exp_dir, "understanding.safetensors"))
    n_new = len(exp["generated_ids"])

    model, config, info = load_model(up, args.model, dtype, args.attn, args.keep_gen_modules)
    processor = build_processor(up, args.model)
    image = Image.open(os.path.join(exp_dir, "input.png")).convert("RGB")
    prompt, inputs = prepare_inputs(processor, exp["conversation"], image, dtype)
    sess = UnderstandingSession(model, inputs)

    report = {"mode": "check-fixture", "fixture": exp_dir, "model": args.model,
              "dtype": str(dtype).replace("torch.", ""), "threads": torch.get_num_threads(), **info}
    checks = {}
    checks["prompt_equal"] = prompt == exp["prompt"]
    checks["input_ids_equal"] = bool(torch.equal(inputs["input_ids"][0], ref["input_ids"]))
    checks["pixel_values"] = rel_err(inputs["pixel_values"], ref["pixel_values"])
    checks["image_grid_thw_equal"] = bool(torch.equal(inputs["image_grid_thw"], ref["image_grid_thw"]))

    with torch.no_grad():
        merger = sess.vit()
        checks["merger_out"] = rel_err(merger, ref["merger_out"])
        store, handle = capture_inputs_embeds(model)
        ids, kw, logits, mi = sess.prefill()
        handle.remove()
        checks["mrope_position_ids_equal"] = bool(torch.equal(mi["position_ids"][:, 0, :], ref["mrope_position_ids"]))
        checks["rope_deltas_equal"] = bool(torch.equal(mi["rope_deltas"].reshape(-1), ref["rope_deltas"].reshape(-1)))
        checks["prefill_inputs_embeds"] = rel_err(store["inputs_embeds"][0], ref["prefill_inputs_embeds"])
        checks["prefill_hidden"] = rel_err(model.past_hidden_states[0], ref["prefill_hidden"])
        checks["prefill_last_logits"] = rel_err(logits[0], ref["prefill_last_logits"])
        step_logits = [logits[0]]
        step_pos = []
        for _ in range(n_new - 1):
            ids, kw, logits, mi = sess.decode(ids, kw)
            step_logits.append(logits[0])
            step_pos.append(mi["position_ids"][:, 0, 0])
        llm_only = sess.prefill_llm_only(store["inputs_embeds"], store["position_ids"], kw.get("rope_deltas"))
    gen = ids[0, inputs["input_ids"].shape[1]:].tolist()
    checks["step_logits"] = rel_err(torch.stack(step_logits), ref["step_logits"])
    checks["step_logits_worst_row_rel_err_maxnorm"] = max(
        rel_err(a, b)["rel_err_maxnorm"] for a, b in zip(step_logits, ref["step_logits"]))
    checks["step_position_ids_equal"] = bool(torch.equal(torch.stack(step_pos), ref["step_position_ids"]))
    checks["prefill_llm_only_vs_full_prefill_last_logits"] = rel_err(llm_only[0], step_logits[0])
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


def run_bench(args, up, dtype):
    rss_start = rss_status()
    model, config, info = load_model(up, args.model, dtype, args.attn, args.keep_gen_modules)
    rss_after_load = rss_status()

    image, min_px, max_px = bench_image(args)
    width, height = image.size
    processor = build_processor(up, args.model, min_px, max_px)
    conversation = [{"role": "user", "content": [{"type": "text", "text": args.question}, {"type": "image"}]}]
    prompt, inputs = prepare_inputs(processor, conversation, image, dtype)
    sess = UnderstandingSession(model, inputs)
    grid = inputs["image_grid_thw"][0].tolist()
    n_patches = int(inputs["pixel_values"].shape[0])
    merge = config.vision_config.spatial_merge_size
    n_img_tokens = n_patches // (merge * merge)
    prompt_tokens = int(inputs["input_ids"].shape[1])

    reset_ok = reset_peak_rss()
    N = args.new_tokens
    samples = {"vit": [], "prefill": [], "prefill_llm_only": [], "decode_total": [], "decode_step_median": []}
    generated = None
    with torch.no_grad():
        for r in range(args.warmup + args.runs):
            t0 = time.perf_counter()
            sess.vit()
            t_vit = time.perf_counter() - t0

            store, handle = capture_inputs_embeds(model)
            t0 = time.perf_counter()
            ids, kw, logits, mi = sess.prefill()
            t_prefill = time.perf_counter() - t0
            handle.remove()

            steps = []
            for _ in range(N):
                t0 = time.perf_counter()
                ids, kw, logits, mi = sess.decode(ids, kw)
                steps.append(time.perf_counter() - t0)
            generated = ids[0, prompt_tokens:].tolist()

            embeds, pos, deltas = store["inputs_embeds"], store["position_ids"], kw.get("rope_deltas")
            del kw, ids, store
            t0 = time.perf_counter()
            sess.prefill_llm_only(embeds, pos, deltas)
            t_llm = time.perf_counter() - t0

            if r >= args.warmup:
                samples["vit"].append(t_vit)
                samples["prefill"].append(t_prefill)
                samples["prefill_llm_only"].append(t_llm)
                samples["decode_total"].append(sum(steps))
                samples["decode_step_median"].append(statistics.median(steps))
            if not args.quiet:
                print(f"run {r}{' (warm-up)' if r < args.warmup else ''}: vit {t_vit*1e3:.1f} ms, "
                      f"prefill {t_prefill*1e3:.1f} ms, llm-only prefill {t_llm*1e3:.1f} ms, "
                      f"decode {N} tok {sum(steps)*1e3:.1f} ms", file=sys.stderr)
    rss_end = rss_status()

    med = {k: statistics.median(v) for k, v in samples.items()}
    result = {
        "mode": "bench",
        "model": os.path.abspath(args.model),
        "upstream": {"path": os.path.abspath(args.upstream),
                     "modeling_vargpt_qwen2_vl.py_sha256": file_sha256(os.path.join(
                         args.upstream, "vargpt_qwen_v1_1", "modeling_vargpt_qwen2_vl.py"))},
        "dtype": str(dtype).replace("torch.", ""),
        **info,
        "llm": {"hidden_size": config.hidden_size, "layers": config.num_hidden_layers,
                "heads": config.num_attention_heads, "kv_heads": config.num_key_value_heads,
                "intermediate_size": config.intermediate_size, "vocab_size": config.vocab_size},
        "vision": {"embed_dim": config.vision_config.embed_dim, "depth": config.vision_config.depth,
                   "heads": config.vision_config.num_heads},
        "image": {"source": args.image or f"synthetic {width}x{height}",
                  "input_size_wh": list(image.size),
                  "resized_hw": [grid[1] * config.vision_config.patch_size, grid[2] * config.vision_config.patch_size],
                  "grid_thw": grid, "patches": n_patches, "llm_tokens": n_img_tokens,
                  "min_pixels": min_px, "max_pixels": max_px},
        "prompt_tokens": prompt_tokens,
        "question": args.question,
        "new_tokens": N,
        "runs": args.runs, "warmup": args.warmup,
        "timings_ms": {
            "vit_encode_merger": med["vit"] * 1e3,
            "prefill_full_forward": med["prefill"] * 1e3,
            "prefill_llm_only": med["prefill_llm_only"] * 1e3,
            "decode_total": med["decode_total"] * 1e3,
            "decode_per_token": med["decode_total"] / N * 1e3,
            "decode_step_median": med["decode_step_median"] * 1e3,
        },
        "throughput": {
            "prefill_tok_s_full_forward": prompt_tokens / med["prefill"],
            "prefill_tok_s_llm_only": prompt_tokens / med["prefill_llm_only"],
            "decode_tok_s": N / med["decode_total"],
        },
        "samples_ms": {k: [round(x * 1e3, 3) for x in v] for k, v in samples.items()},
        "memory_mb": memory_report(rss_start, rss_after_load, rss_end, reset_ok),
        "generated_ids": generated,
        "greedy": True, "eos_ignored": True, "logits_processors": "none",
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "cpu": {"model": cpu_model(), "logical_cpus": os.cpu_count(), "machine": platform.machine()},
        "versions": versions(),
        "shims": {"transformers": up.transformers_shims,
                  "stubbed_imports": sorted(n for n in ("flash_attn", "torchvision", "timm")
                                            if getattr(sys.modules.get(n), "__version__", "") == "0.0.0-stub")},
        "definitions": {
            "vit_encode_merger": "model.visual(pixel_values, grid_thw): patch embed + ViT blocks + PatchMerger",
            "prefill_full_forward": "prepare_inputs_for_generation + model.forward with pixel_values on an "
                                    "empty DynamicCache (token embedding, ViT, LLM, lm_head over all prompt "
                                    "positions) + argmax",
            "prefill_llm_only": "model.forward with the precomputed inputs_embeds (no ViT) on an empty cache",
            "decode_total": "N single-token steps after prefill, each prepare_inputs_for_generation + "
                            "model.forward with the KV cache + argmax",
        },
    }
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="checkpoint folder (config.json, model.safetensors, tokenizer.json, ...)")
    ap.add_argument("--upstream", default=os.environ.get("UPSTREAM_V11"),
                    help="VARGPT-v1.1 checkout containing vargpt_qwen_v1_1/ (default: $UPSTREAM_V11)")
    ap.add_argument("--image-size", default="448x448", help="WxH (or one number for a square) of the synthetic test image")
    ap.add_argument("--image", default=None, help="use this image file instead of a synthetic one")
    ap.add_argument("--min-pixels", type=int, default=None, help="override the image processor's min_pixels")
    ap.add_argument("--max-pixels", type=int, default=None, help="override the image processor's max_pixels")
    ap.add_argument("--question", default="What is shown in this image?")
    ap.add_argument("--new-tokens", type=int, default=32, help="decode steps (greedy, eos ignored)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default 2; 1 with --check-fixture)")
    ap.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32",
                    help="float32: bf16 weights upcast (upstream demo); bfloat16: weights and compute in bf16")
    ap.add_argument("--attn", choices=["auto", "sdpa", "eager"], default=None,
                    help="attention implementation (default auto = what upstream picks on CPU: sdpa; "
                         "eager with --check-fixture, as the reference)")
    ap.add_argument("--keep-gen-modules", action="store_true",
                    help="keep the image generator (Infinity + VAE) in memory after loading")
    ap.add_argument("--check-fixture", metavar="EXPECTED_DIR", default=None,
                    help="compare with a fixture's expected/understanding.{json,safetensors} instead of timing")
    ap.add_argument("--tolerance", type=float, default=None,
                    help="max rel. error (max-norm) of the prefill logits for --check-fixture "
                         "(default 1e-4 for float32, 3e-2 for bfloat16 against the float32 reference)")
    ap.add_argument("--out", default=None, help="also write the JSON here")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()

    threads = args.threads if args.threads is not None else (1 if args.check_fixture else 2)
    torch.set_num_threads(threads)
    if args.attn is None:
        args.attn = "eager" if args.check_fixture else "auto"
    dtype = torch.float32 if args.dtype == "float32" else torch.bfloat16
    if args.tolerance is None:
        args.tolerance = 1e-4 if dtype == torch.float32 else 3e-2

    up = import_upstream(args.upstream)
    if args.check_fixture:
        result, ok = run_fixture_check(args, up, dtype)
        result["versions"] = versions()
        result["shims"] = {"transformers": up.transformers_shims}
    else:
        result, ok = run_bench(args, up, dtype), True

    write_result(result, ok, args.out)


def write_result(result, ok, out):
    """Prints the JSON result (and writes it to `out`), then exits 0 if the run or check passed."""
    text = json.dumps(result, indent=2, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))
    if out:
        with open(out, "w") as f:
            f.write(text + "\n")
    print(text)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
