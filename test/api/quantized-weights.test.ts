// loadModel(dir, { weights: 'int8' | 'q4' }): the LLM's linear layers quantized on load (int8 per
// output channel; q4 in groups of 32) and run by the integer GEMMs (activations quantized per row).
// The kernels themselves are checked exactly and against their error bounds in
// test/ops/linear-q8.test.ts; here, per family fixture and precision:
// - info.llm.weights says which, and the image parts still load and draw;
// - prefill logits of several prompts against the same model as stored (f32): max |Δ| within 6%
//   (int8) or 60% (q4) of max |logit|. The fixtures measure 1.5-3.0% and 13-41%: the per-element
//   steps (int8: 1/254 of a row's largest weight; q4: 1/14 of a group's) add up over a few layers
//   of random weights, whose logits are nearly flat; for q4 this is a guard against a broken
//   layout (which scrambles the logits), the kernel's own bound being checked in the op test.
//   The top token agrees
//   wherever the stored model's margin between its top two logits exceeds twice that prompt's max |Δ|
//   (these random-weight fixtures have nearly tied logits, so greedy agreement over many steps
//   says little about them; the README reports it on the synthesized presets);
// - batched int8 calls still return exactly what they return alone.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadModel } from '../../lib/index.js';
import type { ChatReply, VargptModel } from '../../lib/index.js';
import { blip3oModelDir, tinyModelDir, v11ModelDir } from '../helpers/paths.js';

const PROMPTS = ['Describe a red square.', 'What is the capital of France?', 'hello', 'Count from one to five, slowly.'];

function lastLogits(reply: ChatReply): Float32Array {
  const t = reply.trace?.['prefillLogits'] ?? reply.trace?.['prefill_last_logits'];
  if (!t) throw new Error('no prefill logits traced');
  return new Float32Array(t.data.buffer, t.data.byteOffset, t.data.byteLength / 4);
}

function top2(x: Float32Array): { index: number; margin: number } {
  let a = -Infinity, b = -Infinity, index = -1;
  for (let i = 0; i < x.length; i++) {
    if (x[i]! > a) {
      b = a;
      a = x[i]!;
      index = i;
    } else if (x[i]! > b) b = x[i]!;
  }
  return { index, margin: a - b };
}

const FAMILIES = [
  ['vargpt-v1', tinyModelDir],
  ['vargpt-v1.1', v11ModelDir],
  ['blip3o', blip3oModelDir],
] as const;

describe.each(FAMILIES.flatMap(([family, dir]) => [[family, dir, 'int8', 0.06] as const, [family, dir, 'q4', 0.6] as const]))('%s with %s weights', (family, dir, precision, bound) => {
  let stored: VargptModel;
  let int8: VargptModel;
  beforeAll(async () => {
    stored = await loadModel(dir, { device: 'cpu' });
    int8 = await loadModel(dir, { device: 'cpu', weights: precision });
  });
  afterAll(async () => {
    await stored.dispose();
    await int8.dispose();
  });

  it('reports its precision and keeps the logits within the bound; the top token agrees where the margin is clear', async () => {
    expect(int8.info.llm.weights).toBe(precision);
    expect(stored.info.llm.weights).toBe('stored');
    let compared = 0;
    for (const prompt of PROMPTS) {
      const opts = { maxNewTokens: 1, trace: true } as const;
      const a = lastLogits(await stored.chat([{ role: 'user', content: prompt }], opts));
      const b = lastLogits(await int8.chat([{ role: 'user', content: prompt }], opts));
      let maxDiff = 0, maxRef = 0;
      for (let i = 0; i < a.length; i++) {
        maxDiff = Math.max(maxDiff, Math.abs(a[i]! - b[i]!));
        maxRef = Math.max(maxRef, Math.abs(a[i]!));
      }
      expect(maxDiff, `${family} "${prompt}": max |Δ logit| of max |logit| ${maxRef}`).toBeLessThanOrEqual(bound * maxRef);
      expect(maxDiff).toBeGreaterThan(0); // the weights really are quantized
      const ta = top2(a);
      if (ta.margin > 2 * maxDiff) {
        expect(top2(b).index, `${family} "${prompt}": top token`).toBe(ta.index);
        compared++;
      }
    }
    console.log(`${family} ${precision}: top token compared on ${compared} of ${PROMPTS.length} prompts (the others' margins are within the error)`);
  });

  it('batched calls return what they return alone', async () => {
    const alone: ChatReply[] = [];
    for (const [i, p] of PROMPTS.entries()) alone.push(await int8.chat([{ role: 'user', content: p }], { maxNewTokens: 6, seed: i, temperature: 0.7 }));
    const batched = await Promise.all(PROMPTS.map((p, i) => int8.chat([{ role: 'user', content: p }], { maxNewTokens: 6, seed: i, temperature: 0.7 })));
    batched.forEach((r, i) => expect(Array.from(r.tokens)).toEqual(Array.from(alone[i]!.tokens)));
  });
});

describe('quantized weights: options', () => {
  it('draws with an int8 or q4 LLM and refuses unknown precisions by name', async () => {
    for (const weights of ['int8', 'q4'] as const) {
      const model = await loadModel(tinyModelDir, { device: 'cpu', weights });
      try {
        const reply = await model.generateImage('a red square', { seed: 3 });
        expect(reply.image.width).toBeGreaterThan(0);
      } finally {
        await model.dispose();
      }
    }
    // @ts-expect-error q2 is not a weights precision
    await expect(loadModel(tinyModelDir, { weights: 'q2' })).rejects.toThrow(/options\.weights must be "auto", "int8" or "q4", got "q2"/);
  });
});
