"""The demo model in PyTorch: VARGPT v1's architecture at a small size, with the released
checkpoint's module names, so that state_dict() is the Hugging Face layout the runtime loads.

- vision_tower / language_model: transformers' CLIPVisionModel and LlamaForCausalLM.
- multi_modal_projector, image_gen_projector(_out): the LLaVA and VARGPT MLPs.
- vargpt_gen: VAR's embeddings, AdaLN blocks (L2-normalised attention, softmax scale 1) and head.
- vae_local: the multi-scale VQ-VAE (taming encoder/decoder, residual quantizer with phi convs).

The forward passes are the ones the runtime computes at inference (the VARGPT v1 spec, written
from the upstream code), in their teacher-forced training form.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


# ---------------------------------------------------------------------------------------------
# VQ-VAE

def _norm(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(32, c, eps=1e-6, affine=True)


class ResnetBlock(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.norm1 = _norm(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, 1, 1)
        self.norm2 = _norm(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1)
        self.nin_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return (self.nin_shortcut(x) if self.nin_shortcut is not None else x) + h


class Downsample(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 2, 0)

    def forward(self, x):
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 1, 1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode='nearest'))


class Mid(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.block_1 = ResnetBlock(c, c)
        self.block_2 = ResnetBlock(c, c)

    def forward(self, x):
        return self.block_2(self.block_1(x))


class Encoder(nn.Module):
    def __init__(self, ch: int, ch_mult: tuple[int, ...], num_res_blocks: int, z: int):
        super().__init__()
        self.conv_in = nn.Conv2d(3, ch, 3, 1, 1)
        self.down = nn.ModuleList()
        cin = ch
        for i, m in enumerate(ch_mult):
            level = nn.Module()
            level.block = nn.ModuleList()
            for _ in range(num_res_blocks):
                level.block.append(ResnetBlock(cin, ch * m))
                cin = ch * m
            if i != len(ch_mult) - 1:
                level.downsample = Downsample(cin)
            self.down.append(level)
        self.mid = Mid(cin)
        self.norm_out = _norm(cin)
        self.conv_out = nn.Conv2d(cin, z, 3, 1, 1)

    def forward(self, x):
        h = self.conv_in(x)
        for i, level in enumerate(self.down):
            for b in level.block:
                h = b(h)
            if i != len(self.down) - 1:
                h = level.downsample(h)
        h = self.mid(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class Decoder(nn.Module):
    def __init__(self, ch: int, ch_mult: tuple[int, ...], num_res_blocks: int, z: int):
        super().__init__()
        cin = ch * ch_mult[-1]
        self.conv_in = nn.Conv2d(z, cin, 3, 1, 1)
        self.mid = Mid(cin)
        up = []
        for i in reversed(range(len(ch_mult))):
            level = nn.Module()
            level.block = nn.ModuleList()
            for _ in range(num_res_blocks + 1):
                level.block.append(ResnetBlock(cin, ch * ch_mult[i]))
                cin = ch * ch_mult[i]
            if i != 0:
                level.upsample = Upsample(cin)
            up.insert(0, level)
        self.up = nn.ModuleList(up)  # index = level, executed from the last to the first
        self.norm_out = _norm(cin)
        self.conv_out = nn.Conv2d(cin, 3, 3, 1, 1)

    def forward(self, z):
        h = self.mid(self.conv_in(z))
        for i in reversed(range(len(self.up))):
            for b in self.up[i].block:
                h = b(h)
            if i != 0:
                h = self.up[i].upsample(h)
        return self.conv_out(F.silu(self.norm_out(h)))


def phi_index_map(phi_count: int, scales: int) -> list[int]:
    """VAR's partially shared phi: scale si uses the tick nearest si / (scales - 1)."""
    ticks = np.linspace(1 / 3 / phi_count, 1 - 1 / 3 / phi_count, phi_count)
    return [int(np.argmin(np.abs(ticks - (si / (scales - 1) if scales > 1 else 0.0)))) for si in range(scales)]


