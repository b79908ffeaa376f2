// BLIP3-o's Lumina-Next DiT and the stage-1 flow sampler against the blip3o-tiny fixture: one DiT
// call on the recorded step-0 inputs (every tensor of dit_step), then the whole guided flow loop
// from the recorded query hidden states and noise, for the prompt and the " " negative of the
// generation and the reconstruction cases (every stored flow.* tensor and the CLIP features).
// Tolerance: 4x each tensor's float32-vs-float64 spread from the fixture, never tighter than 1e-5
// of max|ref|; the schedule's tables and integer timesteps exactly.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { native, type NativeBlip3oDit, type NativeTensor } from '../../lib/native.js';
import { asFloat32, asNumbers, readJson, readSafetensors, type StTensor } from '../helpers/fixtures.js';
import { expectClose, reportObserved, spreadTolerance } from '../helpers/model-fixture.js';
import { blip3oDir, blip3oExpectedDir, blip3oModelDir, v11ModelDir } from '../helpers/paths.js';
import { validF32File } from '../helpers/safetensors-writer.js';

interface CaseJson {
  tensors: Record<string, { shape: number[]; f32_vs_f64?: { rel_err_maxnorm?: number } }>;
}

interface Case {
  name: string;
  tensors: Map<string, StTensor>;
  json: CaseJson;
}

function loadCase(name: string): Case {
  return {
    name,
    tensors: readSafetensors(path.join(blip3oExpectedDir, `${name}.safetensors`)),
    json: readJson<CaseJson>(path.join(blip3oExpectedDir, `${name}.json`)),
  };
}

const ditStep = loadCase('dit_step');
const generation = loadCase('generation');
const reconstruction = loadCase('reconstruction');

// The flow scheduler config upstream downloads at run time (Lumina-Next-SFT's).
const scheduler = readJson<{ shift: number; num_train_timesteps: number }>(
  path.join(blip3oDir, 'external', 'Alpha-VLLM', 'Lumina-Next-SFT-diffusers', 'scheduler', 'scheduler_config.json'),
);
// Upstream's generate_image hard-codes the flow CFG scale (the fixture README: "both CFG scales (3.0)").
const FLOW_GUIDANCE = 3.0;

function get(c: Case, name: string): StTensor {
  const t = c.tensors.get(name);
  if (!t) throw new Error(`${c.name}: fixture tensor ${name} is missing`);
  return t;
}

function tolerance(c: Case, tensor: string): number {
  return spreadTolerance(c.json.tensors, tensor, c.name);
}

function f32(t: NativeTensor): Float32Array {
  expect(t.dtype).toBe('f32');
  return new Float32Array(t.data);
}

function ints(t: NativeTensor): number[] {
  expect(t.dtype).toBe('i64');
  return Array.from(new BigInt64Array(t.data), Number);
}

function traced(trace: Record<string, NativeTensor> | undefined, name: string): NativeTensor {
  const t = trace?.[name];
  if (!t) throw new Error(`the trace has no ${name}`);
  return t;
}

// Rows `indices` of a [N, ...] tensor, concatenated.
function rows(t: NativeTensor, indices: number[]): Float32Array {
  const all = f32(t);
  const size = all.length / t.shape[0]!;
  const out = new Float32Array(indices.length * size);
  indices.forEach((r, i) => out.set(all.subarray(r * size, (r + 1) * size), i * size));
  return out;
}

// The stage-1 request of a recorded run (prefix '' for the prompt, 'neg.' for the " " negative).
function sampleRequest(c: Case, prefix: string, steps = get(c, `${prefix}flow.timesteps`).shape[0]!) {
  return {
    queryHidden: asFloat32(get(c, `${prefix}query_hidden`)),
    noise: asFloat32(get(c, `${prefix}flow.noise`)),
    steps,
    guidance: FLOW_GUIDANCE,
    shift: scheduler.shift,
    trainTimesteps: scheduler.num_train_timesteps,
  };
}

