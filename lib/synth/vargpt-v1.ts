// The sizes of each VARGPT v1 synthesis preset and the full tensor layout of a VARGPT v1
// checkpoint (spec §11): every key upstream's state_dict holds, with its shape and how synthesis
// fills it (the shared scheme of tensors.ts, plus):
//   scale_mul_1H11             ln 4, upstream's initial value
//   buffers                    as upstream computes them: lvl_1L (int64 scale index per token),
//                              attn_bias_for_masking (0 / -inf block-causal), zero_k_bias (0),
//                              ema_vocab_hit_SV (0)
import { BIAS, checkPositive, EMBED, NORM, POS, TensorLayout } from './tensors.js';
import type { TensorSpec } from './tensors.js';

export type { Init, TensorSpec } from './tensors.js';
export { elementCount, parameterCount } from './tensors.js';

export interface LlmSizes {
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
  intermediate: number;
  vocab: number;
  maxPositions: number;
}

export interface VisionSizes {
  hidden: number;
  layers: number;
  heads: number;
  intermediate: number;
  imageSize: number;
  patchSize: number;
}

export interface VarSizes {
  depth: number;
  width: number;
  heads: number;
  mlp: number;
  patchNums: number[];
  // Rows of class_emb: image_gen_start_token_id + 2 (num_classes = start id + 1, plus one).
  classes: number;
}

export interface VqvaeSizes {
  ch: number;
  chMult: number[];
  resBlocks: number;
  z: number;
  codebook: number;
  phis: number;
}

export interface ModelSizes {
  llm: LlmSizes;
  vision: VisionSizes | null;
  var: VarSizes;
  vqvae: VqvaeSizes;
}

export const PATCH_NUMS = [1, 2, 3, 4, 5, 6, 8, 10, 13, 16];
const CLASSES = 32004;

// upstream build_vae_vargpt_v1(depth): heads = depth, width = 64 * depth, MLP ratio 4.
export function varOfDepth(depth: number): VarSizes {
  return { depth, width: 64 * depth, heads: depth, mlp: 4 * 64 * depth, patchNums: [...PATCH_NUMS], classes: CLASSES };
}

export const FULL_VQVAE: VqvaeSizes = { ch: 160, chMult: [1, 1, 2, 2, 4], resBlocks: 2, z: 32, codebook: 4096, phis: 4 };
const CLIP_L_336: VisionSizes = { hidden: 1024, layers: 24, heads: 16, intermediate: 4096, imageSize: 336, patchSize: 14 };
const llm = (hidden: number, layers: number, heads: number, intermediate: number): LlmSizes => ({
  hidden,
  layers,
  heads,
  kvHeads: heads,
  intermediate,
  vocab: 32064,
  maxPositions: 4096,
});

export type PresetName = 'tiny' | 'small' | 'medium' | 'vargpt-v1';
export const PRESET_NAMES: readonly PresetName[] = ['tiny', 'small', 'medium', 'vargpt-v1'];

// tiny = the vargpt-v1-tiny fixture; small and medium = shared/bench/README.md; vargpt-v1 = the
// released model (Vicuna-7B + CLIP-L/336 + VAR-d30 + VQ-VAE ch160).
export const PRESETS: Readonly<Record<PresetName, ModelSizes>> = {
  tiny: {
    llm: llm(64, 2, 4, 172),
    vision: { hidden: 32, layers: 2, heads: 2, intermediate: 64, imageSize: 336, patchSize: 14 },
    var: varOfDepth(2),
    vqvae: { ch: 32, chMult: [1, 1, 2, 2, 4], resBlocks: 2, z: 32, codebook: 4096, phis: 4 },
  },
  small: {
    llm: llm(1024, 8, 16, 2816),
    vision: { hidden: 256, layers: 4, heads: 4, intermediate: 1024, imageSize: 336, patchSize: 14 },
    var: varOfDepth(8),
    vqvae: FULL_VQVAE,
  },
  medium: { llm: llm(2048, 16, 16, 5504), vision: CLIP_L_336, var: varOfDepth(16), vqvae: FULL_VQVAE },
  'vargpt-v1': { llm: llm(4096, 32, 32, 11008), vision: CLIP_L_336, var: varOfDepth(30), vqvae: FULL_VQVAE },
};

