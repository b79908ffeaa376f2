#!/usr/bin/env python3
"""Time the upstream PyTorch BLIP3-o text-to-image path on the CPU, per stage.

Runs the reference implementation of BLIP3-o (GitHub JiuhaiChen/BLIP3o, branch
main, imported from a checkout given by --upstream or $UPSTREAM_BLIP3O; nothing
of it is copied here) on a checkpoint folder in the released layout and prints
one JSON object.

Stage 1 is upstream's own code: `blip3oQwenForInferenceLM.generate_image`
(blip3o/model/language_model/blip3o_qwen_inference.py: tokenize, append [IMG],
embed, append the latent queries, one pass of the bare Qwen2.5 decoder with
plain 1-D positions, final-norm hidden states of the queries) and its
`sample_images` (30 FlowMatchEuler steps of upstream's vendored Lumina NextDiT
with cross-attention, blip3o/model/nextdit_crossattn.py + lumina_nextdit2d.py,
CFG 3 on the batch [zeros, queries]), for the prompt and once for the " "
negative. Stage 2 is the SDXL-style decoder of the diffusion-decoder/ folder,
run with diffusers' own classes (UNet2DConditionModel, EulerDiscreteScheduler,
AutoencoderKL): upstream's pipeline file (`pipeline_llava_gen.py`, shipped
with the released checkpoint, not in the GitHub repository) is not available,
so its loop is written out here as the fixture documents it: 50 Euler steps,
CFG 3 on the batch [prompt, negative], SDXL text_time conditioning, VAE decode.

Stages (`timings_ms`, the runtime's profile names; medians of --runs after
--warmup): llm, flow, negative, unet (+ unet_per_step), vae, total.

--check-fixture EXPECTED_DIR replays the fixture's recorded noise (flow.noise,
neg.flow.noise, unet.noise) through the same timed code and compares ids,
query hidden states, CLIP features, UNet latents, the VAE output and the image.

See README.md next to this file for the environment and every shim.
"""

import argparse
import contextlib
import enum
import importlib
import json
import math
import os
import statistics
import sys
import time
import types

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import blip3o_understanding as B  # noqa: E402
import vargpt_v1_1_understanding as U  # noqa: E402  (shared helpers; no upstream import)

UPSTREAM_INFERENCE = "blip3o.model.language_model.blip3o_qwen_inference"
LUMINA_SCHEDULER_REPO = "Alpha-VLLM/Lumina-Next-SFT-diffusers"
CLIP_WIDTH = 1792          # generate_image: output_img.view(1, 1792, -1)
ORIGINAL_SIZE = (1024, 1024)
CAPTION = "A photo of cute cat"


# =============================================================================
# COMPATIBILITY SHIMS
#
# Upstream pins transformers 4.51.3, a pre-0.33 diffusers fork and CUDA; this
# runs it under transformers 5.x, diffusers v0.32.2 and CPU-only torch. Each
# shim names the fixture README's id where it is the same one. None changes
# what upstream computes.
# =============================================================================

class _Unavailable:
    def __init__(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__}: import-only stub, not used at inference")


