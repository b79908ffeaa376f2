// The fixture parity checks, shared by the CPU tests (model-understanding, model-generation) and
// the same checks on CUDA (model-cuda): one loaded model, the fixture's inputs, and every traced
// intermediate compared with the upstream PyTorch tensors under the fixture README's tolerances.
import { expect } from 'vitest';

import type { NativeModel } from '../../lib/native.js';
import {
  Expected,
  baseRequest,
  expectClose,
  expectEqualInts,
  expectImageClose,
  expectedJson,
  generationReplay,
  rows,
  traceShape,
  traceValues,
  truncToU8,
  understandingInputs,
  v1Info,
} from './model-fixture.js';

export const TOL_LLM = 1e-5; // CLIP / LLM tensors, of max|ref|
export const TOL_VAR = 1e-4; // tensors after the VAR blocks and the VQ-VAE

// Image understanding: CLIP features (hidden_states[-2], CLS dropped), projected features,
// prefill, 8 greedy tokens and the logits behind each.
export async function expectUnderstandingParity(model: NativeModel): Promise<void> {
  const { inputIds, pixelValues, ex } = await understandingInputs();
  const streamed: number[] = [];
  const result = await model.generate({
    ...baseRequest(inputIds),
    pixelValues: [pixelValues],
    trace: true,
    onToken: (id) => streamed.push(id),
  });
  const trace = result.trace;
  const Cv = ex.shape('clip_layer_m2')[1]!;
  const T = inputIds.length;
  const TOL = TOL_LLM;

  expectClose('pixelValues (echo)', traceValues(trace, 'pixelValues'), ex.values('pixel_values'), 0);
  expect(traceShape(trace, 'visionFeatures')).toEqual([1, ex.shape('clip_layer_m2')[0]! - 1, Cv]);
  expectClose('visionFeatures', traceValues(trace, 'visionFeatures'), rows(ex.values('clip_layer_m2'), Cv, 1, ex.shape('clip_layer_m2')[0]!), TOL);
  expectClose('imageFeatures', traceValues(trace, 'imageFeatures'), ex.values('image_features'), TOL);
  expectClose('prefillEmbeds', traceValues(trace, 'prefillEmbeds'), ex.values('prefill_inputs_embeds'), TOL);
  const hs = ex.values('prefill_hidden_states');
  const H = ex.shape('prefill_hidden_states')[2]!;
  const last = ex.shape('prefill_hidden_states')[0]! - 1;
  expectClose('prefillHidden (after final norm)', traceValues(trace, 'prefillHidden'), hs.subarray(last * T * H, (last + 1) * T * H), TOL);
  expectClose('prefillLogits', traceValues(trace, 'prefillLogits'), ex.values('prefill_last_logits'), TOL);

  expectEqualInts('generated tokens', result.tokens, ex.ints('generated_ids'));
  expect(result.stopReason).toBe('length');
  expect(streamed).toEqual(Array.from(result.tokens));
  expect(traceShape(trace, 'stepLogits')).toEqual(ex.shape('step_logits'));
  expectClose('stepLogits', traceValues(trace, 'stepLogits'), ex.values('step_logits'), TOL);
}

// Float64 distance of the top-p cut from its threshold in one row of reference logits: how close
// the row is to keeping one code more or less. Computed like VAR's sampler (top-k survivors,
// ascending sort, softmax, cumulative sum compared with 1 - top_p).
export function topPMargin(logits: Float64Array, topK: number, topP: number): number {
  const desc = Array.from(logits).sort((a, b) => b - a);
  const thr = desc[Math.min(topK, desc.length) - 1]!;
  const kept = Array.from(logits).filter((v) => v >= thr).sort((a, b) => a - b);
  const max = kept[kept.length - 1]!;
  const e = kept.map((v) => Math.exp(v - max));
  const sum = e.reduce((a, b) => a + b, 0);
  let cum = 0;
  let margin = Infinity;
  for (let i = 0; i + 1 < e.length; i++) {
    cum += e[i]! / sum;
    margin = Math.min(margin, Math.abs(cum - (1 - topP)));
  }
  return margin;
}

// The fixture's text-to-image request with a seed.
export function imageRequest(ex: Expected, seed: number) {
  const meta = expectedJson('generation.json');
  return {
    ...baseRequest(ex.ints('input_ids')),
    forceImage: true,
    image: { cfg: meta.cfg as number, topK: meta.top_k as number, topP: meta.top_p as number, seed },
  };
}