function addLlm(l: TensorLayout, s: LlmSizes): void {
  const headDim = s.hidden / s.heads;
  const p = 'language_model.model';
  l.add(`${p}.embed_tokens.weight`, [s.vocab, s.hidden], EMBED);
  for (let i = 0; i < s.layers; i++) {
    const b = `${p}.layers.${i}`;
    l.norm(`${b}.input_layernorm`, s.hidden, false);
    l.norm(`${b}.post_attention_layernorm`, s.hidden, false);
    l.linear(`${b}.self_attn.q_proj`, s.heads * headDim, s.hidden, { bias: false });
    l.linear(`${b}.self_attn.k_proj`, s.kvHeads * headDim, s.hidden, { bias: false });
    l.linear(`${b}.self_attn.v_proj`, s.kvHeads * headDim, s.hidden, { bias: false });
    l.linear(`${b}.self_attn.o_proj`, s.hidden, s.heads * headDim, { bias: false, residualLayers: s.layers });
    l.linear(`${b}.mlp.gate_proj`, s.intermediate, s.hidden, { bias: false });
    l.linear(`${b}.mlp.up_proj`, s.intermediate, s.hidden, { bias: false });
    l.linear(`${b}.mlp.down_proj`, s.hidden, s.intermediate, { bias: false, residualLayers: s.layers });
  }
  l.norm(`${p}.norm`, s.hidden, false);
  l.linear('language_model.lm_head', s.vocab, s.hidden, { bias: false });
}

function addVision(l: TensorLayout, s: VisionSizes, llmHidden: number): void {
  const p = 'vision_tower.vision_model';
  const patches = (s.imageSize / s.patchSize) ** 2;
  l.add(`${p}.embeddings.class_embedding`, [s.hidden], EMBED);
  l.weight(`${p}.embeddings.patch_embedding.weight`, [s.hidden, 3, s.patchSize, s.patchSize]);
  l.add(`${p}.embeddings.position_embedding.weight`, [patches + 1, s.hidden], POS);
  l.norm(`${p}.pre_layrnorm`, s.hidden);
  for (let i = 0; i < s.layers; i++) {
    const b = `${p}.encoder.layers.${i}`;
    for (const proj of ['q_proj', 'k_proj', 'v_proj']) l.linear(`${b}.self_attn.${proj}`, s.hidden, s.hidden);
    l.linear(`${b}.self_attn.out_proj`, s.hidden, s.hidden, { residualLayers: s.layers });
    l.norm(`${b}.layer_norm1`, s.hidden);
    l.norm(`${b}.layer_norm2`, s.hidden);
    l.linear(`${b}.mlp.fc1`, s.intermediate, s.hidden);
    l.linear(`${b}.mlp.fc2`, s.hidden, s.intermediate, { residualLayers: s.layers });
  }
  l.norm(`${p}.post_layernorm`, s.hidden);
  l.linear('multi_modal_projector.linear_1', llmHidden, s.hidden);
  l.linear('multi_modal_projector.linear_2', llmHidden, llmHidden);
}

function addGenProjectors(l: TensorLayout, llmHidden: number, varWidth: number): void {
  // GenPatchMerger: ln_q exists but is never applied (spec §8.6).
  l.norm('image_gen_projector.ln_q', varWidth);
  l.linear('image_gen_projector.mlp.0', varWidth, varWidth);
  l.linear('image_gen_projector.mlp.2', llmHidden, varWidth);
  l.norm('image_gen_projector_out.ln_q', llmHidden);
  l.linear('image_gen_projector_out.mlp.0', llmHidden, llmHidden);
  l.linear('image_gen_projector_out.mlp.2', varWidth, llmHidden);
}