class _StubModule(types.ModuleType):
    """Any attribute is a class whose instances raise."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return type(name, (_Unavailable,), {})


def install_import_stubs():
    """[S1] torchvision (its wheels are CUDA builds that break torch+cpu), timm
    (needs torchvision) and ftfy are not installed. Upstream imports every
    vision-tower module at import time (EVA-CLIP train processors, open_clip /
    timm towers); none runs for text-to-image. InterpolationMode is a real enum
    (used in default arguments). The transformers and diffusers modules
    involved are imported first, so neither library sees the stubs."""
    import transformers.utils as tu
    # [D1] diffusers 0.32.2's pipeline_loading_utils imports FLAX_WEIGHTS_NAME,
    # which transformers 5.x dropped (upstream imports numpy_to_pil from there)
    if not hasattr(tu, "FLAX_WEIGHTS_NAME"):
        tu.FLAX_WEIGHTS_NAME = "flax_model.msgpack"
    for name in ("transformers.modeling_utils", "transformers.image_processing_utils",
                 "transformers.image_transforms", "transformers.image_utils", "diffusers", "diffusers.models",
                 "diffusers.schedulers", "diffusers.models.embeddings", "diffusers.models.attention",
                 "diffusers.models.attention_processor", "diffusers.models.normalization",
                 "diffusers.models.modeling_utils", "diffusers.pipelines.pipeline_utils"):
        importlib.import_module(name)
    from transformers.utils import import_utils as iu
    for check in ("is_torchvision_available", "is_timm_available", "is_vision_available"):
        if hasattr(iu, check):
            getattr(iu, check)()

    class InterpolationMode(enum.Enum):
        NEAREST = "nearest"
        BILINEAR = "bilinear"
        BICUBIC = "bicubic"
        LANCZOS = "lanczos"

    stubbed = []
    for name in ("torchvision", "torchvision.transforms", "torchvision.transforms.functional", "torchvision.ops",
                 "torchvision.ops.misc", "torchvision.utils", "timm", "timm.models", "timm.models.layers",
                 "timm.layers", "timm.loss", "ftfy"):
        root = name.split(".")[0]
        try:
            if root in stubbed:
                raise ImportError
            importlib.import_module(root)
            continue
        except Exception:
            pass
        if root not in stubbed:
            stubbed.append(root)
        mod = _StubModule(name)
        mod.__path__ = []
        mod.__version__ = "0.0.0-stub"
        sys.modules[name] = mod
        parent, _, child = name.rpartition(".")
        if parent in sys.modules:
            setattr(sys.modules[parent], child, mod)
    for name in ("torchvision.transforms", "torchvision.transforms.functional"):
        if isinstance(sys.modules.get(name), _StubModule):
            sys.modules[name].InterpolationMode = InterpolationMode
    return stubbed


@contextlib.contextmanager
def no_hub_downloads():
    """[S2] eva_clip/eva_vit.py calls huggingface_hub.snapshot_download (the
    EVA-CLIP-E weights) at import time; the generation tower is built with
    delay_load=True at inference and never used."""
    import huggingface_hub
    real = huggingface_hub.snapshot_download
    huggingface_hub.snapshot_download = lambda *a, **k: os.path.join(os.sep, "nonexistent", "snapshot")
    try:
        yield
    finally:
        huggingface_hub.snapshot_download = real


def import_upstream(upstream_dir):
    """Imports upstream's inference module (and with it blip3o_arch, the vision
    tower builders, the vendored DiT) from the checkout. [I1] The packages
    `blip3o` and `blip3o.model` are registered by path without running their
    __init__.py, which only re-exports the training classes (blip3o_llama,
    blip3o_qwen); nothing on the inference path comes from them."""
    pkg_dir = os.path.join(upstream_dir or "", "blip3o")
    if not upstream_dir or not os.path.isfile(os.path.join(pkg_dir, "model", "nextdit_crossattn.py")):
        raise SystemExit("--upstream DIR (or $UPSTREAM_BLIP3O) must point at a JiuhaiChen/BLIP3o checkout "
                         "(branch main) containing blip3o/model/nextdit_crossattn.py")
    upstream_dir = os.path.abspath(upstream_dir)
    sys.path.insert(0, upstream_dir)
    stubbed = install_import_stubs()
    for pkg, path in (("blip3o", pkg_dir), ("blip3o.model", os.path.join(pkg_dir, "model"))):
        mod = types.ModuleType(pkg)
        mod.__path__ = [os.path.abspath(path)]
        sys.modules[pkg] = mod
    with contextlib.redirect_stdout(sys.stderr), no_hub_downloads():
        inference = importlib.import_module(UPSTREAM_INFERENCE)
        arch = importlib.import_module("blip3o.model.blip3o_arch")
        dit = importlib.import_module("blip3o.model.nextdit_crossattn")
        conversation = importlib.import_module("blip3o.conversation")
    return types.SimpleNamespace(path=upstream_dir, inference=inference, arch=arch, dit=dit,
                                 conversation=conversation, stubbed=stubbed)


def install_flow_scheduler_source(up, scheduler_dir):
    """[T4] generate_image loads FlowMatchEulerDiscreteScheduler.from_pretrained(
    "Alpha-VLLM/Lumina-Next-SFT-diffusers", subfolder="scheduler") from the hub
    on every call. Here it reads scheduler_dir/scheduler_config.json, or, with
    no folder, builds the class defaults (num_train_timesteps 1000, shift 1.0:
    the released file holds exactly those). Still a from_pretrained/constructor
    call per generate_image, as upstream."""
    base = up.inference.FlowMatchEulerDiscreteScheduler

    class LocalFlowMatchEulerDiscreteScheduler(base):
        @classmethod
        def from_pretrained(cls, name=None, subfolder=None, **kwargs):
            if name == LUMINA_SCHEDULER_REPO:
                if scheduler_dir:
                    return base.from_pretrained(scheduler_dir, **kwargs)
                return base()
            return base.from_pretrained(name, subfolder=subfolder, **kwargs)

    up.inference.FlowMatchEulerDiscreteScheduler = LocalFlowMatchEulerDiscreteScheduler
    if scheduler_dir:
        with open(os.path.join(scheduler_dir, "scheduler_config.json")) as f:
            return json.load(f)
    return dict(base().config)


# =============================================================================
# The model: upstream's classes in the 4.51 module layout
# =============================================================================

def derive_dit_sizes(shapes, n_query):
    """[T5] upstream hard-codes the released DiT (NextDiTCrossAttnConfig
    defaults: 24 layers, dim 1792, 28 heads, 8x8); config.json does not hold
    it. The sizes come from the tensor shapes; the grid, stored nowhere, is
    sqrt(n_query) (64 queries on an 8x8 grid in the release)."""
    pre = "model.dit.model."
    dim, in_ch = shapes[pre + "patch_embedder.proj.weight"][0]
    layers = len({k[len(pre):].split(".")[1] for k in shapes if k.startswith(pre + "layers.")})
    heads = shapes[pre + "layers.0.gate"][0][0]
    head_dim = dim // heads
    kv_heads = shapes[pre + "layers.0.attn1.to_k.weight"][0][0] // head_dim
    grid = math.isqrt(n_query)
    if grid * grid != n_query:
        raise SystemExit(f"n_query {n_query} is not a square: no DiT grid")
    return {"input_size": grid, "patch_size": 1, "in_channels": in_ch, "dim": dim, "n_layers": layers,
            "n_heads": heads, "n_kv_heads": kv_heads}


def make_shell_class(up):
    """[T1] Upstream's generate_image/sample_images run on an object with
    upstream's 4.51 layout: `.model` the bare Qwen2.5 text decoder (called with
    inputs_embeds, plain 1-D positions) holding `embed_tokens`,
    `latent_queries` and `dit`; `.visual` the vision tower; `.lm_head`. Under
    transformers 5.x, blip3oQwenForInferenceLM's base class builds a different
    (composite) module tree, so the methods are bound to this holder of the
    same 5.x modules instead; the method bodies are upstream's, unchanged."""
    inf = up.inference.blip3oQwenForInferenceLM
    meta = up.arch.blip3oMetaForCausalLM

    class Blip3oInference(nn.Module):
        generate_image = inf.generate_image
        sample_images = inf.sample_images
        get_n_query = meta.get_n_query
        get_gen_pooling = meta.get_gen_pooling

        def __init__(self, model, visual, lm_head):
            super().__init__()
            self.model = model
            self.visual = visual
            self.lm_head = lm_head

        def get_model(self):
            return self.model

    return Blip3oInference


