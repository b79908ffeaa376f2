// The tiny fixture's parity runs on the CUDA backend: the same checks and tolerances as on the CPU
// (helpers/parity.ts: understanding with 8 greedy tokens, and text-to-image with the recorded
// noise and indices replayed), then seeded sampling on the device. Skipped, saying why, where the
// loaded addon has no usable CUDA device (helpers/cuda.ts).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { NativeModel } from '../../lib/native.js';
import { cudaAvailable, cudaTitle } from '../helpers/cuda.js';
import { Expected, TINY_BF16, TINY_F32, addon, baseRequest, loadTiny, reportObserved, traceValues, understandingInputs } from '../helpers/model-fixture.js';
import { expectGenerationReplayParity, expectUnderstandingParity, imageRequest } from '../helpers/parity.js';

describe.skipIf(!cudaAvailable)(cudaTitle('VARGPT v1 on cuda (tiny fixture, f32)'), () => {
  let model: NativeModel;
  let cpu: NativeModel;
  let ex: Expected;
  beforeAll(async () => {
    model = await loadTiny(undefined, 'cuda');
    cpu = await loadTiny();
    ex = await Expected.open('generation.safetensors');
  });
  afterAll(() => {
    model?.dispose();
    cpu?.dispose();
    reportObserved('cuda');
  });

  it('runs on the device', () => {
    expect(model.info().device).toMatch(/^cuda:\d+$/);
  });

  it('reproduces vision features, prefill, 8 greedy tokens and their logits', async () => {
    await expectUnderstandingParity(model);
  });

  it('reproduces every scale and the image when replaying the recorded noise and indices', async () => {
    await expectGenerationReplayParity(model, ex);
  });

  it('samples text like the CPU for the same seed (top-k, top-p, temperature)', async () => {
    const { inputIds, pixelValues } = await understandingInputs();
    const request = { ...baseRequest(inputIds), pixelValues: [pixelValues], temperature: 1.5, topK: 50, topP: 0.9, seed: 11 };
    const a = await model.generate(request);
    const b = await model.generate(request);
    const c = await cpu.generate(request);
    expect(Array.from(a.tokens)).toEqual(Array.from(b.tokens));
    // Logits agree to ~1e-6 relative, and the sampler's filters and draw are evaluated in double
    // on both devices: the same tokens unless a draw sits on a rounding tie.
    expect(Array.from(a.tokens)).toEqual(Array.from(c.tokens));
  });

  it('draws a seeded image reproducibly on the device', async () => {
    const a = await model.generate(imageRequest(ex, 7));
    const b = await model.generate(imageRequest(ex, 7));
    expect(a.stopReason).toBe('image');
    expect(Buffer.from(a.image!.data).equals(Buffer.from(b.image!.data))).toBe(true);
    expect(new Set(a.image!.data).size).toBeGreaterThan(16);
  });

  // int8: the device's integer sums and epilogue equal the CPU's bit for bit, so the logits differ
  // only through the float ops around them (~1e-6); q4 sums its group terms in another order.
  it.each(['int8', 'q4'] as const)('quantizes the LLM to %s and gives the same greedy tokens and close logits as the CPU', async (weights) => {
    const gpu = await addon.loadModel(TINY_F32, { device: 'cuda', weights });
    const host = await addon.loadModel(TINY_F32, { device: 'cpu', weights });
    try {
      expect(gpu.info().llm.weights).toBe(weights);
      const { inputIds, pixelValues } = await understandingInputs();
      const request = { ...baseRequest(inputIds), pixelValues: [pixelValues], trace: true };
      const [g, c] = [await gpu.generate(request), await host.generate(request)];
      expect(Array.from(g.tokens)).toEqual(Array.from(c.tokens));
      const a = traceValues(g.trace, 'stepLogits'), b = traceValues(c.trace, 'stepLogits');
      expect(a.length).toBe(b.length);
      let worst = 0, scale = 0;
      for (let i = 0; i < b.length; i++) {
        worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
        scale = Math.max(scale, Math.abs(b[i]!));
      }
      expect(worst).toBeLessThanOrEqual(1e-4 * scale);
    } finally {
      gpu.dispose();
      host.dispose();
    }
  });

  it('loads the bf16 shards and gives the same greedy tokens as the CPU (tensor-core GEMM)', async () => {
    const bf16 = await loadTiny(TINY_BF16, 'cuda');
    const bf16Cpu = await loadTiny(TINY_BF16);
    try {
      const { inputIds, pixelValues } = await understandingInputs();
      const request = { ...baseRequest(inputIds), pixelValues: [pixelValues] };
      const [g, c] = [await bf16.generate(request), await bf16Cpu.generate(request)];
      expect(Array.from(g.tokens)).toEqual(Array.from(c.tokens));
    } finally {
      bf16.dispose();
      bf16Cpu.dispose();
    }
  });
});