class QuantResi(nn.Module):
    def __init__(self, cvae: int, count: int):
        super().__init__()
        self.qresi_ls = nn.ModuleList(nn.Conv2d(cvae, cvae, 3, 1, 1) for _ in range(count))


class Quantizer(nn.Module):
    def __init__(self, vocab: int, cvae: int, patch_nums: tuple[int, ...], phi_count: int = 4, beta: float = 0.25):
        super().__init__()
        self.embedding = nn.Embedding(vocab, cvae)
        nn.init.uniform_(self.embedding.weight, -1 / vocab, 1 / vocab)
        self.quant_resi = QuantResi(cvae, phi_count)
        self.register_buffer('ema_vocab_hit_SV', torch.zeros(len(patch_nums), vocab))
        self.patch_nums = patch_nums
        self.phi_map = phi_index_map(phi_count, len(patch_nums))
        self.beta = beta

    def phi(self, si: int, h):
        return 0.5 * h + 0.5 * self.quant_resi.qresi_ls[self.phi_map[si]](h)

    def lookup(self, x_NC):
        e = self.embedding.weight
        d = (x_NC * x_NC).sum(1, keepdim=True) + (e * e).sum(1)[None] - 2 * x_NC @ e.t()
        return d.argmin(1)

    def codes_to_grid(self, idx_Bl, pn: int):
        B = idx_Bl.shape[0]
        return self.embedding(idx_Bl).transpose(1, 2).reshape(B, -1, pn, pn)

    def up(self, h, si: int, final: int):
        return h if si == len(self.patch_nums) - 1 else F.interpolate(h, size=(final, final), mode='bicubic')

    def forward(self, f):
        """Residual multi-scale quantization with a straight-through estimator (training)."""
        B, C, H, W = f.shape
        f_rest = f.detach().clone()
        f_hat = torch.zeros_like(f)
        loss = f.new_zeros(())
        indices = []
        for si, pn in enumerate(self.patch_nums):
            z = F.interpolate(f_rest, size=(pn, pn), mode='area') if pn != H else f_rest
            idx = self.lookup(z.permute(0, 2, 3, 1).reshape(-1, C)).view(B, pn * pn)
            indices.append(idx)
            h = self.phi(si, self.up(self.codes_to_grid(idx, pn), si, H))
            f_hat = f_hat + h
            f_rest = f_rest - h.detach()
            loss = loss + F.mse_loss(f_hat.detach(), f) * self.beta + F.mse_loss(f_hat, f.detach())
        f_hat = (f_hat.detach() - f.detach()) + f  # straight through to the encoder
        return f_hat, loss / len(self.patch_nums), indices

    @torch.no_grad()
    def encode(self, f):
        B, C, H, W = f.shape
        f_rest = f.clone()
        indices = []
        for si, pn in enumerate(self.patch_nums):
            z = F.interpolate(f_rest, size=(pn, pn), mode='area') if pn != H else f_rest
            idx = self.lookup(z.permute(0, 2, 3, 1).reshape(-1, C)).view(B, pn * pn)
            indices.append(idx)
            f_rest = f_rest - self.phi(si, self.up(self.codes_to_grid(idx, pn), si, H))
        return indices

    def fhat_from_indices(self, indices, final: int):
        f_hat = None
        for si, (pn, idx) in enumerate(zip(self.patch_nums, indices)):
            h = self.phi(si, self.up(self.codes_to_grid(idx, pn), si, final))
            f_hat = h if f_hat is None else f_hat + h
        return f_hat

    def teacher_inputs(self, indices, final: int):
        """VAR's inputs for scales 1..: the area-downsampled running f_hat, [B, L - 1, Cvae]. Given
        only the first k scales' codes (k < scales), the inputs of scales 1..k."""
        f_hat = None
        out = []
        for si in range(min(len(indices), len(self.patch_nums) - 1)):
            pn = self.patch_nums[si]
            h = self.phi(si, self.up(self.codes_to_grid(indices[si], pn), si, final))
            f_hat = h if f_hat is None else f_hat + h
            nxt = self.patch_nums[si + 1]
            out.append(F.interpolate(f_hat, size=(nxt, nxt), mode='area').flatten(2).transpose(1, 2))
        return torch.cat(out, 1)