def load_model(up, model_dir, dtype):
    """Built under no_init_weights(), then filled strictly from the checkpoint
    ([T9]: 5.x from_pretrained builds on the meta device and renames 4.51 keys).
    A generation vision tower's tensors (model.gen_vision_tower.*, probably in the
    release; upstream builds that tower with delay_load=True) are skipped."""
    from safetensors.torch import load_file
    from transformers.initialization import no_init_weights
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import (
        Qwen2_5_VisionTransformerPretrainedModel, Qwen2_5_VLTextModel)

    t0 = time.perf_counter()
    flat = B.read_flat_config(model_dir)
    config = B.qwen_config(flat, "sdpa")        # [T10] sdpa, the 4.51 default
    tcfg = config.text_config
    for k in ("n_query", "gen_pooling", "gen_hidden_size"):
        setattr(tcfg, k, flat.get(k))
    shapes = U.read_checkpoint_shapes(model_dir)
    sizes = derive_dit_sizes(shapes, flat["n_query"])
    with no_init_weights(), contextlib.redirect_stdout(sys.stderr):
        lm = Qwen2_5_VLTextModel(tcfg)
        visual = Qwen2_5_VisionTransformerPretrainedModel(config.vision_config)
        lm.latent_queries = nn.Parameter(torch.zeros(1, flat["n_query"], tcfg.hidden_size))
        lm.dit = up.dit.NextDiTCrossAttn(up.dit.NextDiTCrossAttnConfig(latent_embedding_size=tcfg.hidden_size,
                                                                       **sizes))
    lm_head = nn.Linear(tcfg.hidden_size, tcfg.vocab_size, bias=False)
    model = make_shell_class(up)(lm, visual, lm_head)
    model.eval()
    model.requires_grad_(False)
    model.to(dtype)
    tied = bool(flat.get("tie_word_embeddings", False))
    if tied:
        model.lm_head.weight = model.model.embed_tokens.weight
    state, skipped = {}, {}
    for fn in B.safetensors_files(model_dir):
        for k, v in load_file(fn).items():
            if k.startswith("model.gen_vision_tower."):
                skipped["model.gen_vision_tower"] = skipped.get("model.gen_vision_tower", 0) + 1
            else:
                state[k] = v
    if tied and "lm_head.weight" not in state:
        state["lm_head.weight"] = state["model.embed_tokens.weight"]
    model.load_state_dict(state, strict=True)
    del state
    info = {
        "attn_implementation": "sdpa",
        "dit_sizes_from_checkpoint": sizes,
        "dit_ffn_hidden": model.model.dit.model.layers[0].feed_forward.linear_1.out_features,
        "skipped_checkpoint_tensors": skipped,
        "params": {"llm": sum(p.numel() for n, p in model.model.named_parameters() if not n.startswith("dit.")),
                   "dit": sum(p.numel() for p in model.model.dit.parameters()),
                   "vision": sum(p.numel() for p in model.visual.parameters())},
        "load_s": round(time.perf_counter() - t0, 3),
    }
    return model, flat, info


