// The VARGPT-v1.1 fixture's Qwen2 LLM (q/k/v bias, GQA 2:1, M-RoPE sections [2, 3, 3], untied head)
// through the same DecoderLlm that runs VARGPT v1's Llama: hidden states and logits against the
// upstream tensors, with text positions (generation case) and with M-RoPE image positions and
// cached decoding (understanding case). Tolerances: 4x each tensor's float32-vs-float64 spread from
// the fixture manifest, never tighter than 1e-5 of max|ref| (the fixture README's rule).
import path from 'node:path';

import { beforeAll, describe, expect, it } from 'vitest';

import { native, type NativeLanguageModel, type NativeTensor } from '../../lib/native.js';
import { asFloat32, asNumbers, readJson, readSafetensors, type StTensor } from '../helpers/fixtures.js';
import { expectClose, spreadTolerance } from '../helpers/model-fixture.js';
import { v11ExpectedDir, v11ModelDir } from '../helpers/paths.js';

interface Manifest {
  [file: string]: { tensors?: Record<string, { f32_vs_f64?: { rel_err_maxnorm?: number } }> } | unknown;
}

function tolerance(caseName: string, tensor: string): number {
  const manifest = readJson<Manifest>(path.join(v11ExpectedDir, `${caseName}.json`)) as {
    tensors: Record<string, { f32_vs_f64?: { rel_err_maxnorm?: number } }>;
  };
  return spreadTolerance(manifest.tensors, tensor, caseName);
}

function f32(t: NativeTensor): Float32Array {
  expect(t.dtype).toBe('f32');
  return new Float32Array(t.data);
}

function argmax(v: Float32Array): number {
  let best = 0;
  for (let i = 1; i < v.length; i++) if (v[i]! > v[best]!) best = i;
  return best;
}

function get(map: Map<string, StTensor>, name: string): StTensor {
  const t = map.get(name);
  if (!t) throw new Error(`fixture tensor ${name} is missing`);
  return t;
}

const generation = readSafetensors(path.join(v11ExpectedDir, 'generation.safetensors'));
const understanding = readSafetensors(path.join(v11ExpectedDir, 'understanding.safetensors'));

// Transposes the fixture's per-step [steps, 3] positions into one axis-major [3, 1] block per step.
function stepPositions(stepIds: number[], step: number): Int32Array {
  return Int32Array.from([stepIds[step * 3]!, stepIds[step * 3 + 1]!, stepIds[step * 3 + 2]!]);
}