function addVar(l: TensorLayout, s: VarSizes, cvae: number, codebook: number): void {
  const p = 'vargpt_gen';
  const C = s.width;
  const L = s.patchNums.reduce((a, pn) => a + pn * pn, 0);
  l.linear(`${p}.word_embed`, C, cvae);
  l.add(`${p}.class_emb.weight`, [s.classes, C], EMBED);
  l.add(`${p}.pos_start`, [1, 1, C], POS);
  l.add(`${p}.pos_1LC`, [1, L, C], POS);
  l.add(`${p}.lvl_embed.weight`, [s.patchNums.length, C], POS);
  l.add(`${p}.lvl_1L`, [1, L], { kind: 'lvl' }, 'i64', true);
  l.add(`${p}.attn_bias_for_masking`, [1, 1, L, L], { kind: 'blockCausal' }, 'float', true);
  for (let i = 0; i < s.depth; i++) {
    const b = `${p}.blocks.${i}`;
    l.weight(`${b}.attn.mat_qkv.weight`, [3 * C, C]);
    l.add(`${b}.attn.q_bias`, [C], BIAS);
    l.add(`${b}.attn.v_bias`, [C], BIAS);
    l.add(`${b}.attn.zero_k_bias`, [C], { kind: 'const', value: 0 }, 'float', true);
    l.add(`${b}.attn.scale_mul_1H11`, [1, s.heads, 1, 1], { kind: 'const', value: Math.log(4) });
    l.linear(`${b}.attn.proj`, C, C, { residualLayers: s.depth });
    l.linear(`${b}.ffn.fc1`, s.mlp, C);
    l.linear(`${b}.ffn.fc2`, C, s.mlp, { residualLayers: s.depth });
    l.linear(`${b}.ada_lin.1`, 6 * C, C);
  }
  l.linear(`${p}.head_nm.ada_lin.1`, 2 * C, C);
  l.linear(`${p}.head`, codebook, C);
}

function resnet(l: TensorLayout, prefix: string, cin: number, cout: number): void {
  l.norm(`${prefix}.norm1`, cin);
  l.conv(`${prefix}.conv1`, cout, cin, 3);
  l.norm(`${prefix}.norm2`, cout);
  l.conv(`${prefix}.conv2`, cout, cout, 3);
  if (cin !== cout) l.conv(`${prefix}.nin_shortcut`, cout, cin, 1);
}

function attnBlock(l: TensorLayout, prefix: string, c: number): void {
  l.norm(`${prefix}.norm`, c);
  l.conv(`${prefix}.qkv`, 3 * c, c, 1);
  l.conv(`${prefix}.proj_out`, c, c, 1);
}