def decoder_file_variant(folder):
    """The released decoder ships `diffusion_pytorch_model.bf16.safetensors`
    (inference.py loads variant="bf16"); a float32 copy has no variant."""
    return "bf16" if os.path.isfile(os.path.join(folder, "diffusion_pytorch_model.bf16.safetensors")) else None


def load_decoder(model_dir, dtype):
    """[T7] the components inference.py's DiffusionPipeline.from_pretrained
    loads from diffusion-decoder/ (use_safetensors, variant, torch_dtype)."""
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, UNet2DConditionModel
    t0 = time.perf_counter()
    d = os.path.join(model_dir, "diffusion-decoder")
    unet = UNet2DConditionModel.from_pretrained(os.path.join(d, "unet"), variant=decoder_file_variant(
        os.path.join(d, "unet")), use_safetensors=True, torch_dtype=dtype)
    vae = AutoencoderKL.from_pretrained(os.path.join(d, "vae"), variant=decoder_file_variant(
        os.path.join(d, "vae")), use_safetensors=True, torch_dtype=dtype)
    scheduler = EulerDiscreteScheduler.from_pretrained(os.path.join(d, "scheduler"))
    unet.eval().requires_grad_(False)
    vae.eval().requires_grad_(False)
    return types.SimpleNamespace(unet=unet, vae=vae, scheduler=scheduler,
                                 vae_scale_factor=2 ** (len(vae.config.block_out_channels) - 1),
                                 load_s=round(time.perf_counter() - t0, 3))


def load_tokenizer(model_dir):
    return B.load_tokenizer(model_dir)


def template(up, prompt):
    """inference.py's add_template: conv_templates['qwen'], user message, open
    assistant turn."""
    conv = up.conversation.conv_templates["qwen"].copy()
    conv.append_message(conv.roles[0], prompt)
    conv.append_message(conv.roles[1], None)
    return conv.get_prompt()


# =============================================================================
# The timed path
# =============================================================================

