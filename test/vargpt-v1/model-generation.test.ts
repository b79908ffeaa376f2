// Text-to-image on the tiny fixture. The fixture's sampling used PyTorch's CPU generator, which no
// other runtime reproduces, so the parity run replays its per-scale Gaussian rows and sampled
// indices and compares everything else scale by scale (README tolerances: 1e-4 of max|ref| for
// VAR-side tensors, 1e-5 for LLM-only ones). Non-replayed runs are checked for reproducibility.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { NativeModel } from '../../lib/native.js';
import { Expected, expectedJson, loadTiny, reportObserved, addon, v1Info } from '../helpers/model-fixture.js';
import { expectGenerationReplayParity, imageRequest as fixtureImageRequest } from '../helpers/parity.js';

describe('VARGPT v1 text-to-image (tiny fixture, f32)', () => {
  let model: NativeModel;
  let ex: Expected;
  const meta = expectedJson('generation.json');
  const SN: number = meta.patch_nums.length;

  beforeAll(async () => {
    model = await loadTiny();
    ex = await Expected.open('generation.safetensors');
  });
  afterAll(() => {
    model?.dispose();
    reportObserved('generation');
  });

  const imageRequest = (seed: number) => fixtureImageRequest(ex, seed);

  it('reproduces every scale and the image when replaying the recorded noise and indices', async () => {
    await expectGenerationReplayParity(model, ex);
  });

  it('is reproducible for a seed, differs for another, and streams previews per scale', async () => {
    const previews: Array<{ scale: number; scales: number; width: number; data: Uint8Array }> = [];
    const a = await model.generate({
      ...imageRequest(7),
      onImageProgress: (_stage, scale, scales, p) => previews.push({ scale, scales, width: p.width, data: p.data }),
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
      onImageProgress: (_stage, scale) => {
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
    expect(r.tokens[0]).toBe(v1Info(model).imageGenStartId);
    expect(r.tokenAfterImageStart).toBe(r.tokens[1]);
  });
});