describe('VARGPT-v1.1 LLM (Qwen2, M-RoPE) through DecoderLlm', () => {
  let llm: NativeLanguageModel;
  beforeAll(async () => {
    llm = await native().loadLanguageModel(v11ModelDir, 'cpu');
  });

  it('reads the Qwen2 configuration from config.json and the tensors', () => {
    const c = llm.config();
    expect(c).toMatchObject({ hiddenSize: 32, layers: 2, heads: 2, kvHeads: 1, headDim: 16, positionAxes: 3 });
    expect(c.qkvBias).toBe(true);
    expect(c.tiedEmbeddings).toBe(false);
    expect(c.ropeTheta).toBe(1e6);
  });

  it('generation case: text prefill, then the image-start token at its M-RoPE position', async () => {
    const ids = Int32Array.from(asNumbers(get(generation, 'input_ids')));
    const seq = llm.newSequence();
    const prefill = await llm.forward({ ids, sequence: seq });
    expectClose('v1.1 prefill_hidden', f32(prefill.hidden), asFloat32(get(generation, 'prefill_hidden')), tolerance('generation', 'prefill_hidden'));
    const lastLogits = f32(prefill.logits!);
    expectClose('v1.1 prefill_last_logits', lastLogits, asFloat32(get(generation, 'prefill_last_logits')), tolerance('generation', 'prefill_last_logits'));

    const outputIds = asNumbers(get(generation, 'output_ids'));
    const start = outputIds[ids.length]!;
    expect(start).toBe(151657); // <|image_gen_start|>, forced
    const positions = Int32Array.from(asNumbers(get(generation, 'start_token_position_ids')));
    const step = await llm.forward({ ids: Int32Array.of(start), positions, sequence: seq });
    expectClose('v1.1 start_token_hidden', f32(step.hidden), asFloat32(get(generation, 'start_token_hidden')), tolerance('generation', 'start_token_hidden'));
    const logits = f32(step.logits!);
    expectClose('v1.1 start_token_logits', logits, asFloat32(get(generation, 'start_token_logits')), tolerance('generation', 'start_token_logits'));
    expect(argmax(logits)).toBe(asNumbers(get(generation, 'token_after_start'))[0]);
  });

  it('understanding case: M-RoPE image positions, then 7 cached greedy steps at rope-delta positions', async () => {
    const embeds = asFloat32(get(understanding, 'prefill_inputs_embeds'));
    const positions = Int32Array.from(asNumbers(get(understanding, 'mrope_position_ids')));
    // The image makes t, h and w differ: the test would not exercise M-RoPE otherwise.
    const T = positions.length / 3;
    expect(positions.subarray(T, 2 * T)).not.toEqual(positions.subarray(2 * T, 3 * T));
    const seq = llm.newSequence();
    const prefill = await llm.forward({ embeds, positions, sequence: seq });
    expectClose('v1.1 und prefill_hidden', f32(prefill.hidden), asFloat32(get(understanding, 'prefill_hidden')), tolerance('understanding', 'prefill_hidden'));
    expectClose('v1.1 und prefill_last_logits', f32(prefill.logits!), asFloat32(get(understanding, 'prefill_last_logits')), tolerance('understanding', 'prefill_last_logits'));

    const generated = asNumbers(get(understanding, 'generated_ids'));
    const stepIds = asNumbers(get(understanding, 'step_position_ids'));
    const stepLogits = asFloat32(get(understanding, 'step_logits'));
    const V = llm.config().vocabSize;
    expect(argmax(f32(prefill.logits!))).toBe(generated[0]);
    for (let s = 0; s + 1 < generated.length; s++) {
      const out = await llm.forward({ ids: Int32Array.of(generated[s]!), positions: stepPositions(stepIds, s), sequence: seq });
      const logits = f32(out.logits!);
      expectClose(`v1.1 step_logits[${s + 1}]`, logits, stepLogits.subarray((s + 1) * V, (s + 2) * V), tolerance('understanding', 'step_logits'));
      expect(argmax(logits), `greedy token ${s + 1}`).toBe(generated[s + 1]);
    }
  });

  it('two sequences interleaved on one loaded model get exactly what each gets alone', async () => {
    const genIds = Int32Array.from(asNumbers(get(generation, 'input_ids')));
    const undEmbeds = asFloat32(get(understanding, 'prefill_inputs_embeds'));
    const undPositions = Int32Array.from(asNumbers(get(understanding, 'mrope_position_ids')));
    const generated = asNumbers(get(understanding, 'generated_ids'));
    const stepIds = asNumbers(get(understanding, 'step_position_ids'));

    const runGeneration = async (seq = llm.newSequence()) => {
      const outs = [await llm.forward({ ids: genIds, sequence: seq })];
      for (const id of [151657, 872, 20]) outs.push(await llm.forward({ ids: Int32Array.of(id), sequence: seq }));
      return outs;
    };
    const undStep = (seq: ReturnType<NativeLanguageModel['newSequence']>, s: number) =>
      llm.forward({ ids: Int32Array.of(generated[s]!), positions: stepPositions(stepIds, s), sequence: seq });

    const aloneGen = await runGeneration();
    const undSeq = llm.newSequence();
    const aloneUnd = [await llm.forward({ embeds: undEmbeds, positions: undPositions, sequence: undSeq })];
    for (let s = 0; s < 3; s++) aloneUnd.push(await undStep(undSeq, s));

    // Interleaved: each call alternates between the two caches, plus cache-less calls between them
    // (the CFG row of VARGPT-v1.1 runs that way beside the cached row).
    const a = llm.newSequence();
    const b = llm.newSequence();
    const mixedGen = [await llm.forward({ ids: genIds, sequence: a })];
    const mixedUnd = [await llm.forward({ embeds: undEmbeds, positions: undPositions, sequence: b })];
    const noCache = await llm.forward({ ids: genIds });
    const steps = [151657, 872, 20];
    for (let s = 0; s < 3; s++) {
      mixedUnd.push(await undStep(b, s));
      mixedGen.push(await llm.forward({ ids: Int32Array.of(steps[s]!), sequence: a }));
    }
    for (let i = 0; i < aloneGen.length; i++) {
      expect(f32(mixedGen[i]!.hidden), `generation call ${i}`).toEqual(f32(aloneGen[i]!.hidden));
      expect(f32(mixedGen[i]!.logits!)).toEqual(f32(aloneGen[i]!.logits!));
      expect(f32(mixedUnd[i]!.hidden), `understanding call ${i}`).toEqual(f32(aloneUnd[i]!.hidden));
      expect(f32(mixedUnd[i]!.logits!)).toEqual(f32(aloneUnd[i]!.logits!));
    }
    // Without a cache the prompt sees only itself: the same as the first call of a fresh sequence.
    expect(f32(noCache.hidden)).toEqual(f32(aloneGen[0]!.hidden));
  });

  it('a bf16 KV cache stays within bf16 rounding of the f32 run and decodes the same greedy tokens', async () => {
    const embeds = asFloat32(get(understanding, 'prefill_inputs_embeds'));
    const positions = Int32Array.from(asNumbers(get(understanding, 'mrope_position_ids')));
    const generated = asNumbers(get(understanding, 'generated_ids'));
    const stepIds = asNumbers(get(understanding, 'step_position_ids'));
    const run = async (kvDtype: 'f32' | 'bf16') => {
      const seq = llm.newSequence({ kvDtype });
      const outs = [await llm.forward({ embeds, positions, sequence: seq })];
      for (let s = 0; s + 1 < generated.length; s++)
        outs.push(await llm.forward({ ids: Int32Array.of(generated[s]!), positions: stepPositions(stepIds, s), sequence: seq }));
      return outs;
    };
    const f32Run = await run('f32');
    const bf16Run = await run('bf16');
    let differs = false;
    for (let i = 0; i < f32Run.length; i++) {
      const a = f32(bf16Run[i]!.hidden), b = f32(f32Run[i]!.hidden);
      // Keys and values rounded to bf16 (8 significant bits: relative 2^-8) move each attention
      // output by at most that much of the values it mixes; two layers and the final norm keep the
      // hidden states within a few of those steps of max|ref|.
      expectClose(`bf16 cache hidden ${i}`, a, b, 4 * 2 ** -8);
      expectClose(`bf16 cache logits ${i}`, f32(bf16Run[i]!.logits!), f32(f32Run[i]!.logits!), 4 * 2 ** -8);
      expect(argmax(f32(bf16Run[i]!.logits!)), `greedy token ${i}`).toBe(generated[i]);
      differs ||= a.some((v, j) => v !== b[j]);
    }
    // The cache really is bf16: the results are not the f32 run's to the bit.
    expect(differs).toBe(true);
    expect(() => llm.newSequence({ kvDtype: 'f16' as 'bf16' })).toThrow(/kvDtype must be 'f32' or 'bf16'/);
  });

  it('rejects bad requests and stays usable', async () => {
    await expect(llm.forward({ ids: Int32Array.of(152064) })).rejects.toThrow(/ids\[0\] = 152064 is outside the vocabulary/);
    await expect(llm.forward({ ids: Int32Array.of(1, 2), positions: Int32Array.of(0, 1, 2) })).rejects.toThrow(
      /positions has 3 ids, not a multiple of the 2 tokens/,
    );
    await expect(llm.forward({ ids: Int32Array.of(1, 2), positions: Int32Array.of(0, 1, 0, 1) })).rejects.toThrow(
      /4 position ids on 2 axes for 2 tokens \(the model reads 3 axes\)/,
    );
    await expect(llm.forward({ embeds: new Float32Array(33) })).rejects.toThrow(/not a multiple of hidden 32/);
    const ok = await llm.forward({ ids: Int32Array.of(1, 2, 3) });
    expect(f32(ok.hidden).length).toBe(3 * 32);
  });
});