class StageClock:
    """Wraps the model's sample_images (instance attribute, so upstream's
    `self.sample_images(...)` finds it) and hooks the decoder forward: flow
    loop and LLM-forward times per generate_image call. With flow_steps set,
    sample_images gets num_inference_steps (--flow-steps) -- the only argument
    added to upstream's call. Also keeps what the fixture check compares."""

    def __init__(self, model, flow_steps=None, keep=False):
        self.model = model
        self.flow_steps = flow_steps
        self.keep = keep
        self.flow_s = []
        self.llm_forward_s = []
        self.query_hidden = []
        self.flow_latents = []
        upstream_sample = type(model).sample_images

        def sample_images(img_hidden_states, scheduler, **kw):
            if self.flow_steps is not None:
                kw.setdefault("num_inference_steps", self.flow_steps)
            if self.keep:
                self.query_hidden.append(img_hidden_states.detach().clone())
            t0 = time.perf_counter()
            out = upstream_sample(model, img_hidden_states, scheduler, **kw)
            self.flow_s.append(time.perf_counter() - t0)
            if self.keep:
                self.flow_latents.append(out.detach().clone())
            return out

        model.sample_images = sample_images
        self._t = None
        self.handles = [model.model.register_forward_pre_hook(self._pre),
                        model.model.register_forward_hook(self._post)]

    def _pre(self, *a):
        self._t = time.perf_counter()

    def _post(self, *a):
        self.llm_forward_s.append(time.perf_counter() - self._t)

    def reset(self):
        self.flow_s.clear()
        self.llm_forward_s.clear()
        self.query_hidden.clear()
        self.flow_latents.clear()


