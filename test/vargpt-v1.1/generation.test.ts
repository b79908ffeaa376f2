// VARGPT-v1.1 text-to-image through the native model, against the fixture's generation case: the
// fixture's prompt ids with forceImage, upstream's cfg / tau / top-k / top-p and scale schedule,
// and the recorded bits replayed (upstream's sampler draws from a CUDA generator we do not
// reproduce). Every traced tensor agrees with upstream's within 4x its float32-vs-float64 spread
// (never tighter than 1e-5 of max|ref|); integer tensors and bits are equal; the image within 2/255.
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { native, type NativeGenerateRequest, type NativeGenerateResult, type NativeModel, type NativeTensor } from '../../lib/native.js';
import { asFloat32, asNumbers, readJson, readSafetensors, type StTensor } from '../helpers/fixtures.js';
import { expectClose, spreadTolerance } from '../helpers/model-fixture.js';
import { v11ExpectedDir, v11ModelDir } from '../helpers/paths.js';

interface GenJson {
  scale_schedule: [number, number, number][];
  cfg: number;
  tau: number;
  top_k: number;
  top_p: number;
  seed: number;
  token_after_start: number;
  tensors: Record<string, { shape: number[]; dtype: string; f32_vs_f64?: { rel_err_maxnorm?: number } }>;
}

const json = readJson<GenJson>(path.join(v11ExpectedDir, 'generation.json'));
const expected = readSafetensors(path.join(v11ExpectedDir, 'generation.safetensors'));
const scales = json.scale_schedule.map(([, h, w]) => [h, w]);

function ref(name: string): StTensor {
  const t = expected.get(name);
  if (!t) throw new Error(`fixture tensor ${name} is missing`);
  return t;
}

function tolerance(name: string): number {
  return spreadTolerance(json.tensors, name, 'generation');
}

function traced(trace: Record<string, NativeTensor> | undefined, name: string): NativeTensor {
  const t = trace?.[name];
  if (!t) throw new Error(`the trace has no ${name} (it has ${Object.keys(trace ?? {}).join(', ')})`);
  return t;
}

function f32(t: NativeTensor): Float32Array {
  expect(t.dtype).toBe('f32');
  return new Float32Array(t.data);
}

function i32(t: NativeTensor): number[] {
  expect(t.dtype).toBe('i32');
  return Array.from(new Int32Array(t.data));
}

function replayBits(): Int32Array[] {
  return json.scale_schedule.map((_, si) => Int32Array.from(asNumbers(ref(`s${si}.bits`))));
}

function request(image: Partial<NonNullable<NativeGenerateRequest['image']>> = {}): NativeGenerateRequest {
  return {
    inputIds: Int32Array.from(asNumbers(ref('input_ids'))),
    forceImage: true,
    maxNewTokens: 0,
    temperature: 0,
    topK: 0,
    topP: 1,
    repetitionPenalty: 1,
    seed: 0,
    stopIds: [],
    image: { cfg: json.cfg, tau: json.tau, topK: json.top_k, topP: json.top_p, seed: json.seed, scales, ...image },
  };
}

const FLOATS = [
  'prefill_hidden', 'adaln_cond', 'adaln_gss', 'ca_context_llm_hidden', 'ca_context_cond', 'ca_context_uncond', 'sos_gen_input',
  'final_summed_codes', 'image_clamped',
];
const SCALE_FLOATS = [
  'llm_inputs_embeds', 'llm_hidden_cond', 'llm_hidden_uncond', 'infinity_input', 'block_input', 'block_out',
  'logits_cond', 'logits_uncond', 'logits_combined', 'codes', 'summed_codes', 'next_input', 'word_embed_out', 'gen_projector_out',
  'llm_inputs_embeds_uncond',
];