// VAR's basic_vae Encoder/Decoder (taming layout) with attention at the lowest resolution and in
// the middle (using_sa, using_mid_sa), plus the multi-scale quantizer (spec §6).
function addVqvae(l: TensorLayout, s: VqvaeSizes, patchLevels: number): void {
  const e = 'vae_local.encoder';
  const levels = s.chMult.length;
  l.conv(`${e}.conv_in`, s.ch, 3, 3);
  let blockIn = s.ch;
  for (let i = 0; i < levels; i++) {
    const blockOut = s.ch * (s.chMult[i] as number);
    for (let j = 0; j < s.resBlocks; j++) {
      resnet(l, `${e}.down.${i}.block.${j}`, blockIn, blockOut);
      blockIn = blockOut;
      if (i === levels - 1) attnBlock(l, `${e}.down.${i}.attn.${j}`, blockIn);
    }
    if (i !== levels - 1) l.conv(`${e}.down.${i}.downsample.conv`, blockIn, blockIn, 3);
  }
  resnet(l, `${e}.mid.block_1`, blockIn, blockIn);
  attnBlock(l, `${e}.mid.attn_1`, blockIn);
  resnet(l, `${e}.mid.block_2`, blockIn, blockIn);
  l.norm(`${e}.norm_out`, blockIn);
  l.conv(`${e}.conv_out`, s.z, blockIn, 3);

  const d = 'vae_local.decoder';
  blockIn = s.ch * (s.chMult[levels - 1] as number);
  l.conv(`${d}.conv_in`, blockIn, s.z, 3);
  resnet(l, `${d}.mid.block_1`, blockIn, blockIn);
  attnBlock(l, `${d}.mid.attn_1`, blockIn);
  resnet(l, `${d}.mid.block_2`, blockIn, blockIn);
  for (let i = levels - 1; i >= 0; i--) {
    const blockOut = s.ch * (s.chMult[i] as number);
    for (let j = 0; j < s.resBlocks + 1; j++) {
      resnet(l, `${d}.up.${i}.block.${j}`, blockIn, blockOut);
      blockIn = blockOut;
      if (i === levels - 1) attnBlock(l, `${d}.up.${i}.attn.${j}`, blockIn);
    }
    if (i !== 0) l.conv(`${d}.up.${i}.upsample.conv`, blockIn, blockIn, 3);
  }
  l.norm(`${d}.norm_out`, blockIn);
  l.conv(`${d}.conv_out`, 3, blockIn, 3);

  l.conv('vae_local.quant_conv', s.z, s.z, 3);
  l.conv('vae_local.post_quant_conv', s.z, s.z, 3);
  l.add('vae_local.quantize.embedding.weight', [s.codebook, s.z], EMBED);
  for (let i = 0; i < s.phis; i++) l.conv(`vae_local.quantize.quant_resi.qresi_ls.${i}`, s.z, s.z, 3);
  l.add('vae_local.quantize.ema_vocab_hit_SV', [patchLevels, s.codebook], { kind: 'const', value: 0 }, 'float', true);
}

export function checkpointLayout(sizes: ModelSizes): TensorSpec[] {
  validateSizes(sizes);
  const l = new TensorLayout();
  if (sizes.vision) addVision(l, sizes.vision, sizes.llm.hidden);
  addLlm(l, sizes.llm);
  addGenProjectors(l, sizes.llm.hidden, sizes.var.width);
  addVar(l, sizes.var, sizes.vqvae.z, sizes.vqvae.codebook);
  addVqvae(l, sizes.vqvae, sizes.var.patchNums.length);
  return l.specs;
}

function validateSizes(s: ModelSizes): void {
  for (const [k, v] of Object.entries(s.llm)) checkPositive(`llm.${k}`, v);
  if (s.llm.hidden % s.llm.heads !== 0) throw new RangeError(`synthesize: llm.hidden ${s.llm.hidden} is not a multiple of heads ${s.llm.heads}`);
  if (s.llm.heads % s.llm.kvHeads !== 0) throw new RangeError(`synthesize: llm.heads ${s.llm.heads} is not a multiple of kvHeads ${s.llm.kvHeads}`);
  if (s.vision) {
    for (const [k, v] of Object.entries(s.vision)) checkPositive(`vision.${k}`, v);
    if (s.vision.imageSize % s.vision.patchSize !== 0) throw new RangeError('synthesize: vision.imageSize must be a multiple of patchSize');
  }
  for (const k of ['depth', 'width', 'heads', 'mlp', 'classes'] as const) checkPositive(`var.${k}`, s.var[k]);
  if (s.var.width % s.var.heads !== 0) throw new RangeError(`synthesize: var.width ${s.var.width} is not a multiple of heads ${s.var.heads}`);
  if (s.var.patchNums.length === 0) throw new RangeError('synthesize: var.patchNums is empty');
  s.var.patchNums.forEach((pn) => checkPositive('var.patchNums[]', pn));
  for (const k of ['ch', 'resBlocks', 'z', 'codebook', 'phis'] as const) checkPositive(`vqvae.${k}`, s.vqvae[k]);
  if (s.vqvae.chMult.length === 0) throw new RangeError('synthesize: vqvae.chMult is empty');
  s.vqvae.chMult.forEach((m) => checkPositive('vqvae.chMult[]', m));
}
