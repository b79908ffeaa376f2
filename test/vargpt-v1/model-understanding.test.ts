// Image understanding on the tiny fixture, against the upstream PyTorch intermediates: CLIP
// features (hidden_states[-2], CLS dropped), projected features, prefill, 8 greedy tokens and the
// logits behind each. The inputs are the fixture's own input_ids and pixel_values (tokenizer and
// preprocessing are tested elsewhere); tolerances are the fixture README's (1e-5 of max|ref| for
// CLIP/LLM tensors).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { NativeModel } from '../../lib/native.js';
import { baseRequest, expectedJson, reportObserved, understandingInputs, loadTiny, TINY_F32, addon, v1Info } from '../helpers/model-fixture.js';
import { expectUnderstandingParity } from '../helpers/parity.js';

describe('VARGPT v1 understanding (tiny fixture, f32)', () => {
  let model: NativeModel;
  beforeAll(async () => {
    model = await loadTiny();
  });
  afterAll(() => {
    model?.dispose();
    reportObserved('understanding');
  });

  it('derives sizes from config.json and tensor shapes', async () => {
    const cfg = expectedJson('../model/config.json');
    const gen = expectedJson('generation.json');
    const info = v1Info(model);
    expect(info.device).toBe('cpu');
    expect(info.llm).toMatchObject({
      hiddenSize: cfg.text_config.hidden_size,
      layers: cfg.text_config.num_hidden_layers,
      heads: cfg.text_config.num_attention_heads,
      kvHeads: cfg.text_config.num_key_value_heads,
      vocabSize: cfg.text_config.vocab_size,
      maxPositions: cfg.text_config.max_position_embeddings,
    });
    expect(info.vision).toEqual({
      hiddenSize: cfg.vision_config.hidden_size,
      layers: cfg.vision_config.num_hidden_layers,
      imageSize: cfg.vision_config.image_size,
      patchSize: cfg.vision_config.patch_size,
      tokens: cfg.image_seq_length,
    });
    // VAR / VQ-VAE sizes are not in config.json; the README lists what the shapes must give.
    expect(info.var).toEqual({ depth: 2, width: 128, heads: 2, patchNums: gen.patch_nums, codebookSize: 4096, cvae: 32, weights: 'f32' });
    expect(info.vqvae).toMatchObject({ ch: 32, chMult: [1, 1, 2, 2, 4], numResBlocks: 2, zChannels: 32, imageSize: 256 });
    // φ map derived from linspace/argmin in double must give upstream's table.
    expect(info.vqvae?.phiIndex).toEqual(gen.phi_index_per_scale);
    expect(info.imageTokenId).toBe(cfg.image_token_index);
    expect(info.imageGenStartId).toBe(cfg.special_tokens.image_gen_start_token_id);
    expect(info.imageGenEndId).toBe(cfg.special_tokens.image_gen_end_token_id);
    expect(info.eosId).toBe(cfg.text_config.eos_token_id);
    expect(info.bosId).toBe(cfg.text_config.bos_token_id);
  });

  it('reproduces vision features, projected features, prefill and 8 greedy tokens', async () => {
    await expectUnderstandingParity(model);
  });

  it('stops on EOS or a stop id, and counts the budget', async () => {
    const { inputIds, pixelValues, ex } = await understandingInputs();
    const ref = ex.ints('generated_ids');
    const stop = await model.generate({ ...baseRequest(inputIds), pixelValues: [pixelValues], stopIds: [ref[2]!] });
    expect(Array.from(stop.tokens)).toEqual(Array.from(ref.subarray(0, 3)));
    expect(stop.stopReason).toBe('eos');
    const none = await model.generate({ ...baseRequest(inputIds), pixelValues: [pixelValues], maxNewTokens: 0 });
    expect(none.tokens.length).toBe(0);
    expect(none.stopReason).toBe('length');
  });

  it('samples reproducibly with temperature, top-k and top-p, and the repetition penalty changes greedy picks', async () => {
    const { inputIds, pixelValues } = await understandingInputs();
    const sampled = (seed: number) =>
      model.generate({ ...baseRequest(inputIds), pixelValues: [pixelValues], temperature: 1.5, topK: 50, topP: 0.9, seed });
    const a = await sampled(11);
    const b = await sampled(11);
    const c = await sampled(12);
    expect(Array.from(a.tokens)).toEqual(Array.from(b.tokens));
    expect(Array.from(a.tokens)).not.toEqual(Array.from(c.tokens));
    // HF semantics: a penalty over prompt + generated ids; with a large penalty no id repeats.
    const penalised = await model.generate({ ...baseRequest(inputIds), pixelValues: [pixelValues], maxNewTokens: 16, repetitionPenalty: 1e6 });
    expect(new Set(penalised.tokens).size).toBe(penalised.tokens.length);
    for (const id of penalised.tokens) expect(inputIds.includes(id)).toBe(false);
  });

  it('reports per-stage seconds when profiling', async () => {
    const { inputIds, pixelValues } = await understandingInputs();
    const r = await model.generate({ ...baseRequest(inputIds), pixelValues: [pixelValues], profile: true });
    expect(r.profile?.visionEncode).toBeGreaterThan(0);
    expect(r.profile?.prefill).toBeGreaterThan(0);
    expect(r.profile?.decode).toBeGreaterThan(0);
    expect(r.profile?.decodeTokens).toBe(7);
    expect(r.trace).toBeUndefined();
  });

  it('loads with progress reaching the checkpoint size', async () => {
    const events: Array<[number, number]> = [];
    const m = await addon.loadModel(TINY_F32, { device: 'cpu', onProgress: (a, b) => events.push([a, b]) });
    m.dispose();
    expect(events.length).toBeGreaterThan(1);
    const [loaded, total] = events[events.length - 1]!;
    expect(loaded).toBe(total);
    for (let i = 1; i < events.length; i++) expect(events[i]![0]).toBeGreaterThanOrEqual(events[i - 1]![0]);
  });
});
