// VARGPT-v1.1 understanding through the public API, against the fixture's understanding case:
// loadModel on the fixture checkpoint, ask(input.png, question) with trace: true, and every traced
// tensor compared with the upstream PyTorch tensor of the same name. Integer tensors (input ids,
// grids, M-RoPE positions, rope deltas, generated ids) must be equal; float tensors agree within
// 4x each tensor's float32-vs-float64 spread from the fixture manifest, never tighter than 1e-5
// of max|ref| (our float32 and upstream's float32 differ by summation order only, which the f32-vs-f64
// spread bounds from above).
import { readFileSync } from 'node:fs';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadModel, type VargptModel } from '../../lib/index.js';
import type { Tensor } from '../../lib/tensor.js';
import { asFloat32, asNumbers, readJson, readSafetensors, type StTensor } from '../helpers/fixtures.js';
import { filteredCheckpoint, removeJsonCheckpoints } from '../helpers/checkpoint-copy.js';
import { expectClose, spreadTolerance } from '../helpers/model-fixture.js';
import { v11ExpectedDir, v11ModelDir } from '../helpers/paths.js';

interface CaseJson {
  prompt: string;
  conversation: Array<{ role: string; content: Array<{ type: string; text?: string }> }>;
  generated_ids: number[];
  tensors: Record<string, { shape: number[]; f32_vs_f64?: { rel_err_maxnorm?: number } }>;
}

const caseJson = readJson<CaseJson>(path.join(v11ExpectedDir, 'understanding.json'));
const expected = readSafetensors(path.join(v11ExpectedDir, 'understanding.safetensors'));
const question = caseJson.conversation[0]!.content.find((p) => p.type === 'text')!.text!;
const imagePath = path.join(v11ExpectedDir, 'input.png');

function tolerance(name: string): number {
  return spreadTolerance(caseJson.tensors, name, 'understanding');
}

function ref(name: string): StTensor {
  const t = expected.get(name);
  if (!t) throw new Error(`fixture tensor ${name} is missing`);
  return t;
}

function traced(trace: Record<string, Tensor> | undefined, name: string): Tensor {
  const t = trace?.[name];
  if (!t) throw new Error(`the trace has no ${name} (it has ${Object.keys(trace ?? {}).join(', ')})`);
  return t;
}

function ints(t: Tensor): number[] {
  expect(t.dtype).toBe('i32');
  return Array.from(t.data as Int32Array);
}