describe('BLIP3-o DiT and flow sampler against the fixture', () => {
  let dit: NativeBlip3oDit;
  beforeAll(async () => {
    dit = await native().loadBlip3oDit(blip3oModelDir, 'cpu');
  });
  afterAll(() => {
    reportObserved('BLIP3-o DiT');
  });

  it('derives its sizes from tensor shapes', () => {
    const manifest = readJson<{ configuration: { dit: Record<string, number> } }>(path.join(blip3oExpectedDir, 'manifest.json'));
    const d = manifest.configuration.dit;
    expect(dit.config()).toMatchObject({
      dim: d.dim,
      layers: d.n_layers,
      heads: d.n_heads,
      kvHeads: d.n_kv_heads,
      headDim: d.head_dim,
      ffnHidden: d.ffn_hidden,
      inChannels: d.in_channels,
      outChannels: d.in_channels,
      captionDim: d.caption_dim,
      tembDim: d.temb_dim,
    });
  });

  it('dit_step: one call on flow step 0 matches every recorded tensor', async () => {
    const c = ditStep;
    const inputs = new Set(['x', 'timestep', 'z_latents']);
    const r = await dit.forward({
      x: asFloat32(get(c, 'x')),
      timestep: asNumbers(get(c, 'timestep')),
      context: asFloat32(get(c, 'z_latents')),
      trace: true,
    });
    expect(r.v.shape).toEqual(get(c, 'v').shape);
    expectClose('dit_step.v (result)', f32(r.v), asFloat32(get(c, 'v')), tolerance(c, 'v'));
    const names = Object.keys(c.json.tensors).filter((n) => !inputs.has(n));
    expect(names.length).toBeGreaterThan(15);
    for (const name of names) {
      const t = traced(r.trace, name);
      expect(t.shape, name).toEqual(get(c, name).shape);
      expectClose(`dit_step.${name}`, f32(t), asFloat32(get(c, name)), tolerance(c, name));
    }
  });

  // One stage-1 run (prefix '' for the prompt, 'neg.' for the " " negative) against whatever steps
  // the case stored.
  async function checkFlow(c: Case, prefix: string): Promise<void> {
    const p = (n: string) => `${prefix}${n}`;
    const timesteps = get(c, p('flow.timesteps'));
    const r = await dit.sample({ ...sampleRequest(c, prefix), trace: true });
    const label = `${c.name}.${prefix}`;
    const tr = r.trace;
    expect(Array.from(f32(traced(tr, 'flow.sigmas')))).toEqual(Array.from(asFloat32(get(c, p('flow.sigmas')))));
    expect(Array.from(f32(traced(tr, 'flow.timesteps')))).toEqual(Array.from(asFloat32(timesteps)));
    expect(ints(traced(tr, 'flow.t_int'))).toEqual(asNumbers(get(c, p('flow.t_int'))));

    const latentIdx = asNumbers(get(c, p('flow.latent_idx')));
    expectClose(`${label}flow.latents`, rows(traced(tr, 'flow.latents'), latentIdx), asFloat32(get(c, p('flow.latents'))),
      tolerance(c, p('flow.latents')));
    const vSteps = asNumbers(get(c, p('flow.v_steps')));
    for (const v of ['flow.v_uncond', 'flow.v_cond'] as const)
      expectClose(`${label}${v}`, rows(traced(tr, v), vSteps), asFloat32(get(c, p(v))), tolerance(c, p(v)));
    const guided = asNumbers(get(c, p('flow.guided_steps')));
    expectClose(`${label}flow.v_guided`, rows(traced(tr, 'flow.v_guided'), guided), asFloat32(get(c, p('flow.v_guided'))),
      tolerance(c, p('flow.v_guided')));

    if (c.tensors.has(p('clip_features'))) {
      expect(r.clipFeatures.shape).toEqual(get(c, p('clip_features')).shape);
      expectClose(`${label}clip_features`, f32(r.clipFeatures), asFloat32(get(c, p('clip_features'))), tolerance(c, p('clip_features')));
    } else {
      // Not stored for this run: the features are the final latent [C, g*g] transposed, and that
      // latent is stored.
      const steps = timesteps.shape[0]!;
      const at = latentIdx.indexOf(steps);
      expect(at, `${label}flow.latent_idx holds the final latent`).toBeGreaterThanOrEqual(0);
      const latent = get(c, p('flow.latents'));
      const [C, g] = latent.shape.slice(1) as [number, number];
      const final = asFloat32(latent).subarray(at * C * g * g, (at + 1) * C * g * g);
      const features = new Float32Array(C * g * g);
      for (let ch = 0; ch < C; ch++) for (let t = 0; t < g * g; t++) features[t * C + ch] = final[ch * g * g + t]!;
      expect(r.clipFeatures.shape).toEqual([g * g, C]);
      expectClose(`${label}clip_features (final latent)`, f32(r.clipFeatures), features, tolerance(c, p('flow.latents')));
    }
    expect(Array.from(f32(traced(tr, 'clip_features')))).toEqual(Array.from(f32(r.clipFeatures)));
  }

  it('generation: the prompt\'s 30 guided steps, every step stored', async () => {
    expect(asNumbers(get(generation, 'flow.v_steps')).length).toBe(get(generation, 'flow.timesteps').shape[0]);
    await checkFlow(generation, '');
  });

  it('generation: the " " negative (steps 0, 15, 29 stored)', async () => {
    await checkFlow(generation, 'neg.');
  });

  it('reconstruction: the image-conditioned prompt and its negative', async () => {
    await checkFlow(reconstruction, '');
    await checkFlow(reconstruction, 'neg.');
  });

  it('the step-0 velocities of the loop are the single call\'s', async () => {
    const r = await dit.sample({ ...sampleRequest(generation, ''), trace: true });
    const single = await dit.forward({
      x: asFloat32(get(ditStep, 'x')),
      timestep: asNumbers(get(ditStep, 'timestep')),
      context: asFloat32(get(ditStep, 'z_latents')),
    });
    const v = f32(single.v);
    const half = v.length / 2;
    expect(Array.from(rows(traced(r.trace, 'flow.v_uncond'), [0]))).toEqual(Array.from(v.subarray(0, half)));
    expect(Array.from(rows(traced(r.trace, 'flow.v_cond'), [0]))).toEqual(Array.from(v.subarray(half)));
  });

  it('applies the config\'s shift to the custom sigmas (the fixture\'s is 1.0)', async () => {
    // diffusers' set_timesteps(sigmas=...): s * x / (1 + (s - 1) x) on the f32 sigmas, each
    // operation rounded to f32; timesteps = f32(sigma * num_train_timesteps), truncated for the DiT.
    const steps = 4;
    const shift = 3;
    const r = await dit.sample({ ...sampleRequest(generation, '', steps), shift, trace: true });
    const f = Math.fround;
    const sigmas: number[] = [];
    for (let i = 0; i < steps; i++) {
      const lin = i === steps - 1 ? 1 / steps : 1 + i * ((1 / steps - 1) / (steps - 1));
      const x = f(lin);
      sigmas.push(f(f(shift * x) / f(1 + f((shift - 1) * x))));
    }
    const timesteps = sigmas.map((x) => f(x * scheduler.num_train_timesteps));
    expect(Array.from(f32(traced(r.trace, 'flow.sigmas')))).toEqual([...sigmas, 0]);
    expect(Array.from(f32(traced(r.trace, 'flow.timesteps')))).toEqual(timesteps);
    expect(ints(traced(r.trace, 'flow.t_int'))).toEqual(timesteps.map(Math.trunc));
    expect(traced(r.trace, 'flow.latents').shape).toEqual([steps + 1, ...get(generation, 'flow.noise').shape]);
  });

  it('grouped-query attention: kv heads shared by consecutive query heads', async () => {
    // The fixture's DiT is MHA. From its weights build a GQA DiT keeping every other kv head, and an
    // MHA DiT in which each query head reads a copy of the kv head it shares under GQA (kv head
    // h / (heads / kv_heads)). The key LayerNorm spans all kv heads; copying each head the same
    // number of times keeps its mean and variance, so the two must agree.
    const prefix = 'model.dit.model.';
    const weights = new Map<string, { shape: number[]; values: Float32Array }>();
    for (const shard of ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'])
      for (const [name, t] of readSafetensors(path.join(blip3oModelDir, shard))) {
        if (!name.startsWith(prefix)) continue;
        expect(t.dtype).toBe('BF16');
        const values = new Float32Array(t.bytes.length / 2);
        const bits = new Uint32Array(values.buffer);
        for (let i = 0; i < values.length; i++) bits[i] = t.bytes.readUInt16LE(2 * i) << 16;
        weights.set(name, { shape: t.shape, values });
      }
    const { heads, headDim, layers } = dit.config();
    const kvHeads = heads / 2;
    // Rows (or entries) of the kv heads `order` of a [heads * headDim, ...] tensor.
    const pick = (t: { shape: number[]; values: Float32Array }, order: number[]) => {
      const row = t.values.length / t.shape[0]!;
      const values = new Float32Array(order.length * headDim * row);
      order.forEach((h, i) => values.set(t.values.subarray(h * headDim * row, (h + 1) * headDim * row), i * headDim * row));
      return { shape: [order.length * headDim, ...t.shape.slice(1)], values };
    };
    const kept = Array.from({ length: kvHeads }, (_, j) => 2 * j);
    const shared = Array.from({ length: heads }, (_, h) => kept[Math.floor(h / (heads / kvHeads))]!);
    const dirs: string[] = [];
    const build = (order: number[]) => {
      const tensors: Record<string, { shape: number[]; values: Float32Array }> = {};
      for (const [name, t] of weights) {
        const kv = /\.attn[12]\.(to_k\.weight|to_v\.weight|norm_k\.weight|norm_k\.bias)$/.test(name);
        tensors[name] = kv ? pick(t, order) : t;
      }
      const dir = mkdtempSync(path.join(os.tmpdir(), 'vargpt-dit-'));
      dirs.push(dir);
      writeFileSync(path.join(dir, 'model.safetensors'), validF32File(tensors));
      return dir;
    };
    try {
      const gqa = await native().loadBlip3oDit(build(kept), 'cpu');
      const mha = await native().loadBlip3oDit(build(shared), 'cpu');
      expect(gqa.config()).toMatchObject({ heads, kvHeads, layers });
      expect(mha.config()).toMatchObject({ heads, kvHeads: heads });
      const request = {
        x: asFloat32(get(ditStep, 'x')),
        timestep: asNumbers(get(ditStep, 'timestep')),
        context: asFloat32(get(ditStep, 'z_latents')),
      };
      const a = f32((await gqa.forward(request)).v);
      const b = f32((await mha.forward(request)).v);
      expectClose('GQA vs repeated-kv MHA v', a, b, 1e-5);
      // The reduction changed the model, so the agreement above is not the fixture's DiT twice.
      let moved = 0;
      const ref = asFloat32(get(ditStep, 'v'));
      for (let i = 0; i < ref.length; i++) moved = Math.max(moved, Math.abs(a[i]! - ref[i]!));
      expect(moved).toBeGreaterThan(1e-2);
    } finally {
      for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
    }
  });

  it('rejects bad input with clear errors and stays usable', async () => {
    const c = ditStep;
    const x = asFloat32(get(c, 'x'));
    const timestep = asNumbers(get(c, 'timestep'));
    const context = asFloat32(get(c, 'z_latents'));
    const [, Q, H] = get(c, 'z_latents').shape as [number, number, number];
    // A context one column narrower than caption_projection.linear_1 reads.
    const narrow = new Float32Array(2 * Q * (H - 1)).fill(0.25);
    await expect(dit.forward({ x, timestep, context: narrow })).rejects.toThrow(
      new RegExp(`context has ${2 * Q * (H - 1)} values, expected 2 x Q x ${H} \\(captionDim ${H}\\)`),
    );
    await expect(dit.forward({ x: x.subarray(1), timestep, context })).rejects.toThrow(/x has \d+ values, expected 2 x 1792 x g x g/);
    await expect(dit.forward({ x, timestep: [1000], context })).rejects.toThrow(/not a square grid/);
    await expect(dit.forward({ x, timestep: [1.5, 2], context })).rejects.toThrow(/timestep\[0\] must be an integer/);
    await expect(dit.forward({ x, timestep, context: [] as unknown as Float32Array })).rejects.toThrow(/context must be a Float32Array/);
    const sampleReq = sampleRequest(generation, '', 2);
    await expect(dit.sample({ ...sampleReq, queryHidden: narrow.subarray(0, Q * (H - 1)) })).rejects.toThrow(
      new RegExp(`queryHidden has ${Q * (H - 1)} values, expected Q x ${H}`),
    );
    await expect(dit.sample({ ...sampleReq, steps: 0 })).rejects.toThrow(/steps must be 1 to 100000, got 0/);
    await expect(dit.sample({ ...sampleReq, shift: 0 })).rejects.toThrow(/shift must be a positive number, got 0/);
    // A checkpoint without a DiT names the first tensor it looked for.
    await expect(native().loadBlip3oDit(v11ModelDir, 'cpu')).rejects.toThrow(/model\.dit\.model\.patch_embedder\.proj\.weight/);
    // Still usable: the same call as above matches the fixture.
    const r = await dit.forward({ x, timestep, context });
    expectClose('dit_step.v (after errors)', f32(r.v), asFloat32(get(c, 'v')), tolerance(c, 'v'));
  });
});