class VqVae(nn.Module):
    def __init__(self, cfg: 'DemoConfig'):
        super().__init__()
        self.encoder = Encoder(cfg.vae_ch, cfg.vae_ch_mult, cfg.vae_res_blocks, cfg.cvae)
        self.decoder = Decoder(cfg.vae_ch, cfg.vae_ch_mult, cfg.vae_res_blocks, cfg.cvae)
        self.quant_conv = nn.Conv2d(cfg.cvae, cfg.cvae, 3, 1, 1)
        self.post_quant_conv = nn.Conv2d(cfg.cvae, cfg.cvae, 3, 1, 1)
        self.quantize = Quantizer(cfg.codebook, cfg.cvae, cfg.patch_nums)
        self.final = cfg.patch_nums[-1]

    def features(self, img):
        return self.quant_conv(self.encoder(img))

    def decode_fhat(self, f_hat):
        return self.decoder(self.post_quant_conv(f_hat))

    def forward(self, img):
        f_hat, vq_loss, indices = self.quantize(self.features(img))
        return self.decode_fhat(f_hat), vq_loss, indices

    @torch.no_grad()
    def encode_indices(self, img):
        return self.quantize.encode(self.features(img))

    @torch.no_grad()
    def decode_indices(self, indices):
        return self.decode_fhat(self.quantize.fhat_from_indices(indices, self.final)).clamp(-1, 1)


# ---------------------------------------------------------------------------------------------
# VAR (VARGPT's VAR_VAE_v1 body)

class VarAttention(nn.Module):
    def __init__(self, C: int, heads: int):
        super().__init__()
        self.heads = heads
        self.mat_qkv = nn.Linear(C, 3 * C, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(C))
        self.v_bias = nn.Parameter(torch.zeros(C))
        self.register_buffer('zero_k_bias', torch.zeros(C))
        self.scale_mul_1H11 = nn.Parameter(torch.full((1, heads, 1, 1), math.log(4.0)))
        self.proj = nn.Linear(C, C)

    def forward(self, x, mask):
        B, L, C = x.shape
        qkv = F.linear(x, self.mat_qkv.weight, torch.cat((self.q_bias, self.zero_k_bias, self.v_bias)))
        q, k, v = qkv.view(B, L, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        q = F.normalize(q, dim=-1) * self.scale_mul_1H11.clamp_max(math.log(100.0)).exp()
        k = F.normalize(k, dim=-1)
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=1.0)
        return self.proj(o.transpose(1, 2).reshape(B, L, C))


class VarFfn(nn.Module):
    def __init__(self, C: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(C, hidden)
        self.fc2 = nn.Linear(hidden, C)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x), approximate='tanh'))


class AdaLnBlock(nn.Module):
    def __init__(self, C: int, heads: int, mlp: int):
        super().__init__()
        self.attn = VarAttention(C, heads)
        self.ffn = VarFfn(C, mlp)
        self.ada_lin = nn.Sequential(nn.SiLU(), nn.Linear(C, 6 * C))
        self.C = C

    def forward(self, x, cond, mask):
        g1, g2, s1, s2, b1, b2 = self.ada_lin(cond).view(-1, 1, 6, self.C).unbind(2)
        x = x + self.attn(F.layer_norm(x, (self.C,), eps=1e-6) * (1 + s1) + b1, mask) * g1
        x = x + self.ffn(F.layer_norm(x, (self.C,), eps=1e-6) * (1 + s2) + b2) * g2
        return x


class HeadNorm(nn.Module):
    def __init__(self, C: int):
        super().__init__()
        self.ada_lin = nn.Sequential(nn.SiLU(), nn.Linear(C, 2 * C))
        self.C = C

    def forward(self, x, cond):
        scale, shift = self.ada_lin(cond).view(-1, 1, 2, self.C).unbind(2)
        return F.layer_norm(x, (self.C,), eps=1e-6) * (1 + scale) + shift