describe('VARGPT-v1.1 understanding (fixture vargpt-v1.1-tiny, understanding case)', () => {
  let model: VargptModel;
  let reply: Awaited<ReturnType<VargptModel['ask']>>;

  beforeAll(async () => {
    model = await loadModel(v11ModelDir, { device: 'cpu' });
    reply = await model.ask(imagePath, question, { maxNewTokens: caseJson.generated_ids.length, trace: true });
  });
  afterAll(() => model?.dispose());

  it('loads as the vargpt-v1.1 family with sizes from config.json and the tensors', () => {
    expect(model.info.family).toBe('vargpt-v1.1');
    expect(model.family).toBe('vargpt-v1.1');
    if (model.info.family !== 'vargpt-v1.1') return;
    expect(model.info.llm).toMatchObject({ hiddenSize: 32, layers: 2, heads: 2, kvHeads: 1, mropeSection: [2, 3, 3] });
    expect(model.info.vision).toMatchObject({ embedDim: 32, depth: 2, patchValues: 1176, mergeSize: 2, outHidden: 32 });
    expect(model.info.image).not.toBeNull();
    expect(model.defaults.image).toMatchObject({ cfg: 3, tau: 0.5, topK: 900, topP: 0.97 });
  });

  it('renders the prompt as the fixture and tokenizes it to the same ids', () => {
    const rendered = model.template.render([{ role: 'user', content: [{ type: 'text', text: question }, { type: 'image', image: imagePath }] }]);
    expect(rendered.prompt).toBe(caseJson.prompt);
    expect(ints(traced(reply.trace, 'input_ids'))).toEqual(asNumbers(ref('input_ids')));
    expect(reply.promptTokens).toBe(caseJson.tensors['input_ids']!.shape[0]);
  });

  it('preprocesses the image to the same pixel values and grid', () => {
    expect(ints(traced(reply.trace, 'image_grid_thw'))).toEqual(asNumbers(ref('image_grid_thw')));
    const px = traced(reply.trace, 'pixel_values');
    expect(px.shape).toEqual(caseJson.tensors['pixel_values']!.shape);
    expectClose('pixel_values', px.data as Float32Array, asFloat32(ref('pixel_values')), 1e-6);
  });

  it('computes the vision tower and merger outputs', () => {
    for (const name of ['vit_patch_embed', 'vit_block_out', 'merger_out']) {
      const t = traced(reply.trace, name);
      expect(t.shape, name).toEqual(caseJson.tensors[name]!.shape);
      expectClose(name, t.data as Float32Array, asFloat32(ref(name)), tolerance(name));
    }
  });

  it('computes the M-RoPE positions and rope delta exactly', () => {
    const positions = traced(reply.trace, 'mrope_position_ids');
    expect(positions.shape).toEqual(caseJson.tensors['mrope_position_ids']!.shape);
    expect(ints(positions)).toEqual(asNumbers(ref('mrope_position_ids')));
    expect(ints(traced(reply.trace, 'rope_deltas'))).toEqual(asNumbers(ref('rope_deltas')));
    expect(ints(traced(reply.trace, 'step_position_ids'))).toEqual(asNumbers(ref('step_position_ids')));
  });

  it('computes the prefill embeddings, hidden states and last logits', () => {
    for (const name of ['prefill_inputs_embeds', 'prefill_hidden', 'prefill_last_logits']) {
      const t = traced(reply.trace, name);
      expect(t.shape, name).toEqual(caseJson.tensors[name]!.shape);
      expectClose(name, t.data as Float32Array, asFloat32(ref(name)), tolerance(name));
    }
  });

  it('decodes the 8 greedy tokens of the fixture, with the logits of every step', () => {
    expect(Array.from(reply.tokens)).toEqual(caseJson.generated_ids);
    expect(reply.stopReason).toBe('length');
    const steps = traced(reply.trace, 'step_logits');
    expect(steps.shape).toEqual(caseJson.tensors['step_logits']!.shape);
    expectClose('step_logits', steps.data as Float32Array, asFloat32(ref('step_logits')), tolerance('step_logits'));
    expect(reply.text).toBe(model.tokenizer.decode(caseJson.generated_ids));
  });

  it('keeps a multi-turn conversation with an image in each user turn', async () => {
    const first = [{ role: 'user' as const, content: [{ type: 'text' as const, text: question }, { type: 'image' as const, image: imagePath }] }];
    const turn1 = await model.chat(first, { maxNewTokens: 4 });
    const second = [...first, turn1.message, { role: 'user' as const, content: [{ type: 'image' as const, image: imagePath }, { type: 'text' as const, text: 'And now?' }] }];
    const turn2 = await model.chat(second, { maxNewTokens: 4, trace: true });
    const t = turn2.trace!;
    // Both images, each expanded to its own 12 tokens; the second turn's prompt holds the first answer.
    expect(ints(traced(t, 'image_grid_thw'))).toEqual([...asNumbers(ref('image_grid_thw')), ...asNumbers(ref('image_grid_thw'))]);
    const rendered = model.template.render(second).prompt;
    expect(rendered).toContain(`${turn1.text}<|im_end|>`);
    expect(rendered.split('<|vision_start|>').length - 1).toBe(2);
    // Positions after both images continue from the largest one: the rope delta grows per image.
    expect(ints(traced(t, 'rope_deltas'))[0]).toBe(2 * asNumbers(ref('rope_deltas'))[0]!);
  });

  it('samples reproducibly with a seed (temperature, top-k, top-p, repetition penalty)', async () => {
    const options = { maxNewTokens: 6, temperature: 0.9, topK: 40, topP: 0.95, repetitionPenalty: 1.1, seed: 42 };
    const a = await model.ask(imagePath, question, options);
    const b = await model.ask(imagePath, question, options);
    const c = await model.ask(imagePath, question, { ...options, seed: 43 });
    expect(Array.from(a.tokens)).toEqual(Array.from(b.tokens));
    expect(a.seed).toBe(42);
    expect(Array.from(c.tokens)).not.toEqual(Array.from(a.tokens));
  });

  it('streams the same text with chatStream, token by token', async () => {
    const messages = [{ role: 'user' as const, content: [{ type: 'text' as const, text: question }, { type: 'image' as const, image: readFileSync(imagePath) }] }];
    let text = '';
    let end: { tokens: Int32Array } | null = null;
    for await (const event of model.chatStream(messages, { maxNewTokens: caseJson.generated_ids.length })) {
      if (event.type === 'text') text += event.delta;
      if (event.type === 'end') end = event.reply;
    }
    expect(Array.from(end!.tokens)).toEqual(caseJson.generated_ids);
    expect(text).toBe(reply.text);
  });

  it('ends the answer on any EOS id config.json lists', async () => {
    const first = caseJson.generated_ids[0]!;
    const dir = filteredCheckpoint(v11ModelDir, () => true, (config) => void (config['eos_token_id'] = [config['eos_token_id'] as number, first]));
    const eosModel = await loadModel(dir, { device: 'cpu' });
    try {
      const r = await eosModel.ask(imagePath, question, { maxNewTokens: 8 });
      expect(Array.from(r.tokens)).toEqual([first]);
      expect(r.stopReason).toBe('eos');
    } finally {
      await eosModel.dispose();
      removeJsonCheckpoints();
    }
  });
});