describe('VARGPT-v1.1 text-to-image (fixture vargpt-v1.1-tiny, generation case)', () => {
  let model: NativeModel;
  let result: NativeGenerateResult;

  beforeAll(async () => {
    model = await native().loadModel(v11ModelDir, { device: 'cpu' });
    result = await model.generate({ ...request({ replay: { bits: replayBits() } }), trace: true });
  });
  afterAll(() => model?.dispose());

  it('appends <|image_gen_start|> and its follower (never fed) and stops with the image', () => {
    const outputIds = asNumbers(ref('output_ids'));
    expect(Array.from(result.tokens)).toEqual(outputIds.slice(asNumbers(ref('input_ids')).length));
    expect(result.tokens[result.tokens.length - 1]).toBe(json.token_after_start);
    expect(result.stopReason).toBe('image');
  });

  it('every traced tensor matches upstream', () => {
    const names = [...FLOATS];
    for (const [si] of json.scale_schedule.entries())
      for (const t of SCALE_FLOATS) if (expected.has(`s${si}.${t}`)) names.push(`s${si}.${t}`);
    for (const name of names) {
      const got = traced(result.trace, name);
      expect(got.shape, name).toEqual(ref(name).shape);
      const err = expectClose(`generation.${name}`, f32(got), asFloat32(ref(name)), tolerance(name));
      if (process.env['VARGPT_REPORT']) console.log(`${name}: ${err.toExponential(2)} (tol ${tolerance(name).toExponential(2)})`);
    }
    for (const [si] of json.scale_schedule.entries()) {
      expect(i32(traced(result.trace, `s${si}.bits`)), `s${si}.bits`).toEqual(asNumbers(ref(`s${si}.bits`)));
      expect(i32(traced(result.trace, `s${si}.llm_past_len`))[0], `s${si}.llm_past_len`).toBe(asNumbers(ref(`s${si}.llm_past_len`))[0]);
      const sampled = Array.from(ref(`s${si}.bit_sampled`).bytes, (b) => (b ? 1 : 0));
      expect(i32(traced(result.trace, `s${si}.bit_sampled`)), `s${si}.bit_sampled`).toEqual(sampled);
    }
  });

  it('draws the fixture image within 2/255 per channel', () => {
    const img = result.image!;
    const [h, w] = ref('image_uint8').shape as [number, number, number];
    expect([img.height, img.width]).toEqual([h, w]);
    const want = ref('image_uint8').bytes;
    let worst = 0;
    for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(img.data[i]! - want[i]!));
    expect(worst).toBeLessThanOrEqual(2);
  });

  it('a seeded run without replay repeats itself bit for bit, differs for another seed, and streams previews', async () => {
    const SN = json.scale_schedule.length;
    const previews: Array<{ scale: number; scales: number; width: number; data: Uint8Array }> = [];
    const a = await model.generate({
      ...request({ seed: 7 }),
      trace: true,
      onImageProgress: (_stage, scale, n, p) => previews.push({ scale, scales: n, width: p.width, data: p.data }),
    });
    const b = await model.generate({ ...request({ seed: 7 }), trace: true });
    const c = await model.generate({ ...request({ seed: 8 }), trace: true });
    const bits = (r: NativeGenerateResult) => json.scale_schedule.flatMap((_, si) => i32(traced(r.trace, `s${si}.bits`)));
    expect(bits(a)).toEqual(bits(b));
    expect(bits(a)).not.toEqual(bits(c));
    expect(Array.from(a.image!.data)).toEqual(Array.from(b.image!.data));
    // Where top-p kept a single class the bit is the guided argmax, whatever the seed.
    for (let si = 0; si < SN; si++) {
      const drawn = i32(traced(a.trace, `s${si}.bit_sampled`));
      const guided = f32(traced(a.trace, `s${si}.logits_combined`));
      const got = i32(traced(a.trace, `s${si}.bits`));
      for (let k = 0; k < drawn.length; k++)
        if (!drawn[k]) expect(got[k]).toBe(guided[2 * k + 1]! > guided[2 * k]! ? 1 : 0);
    }
    expect(previews.map((p) => p.scale)).toEqual(json.scale_schedule.map((_, i) => i));
    for (const p of previews) expect(p.scales).toBe(SN);
    for (let si = 0; si + 1 < SN; si++) expect(previews[si]!.width).toBe(Math.min(json.scale_schedule[si]![2], 4) * 16);
    expect(Array.from(previews[SN - 1]!.data)).toEqual(Array.from(a.image!.data));
  });

  it('aborts between scales with an AbortError and stays usable', async () => {
    const token = native().createCancelToken();
    const seen: number[] = [];
    const aborted = model.generate({
      ...request({ replay: { bits: replayBits() } }),
      cancel: token,
      onImageProgress: (_stage, scale) => {
        seen.push(scale);
        if (scale === 1) token.cancel();
      },
    });
    await expect(aborted).rejects.toMatchObject({ name: 'AbortError' });
    expect(seen.length).toBeLessThan(json.scale_schedule.length);
    const after = await model.generate(request({ replay: { bits: replayBits() } }));
    expect(Array.from(after.image!.data)).toEqual(Array.from(result.image!.data));
  });

  it('refuses bad image options clearly and stays usable', async () => {
    const bits = replayBits();
    await expect(model.generate(request({ replay: { bits: bits.slice(1) } }))).rejects.toThrow(/replay.bits has 4 entries, one per scale expected \(5\)/);
    const short = bits.map((b, i) => (i === 2 ? b.subarray(1) : b));
    await expect(model.generate(request({ replay: { bits: short } }))).rejects.toThrow(/replay.bits\[2\] has 511 values, expected 512/);
    const two = bits.map((b, i) => (i === 1 ? Int32Array.from(b, (v, k) => (k === 5 ? 2 : v)) : b));
    await expect(model.generate(request({ replay: { bits: two } }))).rejects.toThrow(/replay.bits\[1\]\[5\] = 2 is not 0 or 1/);
    await expect(model.generate(request({ scales: [[2, 2], [1, 1]] }))).rejects.toThrow(/scales/);
    await expect(model.generate(request({ scales: [[1, 0]] }))).rejects.toThrow(/scales\[0\] = \(1, 0\) must be positive whole sizes/);
    await expect(model.generate(request({ scales: undefined }))).rejects.toThrow(/image.scales .* is required/);
    await expect(model.generate(request({ tau: 0 }))).rejects.toThrow(/image.tau must be positive/);
    const again = await model.generate(request({ replay: { bits: replayBits() } }));
    expect(Array.from(again.image!.data)).toEqual(Array.from(result.image!.data));
  });
});