class VarGen(nn.Module):
    def __init__(self, cfg: 'DemoConfig'):
        super().__init__()
        C = cfg.var_width
        pns = cfg.patch_nums
        L = sum(p * p for p in pns)
        self.C, self.L, self.patch_nums = C, L, pns
        self.word_embed = nn.Linear(cfg.cvae, C)
        self.class_emb = nn.Embedding(cfg.null_class + 1, C)
        nn.init.trunc_normal_(self.class_emb.weight, std=math.sqrt(1 / C / 3))
        self.pos_start = nn.Parameter(torch.randn(1, 1, C) * math.sqrt(1 / C / 3))
        self.pos_1LC = nn.Parameter(torch.randn(1, L, C) * math.sqrt(1 / C / 3))
        self.lvl_embed = nn.Embedding(len(pns), C)
        nn.init.trunc_normal_(self.lvl_embed.weight, std=math.sqrt(1 / C / 3))
        lvl = torch.cat([torch.full((p * p,), i) for i, p in enumerate(pns)]).view(1, L)
        self.register_buffer('lvl_1L', lvl.long())
        d = lvl.view(1, L, 1)
        self.register_buffer('attn_bias_for_masking',
                             torch.where(d >= d.transpose(1, 2), 0.0, -torch.inf).reshape(1, 1, L, L).contiguous())
        self.blocks = nn.ModuleList(AdaLnBlock(C, cfg.var_heads, cfg.var_mlp) for _ in range(cfg.var_depth))
        for b in self.blocks:  # adaLN-zero-like start: small modulation, small residual gains
            nn.init.normal_(b.ada_lin[1].weight, std=0.002)
            nn.init.zeros_(b.ada_lin[1].bias)
            with torch.no_grad():
                b.ada_lin[1].bias[:2 * C] = 0.1
        self.head_nm = HeadNorm(C)
        nn.init.zeros_(self.head_nm.ada_lin[1].weight)
        nn.init.zeros_(self.head_nm.ada_lin[1].bias)
        self.head = nn.Linear(C, cfg.codebook)
        self.null_class = cfg.null_class

    def cond(self):
        return self.class_emb.weight[self.null_class].view(1, self.C)

    def inputs(self, teacher_BLCv):
        """The 680-token input sequence (here L), as VAR_VAE_v1.forward builds it, before the LLM."""
        B = teacher_BLCv.shape[0]
        sos = (self.cond() + self.pos_start.view(1, self.C)).view(1, 1, self.C).expand(B, 1, self.C)
        x = torch.cat((sos, self.word_embed(teacher_BLCv)), 1)
        return x + self.lvl_embed(self.lvl_1L) + self.pos_1LC

    def decode(self, x_BLC):
        """Logits for the first T <= L positions (block-causal: a prefix needs nothing after it)."""
        cond = self.cond()
        T = x_BLC.shape[1]
        mask = self.attn_bias_for_masking[:, :, :T, :T]
        for b in self.blocks:
            x_BLC = b(x_BLC, cond, mask)
        return self.head(self.head_nm(x_BLC, cond))