// Text-to-image with the fixture's Gaussian rows and sampled indices replayed (PyTorch's CPU
// generator cannot be reproduced), everything else compared scale by scale.
export async function expectGenerationReplayParity(model: NativeModel, ex: Expected): Promise<void> {
  const meta = expectedJson('generation.json');
  const manifest = expectedJson('manifest.json');
  const SN: number = meta.patch_nums.length;
  const replay = await generationReplay(ex, SN);
  const request = imageRequest(ex, 1234);
  const r = await model.generate({ ...request, image: { ...request.image, replay }, trace: true });
  const trace = r.trace;

  // Control flow: 32002 forced and fed, X = argmax after it recorded (never fed), then the image.
  const X = Number(ex.values('token_after_start')[0]);
  expect(X).toBe(meta.token_after_start);
  expect(Array.from(r.tokens)).toEqual([v1Info(model).imageGenStartId, X]);
  expect(r.tokenAfterImageStart).toBe(X);
  expect(r.stopReason).toBe('image');
  const outputIds = ex.ints('output_ids');
  expect(Array.from(outputIds.subarray(meta.llm_positions.prompt_len))).toEqual([v1Info(model).imageGenStartId, X, X]);

  expectClose('startTokenLogits', traceValues(trace, 'startTokenLogits'), ex.values('start_token_logits'), TOL_LLM);
  expectClose('sos', traceValues(trace, 'sos'), ex.values('sos_var_embed'), TOL_VAR);

  // kept counts: equal, except rows whose reference itself sits on the top-p threshold (the
  // manifest counts the rows where PyTorch's float32 and float64 runs disagree).
  let allowedTies = 0;
  for (let si = 0; si < SN; si++) allowedTies += manifest.cases.generation.tensors[`s${si}.kept_count`].f32_vs_f64.num_rows_differing ?? 0;
  let ties = 0;
  const V: number = v1Info(model).var!.codebookSize;

  for (let si = 0; si < SN; si++) {
    const k = `s${si}.`;
    if (si > 0) expectClose(`${k}varTokenEmbed`, traceValues(trace, `${k}varTokenEmbed`), ex.values(`${k}var_token_embed`), TOL_VAR);
    expectClose(`${k}llmInput`, traceValues(trace, `${k}llmInput`), ex.values(`${k}llm_inputs_embeds`), TOL_VAR);
    expectClose(`${k}llmHidden`, traceValues(trace, `${k}llmHidden`), ex.values(`${k}llm_hidden`), TOL_VAR);
    expectClose(`${k}noise (echo)`, traceValues(trace, `${k}noise`), ex.values(`${k}noise`), 0);
    expectClose(`${k}varInput`, traceValues(trace, `${k}varInput`), ex.values(`${k}var_input`), TOL_VAR);
    expectClose(`${k}varBlockOut`, traceValues(trace, `${k}varBlockOut`), ex.values(`${k}var_block_out`), TOL_VAR);
    expectClose(`${k}logitsCond`, traceValues(trace, `${k}logitsCond`), ex.values(`${k}logits_cond`), TOL_VAR);
    expectClose(`${k}logitsUncond`, traceValues(trace, `${k}logitsUncond`), ex.values(`${k}logits_uncond`), TOL_VAR);
    const combined = ex.values(`${k}logits_combined`);
    expectClose(`${k}logits`, traceValues(trace, `${k}logits`), combined, TOL_VAR);
    expectEqualInts(`${k}indices (replayed)`, traceValues(trace, `${k}indices`), ex.ints(`${k}sampled_idx`));

    const kept = traceValues(trace, `${k}kept`);
    const refKept = ex.ints(`${k}kept_count`);
    expect(kept.length).toBe(refKept.length);
    for (let row = 0; row < refKept.length; row++) {
      if (kept[row] === refKept[row]) continue;
      const margin = topPMargin(combined.subarray(row * V, (row + 1) * V), meta.top_k, meta.top_p);
      expect(Math.abs(kept[row]! - refKept[row]!), `${k}kept[${row}]`).toBe(1);
      expect(margin, `${k}kept[${row}] = ${kept[row]} vs ${refKept[row]}: not a top-p tie`).toBeLessThan(1e-6);
      ties++;
    }

    expectClose(`${k}fHat`, traceValues(trace, `${k}fHat`), ex.values(`${k}f_hat`), TOL_VAR);
    if (si + 1 < SN) expectClose(`${k}nextMap`, traceValues(trace, `${k}nextMap`), ex.values(`${k}next_map`), TOL_VAR);
  }
  expect(ties, `${ties} kept counts differ on top-p ties`).toBeLessThanOrEqual(allowedTies);
  console.log(`kept_count rows differing on a top-p tie: ${ties} (reference f32 vs f64: ${allowedTies})`);

  expectClose('final fHat', traceValues(trace, 'fHat'), ex.values('final_f_hat'), TOL_VAR);
  expectClose('image (clamped)', traceValues(trace, 'image'), ex.values('image_clamped'), TOL_VAR);
  expect(r.image).toMatchObject({ width: 256, height: 256 });
  const refU8 = ex.values('image_uint8');
  // The fixture's own uint8 is trunc((clamp(x)+1)/2*255) of its float image.
  expect(Array.from(truncToU8(ex.values('image_clamped'), 256, 256))).toEqual(Array.from(refU8));
  expectImageClose('image uint8', r.image!.data, refU8);
}
