// Text-to-image on the tiny fixture. The fixture's sampling used PyTorch's CPU generator, which no
// other runtime reproduces, so the parity run replays its per-scale Gaussian rows and sampled
// indices and compares everything else scale by scale (README tolerances: 1e-4 of max|ref| for
// VAR-side tensors, 1e-5 for LLM-only ones). Non-replayed runs are checked for reproducibility.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { NativeModel } from '../lib/native.js';
import {
  Expected,
  baseRequest,
  expectClose,
  expectEqualInts,
  expectImageClose,
  expectedJson,
  generationReplay,
  loadTiny,
  reportObserved,
  traceValues,
  truncToU8,
  addon,
} from './helpers/model-fixture.js';

const TOL_VAR = 1e-4;
const TOL_LLM = 1e-5;

// Float64 distance of the top-p cut from its threshold in one row of reference logits: how close
// the row is to keeping one code more or less. Computed like VAR's sampler (top-k survivors,
// ascending sort, softmax, cumulative sum compared with 1 - top_p).
function topPMargin(logits: Float64Array, topK: number, topP: number): number {
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

describe('VARGPT v1 text-to-image (tiny fixture, f32)', () => {
  let model: NativeModel;
  let ex: Expected;
  const meta = expectedJson('generation.json');
  const manifest = expectedJson('manifest.json');
  const SN: number = meta.patch_nums.length;

  beforeAll(async () => {
    model = await loadTiny();
    ex = await Expected.open('generation.safetensors');
  });
  afterAll(() => {
    model?.dispose();
    reportObserved('generation');
  });

  function imageRequest(seed: number) {
    return {
      ...baseRequest(ex.ints('input_ids')),
      forceImage: true,
      image: { cfg: meta.cfg, topK: meta.top_k, topP: meta.top_p, seed },
    };
  }

  it('reproduces every scale and the image when replaying the recorded noise and indices', async () => {
    const replay = await generationReplay(ex, SN);
    const r = await model.generate({ ...imageRequest(1234), image: { ...imageRequest(1234).image, replay }, trace: true });
    const trace = r.trace;

    // Control flow: 32002 forced and fed, X = argmax after it recorded (never fed), then the image.
    const X = Number(ex.values('token_after_start')[0]);
    expect(X).toBe(meta.token_after_start);
    expect(Array.from(r.tokens)).toEqual([model.info().imageGenStartId, X]);
    expect(r.tokenAfterImageStart).toBe(X);
    expect(r.stopReason).toBe('image');
    const outputIds = ex.ints('output_ids');
    expect(Array.from(outputIds.subarray(meta.llm_positions.prompt_len))).toEqual([model.info().imageGenStartId, X, X]);

    expectClose('startTokenLogits', traceValues(trace, 'startTokenLogits'), ex.values('start_token_logits'), TOL_LLM);
    expectClose('sos', traceValues(trace, 'sos'), ex.values('sos_var_embed'), TOL_VAR);

    // kept counts: equal, except rows whose reference itself sits on the top-p threshold (the
    // manifest counts the rows where PyTorch's float32 and float64 runs disagree).
    let allowedTies = 0;
    for (let si = 0; si < SN; si++) allowedTies += manifest.cases.generation.tensors[`s${si}.kept_count`].f32_vs_f64.num_rows_differing ?? 0;
    let ties = 0;
    const V: number = model.info().var!.codebookSize;

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
  });

  it('is reproducible for a seed, differs for another, and streams previews per scale', async () => {
    const previews: Array<{ scale: number; scales: number; width: number; data: Uint8Array }> = [];
    const a = await model.generate({
      ...imageRequest(7),
      onImageProgress: (scale, scales, p) => previews.push({ scale, scales, width: p.width, data: p.data }),
    });
    const b = await model.generate(imageRequest(7));
    const c = await model.generate(imageRequest(8));
    expect(a.stopReason).toBe('image');
    expect(Buffer.from(a.image!.data).equals(Buffer.from(b.image!.data))).toBe(true);
    expect(Buffer.from(a.image!.data).equals(Buffer.from(c.image!.data))).toBe(false);
    expect(new Set(a.image!.data).size).toBeGreaterThan(16);

    const pn: number[] = meta.patch_nums;
    expect(previews.map((p) => p.scale)).toEqual(pn.map((_, i) => i));
    for (const p of previews) expect(p.scales).toBe(SN);
    // Previews before the last scale decode at most 4x4 latents; the last one is the image itself.
    for (let si = 0; si + 1 < SN; si++) expect(previews[si]!.width).toBe(Math.min(pn[si]!, 4) * 16);
    expect(Buffer.from(previews[SN - 1]!.data).equals(Buffer.from(a.image!.data))).toBe(true);
  });

  it('aborts mid-image with an AbortError and stays usable', async () => {
    const before = await model.generate(imageRequest(21));
    const token = addon.createCancelToken();
    const seen: number[] = [];
    const aborted = model.generate({
      ...imageRequest(21),
      cancel: token,
      onImageProgress: (scale) => {
        seen.push(scale);
        if (scale === 2) token.cancel();
      },
    });
    await expect(aborted).rejects.toMatchObject({ name: 'AbortError' });
    expect(token.cancelled).toBe(true);
    expect(seen.length).toBeLessThan(SN);
    const after = await model.generate(imageRequest(21));
    expect(Buffer.from(after.image!.data).equals(Buffer.from(before.image!.data))).toBe(true);
    expect(Array.from(after.tokens)).toEqual(Array.from(before.tokens));
  });

  it('draws a forced image even with no text budget', async () => {
    // forceImage appends <|image_gen_start|> after the prompt; the image does not count as text.
    const r = await model.generate({ ...imageRequest(3), maxNewTokens: 0 });
    expect(r.stopReason).toBe('image');
    expect(r.tokens.length).toBe(2);
    expect(r.tokens[0]).toBe(model.info().imageGenStartId);
    expect(r.tokenAfterImageStart).toBe(r.tokens[1]);
  });
});