class GenPatchMerger(nn.Module):
    """VARGPT's projector: ln_q exists in the checkpoint but is never applied."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.ln_q = nn.LayerNorm(cin, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(cin, cin), nn.GELU(), nn.Linear(cin, cout))

    def forward(self, x):
        return self.mlp(x)


class LlavaProjector(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.linear_1 = nn.Linear(cin, cout)
        self.linear_2 = nn.Linear(cout, cout)

    def forward(self, x):
        return self.linear_2(F.gelu(self.linear_1(x)))


# ---------------------------------------------------------------------------------------------
# The whole model

@dataclass
class DemoConfig:
    vocab: int = 0                # set from the tokenizer (rounded up)
    image_token: int = 3
    pad_token: int = 4
    gen_start: int = 5
    gen_end: int = 6
    gen_pad: int = 7
    llm_hidden: int = 256
    llm_layers: int = 4
    llm_heads: int = 4
    llm_intermediate: int = 688
    llm_max_positions: int = 512
    vis_hidden: int = 128
    vis_layers: int = 3
    vis_heads: int = 4
    vis_intermediate: int = 512
    image_size: int = 64
    patch_size: int = 8
    var_width: int = 256
    var_depth: int = 4
    var_heads: int = 4
    var_mlp: int = 1024
    codebook: int = 512
    cvae: int = 16
    # 64 channels at full resolution: the taming GroupNorm has 32 groups, and with one channel per
    # group a flat region normalises to zero and cannot carry its colour (two per group can).
    vae_ch: int = 64
    vae_ch_mult: tuple[int, ...] = (1, 1, 2, 2)
    vae_res_blocks: int = 1
    patch_nums: tuple[int, ...] = (1, 2, 3, 4, 6, 8)

    @property
    def null_class(self) -> int:
        return self.gen_start + 1

    @property
    def image_tokens(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    def llama_config(self):
        from transformers import LlamaConfig
        return LlamaConfig(vocab_size=self.vocab, hidden_size=self.llm_hidden, intermediate_size=self.llm_intermediate,
                           num_hidden_layers=self.llm_layers, num_attention_heads=self.llm_heads,
                           num_key_value_heads=self.llm_heads, hidden_act='silu',
                           max_position_embeddings=self.llm_max_positions, rms_norm_eps=1e-5, rope_theta=10000.0,
                           tie_word_embeddings=False, bos_token_id=1, eos_token_id=2, attention_bias=False,
                           mlp_bias=False, head_dim=self.llm_hidden // self.llm_heads)

    def clip_config(self):
        from transformers import CLIPVisionConfig
        return CLIPVisionConfig(hidden_size=self.vis_hidden, intermediate_size=self.vis_intermediate,
                                num_hidden_layers=self.vis_layers, num_attention_heads=self.vis_heads,
                                image_size=self.image_size, patch_size=self.patch_size, hidden_act='quick_gelu',
                                layer_norm_eps=1e-5, num_channels=3, projection_dim=self.vis_hidden)


CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class DemoModel(nn.Module):
    def __init__(self, cfg: DemoConfig):
        super().__init__()
        from transformers import CLIPVisionModel, LlamaForCausalLM
        self.cfg = cfg
        self.vision_tower = CLIPVisionModel(cfg.clip_config())
        self.multi_modal_projector = LlavaProjector(cfg.vis_hidden, cfg.llm_hidden)
        self.language_model = LlamaForCausalLM(cfg.llama_config())
        self.image_gen_projector = GenPatchMerger(cfg.var_width, cfg.llm_hidden)
        self.image_gen_projector_out = GenPatchMerger(cfg.llm_hidden, cfg.var_width)
        self.vargpt_gen = VarGen(cfg)
        self.vae_local = VqVae(cfg)

    # -- understanding
    def image_features(self, pixel_values):
        out = self.vision_tower(pixel_values=pixel_values, output_hidden_states=True)
        return self.multi_modal_projector(out.hidden_states[-1][:, 1:])  # vision_feature_layer -1, CLS dropped

    def embed(self, ids):
        return self.language_model.model.embed_tokens(ids)

    def llm_hidden(self, embeds, attention_mask=None):
        return self.language_model.model(inputs_embeds=embeds, attention_mask=attention_mask).last_hidden_state

    def logits(self, hidden):
        return self.language_model.lm_head(hidden)


def clip_pixels(images_uint8: torch.Tensor) -> torch.Tensor:
    """[B, H, W, 3] uint8 -> CLIP-normalised [B, 3, H, W] float32."""
    x = images_uint8.permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def vae_pixels(images_uint8: torch.Tensor) -> torch.Tensor:
    return images_uint8.permute(0, 3, 1, 2).float() / 127.5 - 1.0