def unet_denoise(dec, prompt_embeds, negative_embeds, height, width, steps, guidance_scale=3.0, noise=None,
                 record=None):
    """The decoder pipeline's denoising loop (pipeline_llava_gen.py as the
    fixture documents it): prompt_embeds [cond, uncond]; text_embeds their token
    mean; time_ids (original 1024x1024, crop 0,0, target HxW) for both rows;
    latents = randn * init_noise_sigma; per step scale_model_input, one UNet pass
    on [x, x], guided = uncond + scale * (cond - uncond), EulerDiscrete step."""
    from diffusers.utils.torch_utils import randn_tensor
    unet, scheduler = dec.unet, dec.scheduler
    embeds = torch.cat([prompt_embeds, negative_embeds], dim=0)
    text_embeds = embeds.mean(dim=1)
    ids = list(ORIGINAL_SIZE) + [0, 0] + [height, width]
    time_ids = torch.tensor(ids + ids)
    scheduler.set_timesteps(steps)
    shape = (1, unet.config.in_channels, height // dec.vae_scale_factor, width // dec.vae_scale_factor)
    latents = noise.reshape(shape).clone() if noise is not None else randn_tensor(shape, dtype=embeds.dtype)
    latents = latents * scheduler.init_noise_sigma
    step_s = []
    if record is not None:
        record.update(prompt_embeds=embeds, text_embeds=text_embeds, time_ids=time_ids, latents=[latents])
    for t in scheduler.timesteps:
        t0 = time.perf_counter()
        model_input = scheduler.scale_model_input(torch.cat([latents] * 2), t)
        eps = unet(model_input, t, encoder_hidden_states=embeds,
                   added_cond_kwargs={"text_embeds": text_embeds, "time_ids": time_ids}).sample
        eps_cond, eps_uncond = eps.chunk(2)
        guided = eps_uncond + guidance_scale * (eps_cond - eps_uncond)
        latents = scheduler.step(guided, t, latents).prev_sample
        step_s.append(time.perf_counter() - t0)
        if record is not None:
            record["latents"].append(latents)
    return latents, step_s


def vae_decode(dec, latents):
    """The pipeline's decode_latents + numpy_to_pil: (1/scaling_factor) * latents,
    VAE decoder, (x/2 + 0.5).clamp(0, 1), round(255 x) to uint8."""
    from diffusers.pipelines.pipeline_utils import numpy_to_pil
    vae_input = 1 / dec.vae.config.scaling_factor * latents
    sample = dec.vae.decode(vae_input).sample
    image01 = (sample / 2 + 0.5).clamp(0, 1).cpu().permute(0, 2, 3, 1).float().numpy()
    image = numpy_to_pil(image01)[0]
    return image, sample, image01


def text_to_image(model, dec, tokenizer, clock, prompt, height, width, steps, noise=None, record=None):
    """One pipe([prompt]) call with an empty negative cache: stage 1 for the
    prompt, stage 1 for " ", the UNet loop, the VAE. Returns the image and the
    stage times (s)."""
    clock.reset()
    t0 = time.perf_counter()
    prompt_embeds = model.generate_image(text=[prompt], tokenizer=tokenizer)
    t1 = time.perf_counter()
    negative_embeds = model.generate_image(text=[" "], tokenizer=tokenizer)
    t2 = time.perf_counter()
    latents, step_s = unet_denoise(dec, prompt_embeds, negative_embeds, height, width, steps, noise=noise,
                                   record=record)
    t3 = time.perf_counter()
    image, sample, image01 = vae_decode(dec, latents)
    t4 = time.perf_counter()
    if record is not None:
        record.update(prompt_clip=prompt_embeds, negative_clip=negative_embeds, vae_sample=sample, image01=image01)
    times = {
        "llm": (t1 - t0) - clock.flow_s[0],
        "flow": clock.flow_s[0],
        "negative": t2 - t1,
        "negative_llm": (t2 - t1) - clock.flow_s[1],
        "negative_flow": clock.flow_s[1],
        "llm_forward": clock.llm_forward_s[0],
        "unet": t3 - t2,
        "unet_loop": sum(step_s),
        "unet_step_median": statistics.median(step_s),
        "vae": t4 - t3,
        "total": t4 - t0,
    }
    return image, times


@contextlib.contextmanager
def replayed_flow_noise(up, tensors):
    """Hands upstream's sample_images the recorded flow noise, in draw order,
    instead of its global torch.randn draws (randn_tensor without a generator)."""
    real = up.inference.randn_tensor
    queue = list(tensors)

    def randn_tensor(shape, generator=None, device=None, dtype=None, layout=None):
        x = queue.pop(0)
        return x.reshape(shape).to(dtype=dtype)
    up.inference.randn_tensor = randn_tensor
    try:
        yield queue
    finally:
        up.inference.randn_tensor = real


def default_size(dec):
    return dec.unet.config.sample_size * dec.vae_scale_factor


def setup(args, dtype):
    up = import_upstream(args.upstream)
    flow_cfg = install_flow_scheduler_source(up, args.flow_scheduler)
    with contextlib.redirect_stdout(sys.stderr):
        model, flat, info = load_model(up, args.model, dtype)
        dec = load_decoder(args.model, dtype)
    tokenizer = load_tokenizer(args.model)
    return up, flow_cfg, model, flat, info, dec, tokenizer


# -----------------------------------------------------------------------------

def run_fixture_check(args, dtype):
    from PIL import Image
    from safetensors.torch import load_file
    exp_dir = args.check_fixture
    with open(os.path.join(exp_dir, "generation.json")) as f:
        exp = json.load(f)
    ref = load_file(os.path.join(exp_dir, "generation.safetensors"))
    if args.flow_scheduler is None:
        cand = os.path.join(os.path.dirname(os.path.abspath(exp_dir)), "external", *LUMINA_SCHEDULER_REPO.split("/"),
                            "scheduler")
        args.flow_scheduler = cand if os.path.isdir(cand) else None
    up, flow_cfg, model, flat, info, dec, tokenizer = setup(args, dtype)
    height, width = exp["height_width"]
    prompt = template(up, f"Please generate image based on the following caption: {exp['caption']}")
    clock = StageClock(model, flow_steps=args.flow_steps, keep=True)

    checks = {"prompt_equal": prompt == exp["prompt"],
              "input_ids_equal": tokenizer([prompt], return_tensors="pt").input_ids[0].tolist() + [151665]
              == ref["input_ids"].tolist(),
              "neg_input_ids_equal": tokenizer([" "], return_tensors="pt").input_ids[0].tolist() + [151665]
              == ref["neg.input_ids"].tolist(),
              "flow_scheduler_config": flow_cfg}
    record = {}
    with torch.no_grad(), replayed_flow_noise(up, [ref["flow.noise"], ref["neg.flow.noise"]]) as left:
        image, _ = text_to_image(model, dec, tokenizer, clock, prompt, height, width, args.steps,
                                 noise=ref["unet.noise"], record=record)
    checks["flow_noise_draws_used"] = 2 - len(left)
    full = args.steps == 50 and args.flow_steps in (None, 30)

    def cmp(name, a, b):
        checks[name] = U.rel_err(a.reshape(b.shape), b)

    cmp("query_hidden", clock.query_hidden[0], ref["query_hidden"])
    cmp("neg.query_hidden", clock.query_hidden[1], ref["neg.query_hidden"])
    if full:
        cmp("flow.latents_final", clock.flow_latents[0], ref["flow.latents"][-1])
        cmp("neg.flow.latents_final", clock.flow_latents[1], ref["neg.flow.latents"][-1])
        cmp("clip_features", record["prompt_clip"], ref["clip_features"])
        cmp("neg.clip_features", record["negative_clip"], ref["neg.clip_features"])
        cmp("unet.prompt_embeds", record["prompt_embeds"], ref["unet.prompt_embeds"])
        cmp("unet.text_embeds", record["text_embeds"], ref["unet.text_embeds"])
        checks["unet.time_ids_equal"] = record["time_ids"].tolist() == ref["unet.time_ids"].tolist()
        cmp("unet.latents", torch.cat(record["latents"]), ref["unet.latents"])
        cmp("vae.sample", record["vae_sample"], ref["vae.sample"])
        cmp("image01", torch.from_numpy(record["image01"]), ref["image01"])
        got = torch.from_numpy(np.array(image))
        diff = (got.int() - ref["image_uint8"].int()).abs()
        checks["image_uint8"] = {"pixels_differing": int((diff > 0).sum()), "max_abs_diff": int(diff.max())}
        png = np.asarray(Image.open(os.path.join(exp_dir, "generation.png")).convert("RGB"))
        checks["image_equals_generation_png"] = bool(np.array_equal(np.asarray(image), png))
    else:
        checks["note"] = "--steps/--flow-steps shortened: only the LLM stage is compared"
    tol = args.tolerance
    worst = max(v["rel_err_maxnorm"] for v in checks.values() if isinstance(v, dict) and "rel_err_maxnorm" in v)
    ok = (checks["prompt_equal"] and checks["input_ids_equal"] and checks["neg_input_ids_equal"]
          and worst <= tol and (not full or checks["image_uint8"]["max_abs_diff"] <= 1))
    checks["worst_rel_err_maxnorm"] = worst
    checks["tolerance_rel_err_maxnorm"] = tol
    checks["pass"] = bool(ok)
    return {"mode": "check-fixture", "fixture": exp_dir, "model": args.model, "threads": torch.get_num_threads(),
            "dtype": str(dtype).replace("torch.", ""), **info, "checks": checks}, ok


def run_bench(args, dtype):
    rss_start = U.rss_status()
    up, flow_cfg, model, flat, info, dec, tokenizer = setup(args, dtype)
    rss_after_load = U.rss_status()
    height = args.height or default_size(dec)
    width = args.width or default_size(dec)
    prompt = template(up, f"Please generate image based on the following caption: {args.caption}")
    n_prompt = len(tokenizer([prompt]).input_ids[0]) + 1
    clock = StageClock(model, flow_steps=args.flow_steps)

    reset_ok = U.reset_peak_rss()
    samples = {}
    with torch.no_grad():
        for r in range(args.warmup + args.runs):
            torch.manual_seed(args.seed + r)
            image, times = text_to_image(model, dec, tokenizer, clock, prompt, height, width, args.steps)
            if r >= args.warmup:
                for k, v in times.items():
                    samples.setdefault(k, []).append(v)
            if not args.quiet:
                print(f"run {r}{' (warm-up)' if r < args.warmup else ''}: " +
                      ", ".join(f"{k} {v*1e3:.0f} ms" for k, v in times.items() if k in
                                ("llm", "flow", "negative", "unet", "vae", "total")), file=sys.stderr)
            if args.save_image and r == args.warmup + args.runs - 1:
                image.save(args.save_image)
    rss_end = U.rss_status()
    med = {k: statistics.median(v) * 1e3 for k, v in samples.items()}
    med["unet_per_step"] = med["unet_loop"] / args.steps
    tc = B.qwen_config(flat, "sdpa").text_config
    flow_steps = args.flow_steps or 30
    return {
        "mode": "bench",
        "family": "blip3o",
        "what": "text-to-image",
        "model": os.path.abspath(args.model),
        "upstream": {"path": up.path, "blip3o_qwen_inference.py_sha256": U.file_sha256(
            os.path.join(up.path, B.UPSTREAM_MODULE))},
        "dtype": str(dtype).replace("torch.", ""),
        **info,
        "llm": {"hidden_size": tc.hidden_size, "layers": tc.num_hidden_layers, "heads": tc.num_attention_heads,
                "kv_heads": tc.num_key_value_heads, "intermediate_size": tc.intermediate_size},
        "n_query": flat["n_query"],
        "unet": {"block_out_channels": list(dec.unet.config.block_out_channels),
                 "params": sum(p.numel() for p in dec.unet.parameters())},
        "vae": {"block_out_channels": list(dec.vae.config.block_out_channels),
                "decoder_params": sum(p.numel() for p in dec.vae.decoder.parameters())
                + sum(p.numel() for p in dec.vae.post_quant_conv.parameters())},
        "decoder_load_s": dec.load_s,
        "prompt": prompt,
        "prompt_tokens": n_prompt,
        "negative_tokens": len(tokenizer([" "]).input_ids[0]) + 1,
        "image_hw": [height, width],
        "latent_hw": [height // dec.vae_scale_factor, width // dec.vae_scale_factor],
        "flow": {"steps": flow_steps, "cfg": 3.0, "batch": "[zeros, queries]", "scheduler_config": flow_cfg},
        "unet_loop": {"steps": args.steps, "cfg": 3.0, "batch": "[prompt, negative]",
                      "scheduler_config": dict(dec.scheduler.config)},
        "seed": args.seed,
        "runs": args.runs, "warmup": args.warmup,
        "timings_ms": med,
        "samples_ms": {k: [round(x * 1e3, 3) for x in v] for k, v in samples.items()},
        "memory_mb": U.memory_report(rss_start, rss_after_load, rss_end, reset_ok),
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "cpu": {"model": U.cpu_model(), "logical_cpus": os.cpu_count()},
        "versions": versions(),
        "stubbed_imports": up.stubbed,
        "definitions": {
            "llm": "upstream generate_image for the prompt without its flow loop: scheduler from_pretrained, "
                   "tokenize, [IMG], embed, latent queries, LLM forward (output_hidden_states), query slice",
            "llm_forward": "the LLM forward alone (inside llm)",
            "flow": f"upstream sample_images for the prompt: {flow_steps} FlowMatchEuler steps of the DiT on "
                    "[zeros, queries], CFG 3",
            "negative": "upstream generate_image for ' ' (LLM + flow), once per image (empty negative cache)",
            "unet": f"the decoder loop: conditioning, noise, {args.steps} Euler steps of the UNet on "
                    "[prompt, negative], CFG 3",
            "unet_per_step": "unet_loop / steps (unet_loop: the steps alone)",
            "vae": "1/scaling_factor * latents, VAE decode, to uint8 image",
            "total": "all of the above, one image",
        },
    }


def versions():
    v = U.versions()
    import diffusers
    v["diffusers"] = diffusers.__version__
    v["diffusers_path"] = os.path.dirname(diffusers.__file__)
    return v


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="BLIP3-o checkpoint folder (with diffusion-decoder/)")
    ap.add_argument("--upstream", default=os.environ.get("UPSTREAM_BLIP3O"),
                    help="JiuhaiChen/BLIP3o checkout, branch main (default $UPSTREAM_BLIP3O)")
    ap.add_argument("--flow-scheduler", default=None,
                    help="folder with the Lumina scheduler_config.json (default: diffusers' "
                         "FlowMatchEulerDiscreteScheduler defaults, 1000 steps, shift 1.0; with --check-fixture "
                         "the fixture's external/ copy)")
    ap.add_argument("--caption", default=CAPTION)
    ap.add_argument("--height", type=int, default=None, help="image height (default unet sample_size * VAE scale)")
    ap.add_argument("--width", type=int, default=None)
    ap.add_argument("--steps", type=int, default=50, help="UNet Euler steps (the pipeline's default 50)")
    ap.add_argument("--flow-steps", type=int, default=None,
                    help="DiT flow steps (default: upstream's own 30, its argument left untouched)")
    ap.add_argument("--seed", type=int, default=42, help="torch.manual_seed(seed + run) before each run")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default 2; 1 with --check-fixture)")
    ap.add_argument("--check-fixture", metavar="EXPECTED_DIR", default=None,
                    help="replay a fixture's generation case and compare instead of timing")
    ap.add_argument("--tolerance", type=float, default=1e-4,
                    help="max rel. error (max-norm) of every compared tensor for --check-fixture")
    ap.add_argument("--save-image", default=None, help="write the last run's image here")
    ap.add_argument("--out", default=None, help="also write the JSON here")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()

    torch.set_num_threads(args.threads if args.threads is not None else (1 if args.check_fixture else 2))
    B.run(args, torch.float32, run_fixture_check, run_bench, versions)


if __name__ == "__main__":
    main()
