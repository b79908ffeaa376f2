// BLIP3-o understanding through the public API, against the fixture's understanding case (stock
// Qwen2.5-VL: window-attention ViT, Qwen2.5 decoder with M-RoPE, greedy): the prompt the chat
// template renders, then every tensor the fixture records under the trace's name of it -- floats
// within 4x the tensor's float32-vs-float64 spread (never tighter than 1e-5 of max|ref|), ids,
// positions and window indices exactly -- and the greedy tokens.
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadModel, type ChatReply, type VargptModel } from '../../lib/model.js';
import { asFloat32, asNumbers, readJson, readSafetensors } from '../helpers/fixtures.js';
import { expectClose, expectEqualInts, spreadTolerance } from '../helpers/model-fixture.js';
import { blip3oExpectedDir, blip3oModelDir } from '../helpers/paths.js';

interface CaseJson {
  prompt: string;
  conversation: Array<{ role: string; content: Array<{ type: string; text?: string }> }>;
  generated_ids: number[];
  tensors: Record<string, { shape: number[]; dtype: string; f32_vs_f64?: { rel_err_maxnorm?: number } }>;
}

const json = readJson<CaseJson>(path.join(blip3oExpectedDir, 'understanding.json'));
const expected = readSafetensors(path.join(blip3oExpectedDir, 'understanding.safetensors'));
const imagePath = path.join(blip3oExpectedDir, 'input.png');
const question = json.conversation[0]!.content.find((p) => p.type === 'text')!.text!;

describe('BLIP3-o understanding through the public API (fixture blip3o-tiny)', () => {
  let model: VargptModel;
  let reply: ChatReply;

  beforeAll(async () => {
    model = await loadModel(blip3oModelDir, { device: 'cpu' });
    reply = await model.ask(imagePath, question, { maxNewTokens: json.generated_ids.length, trace: true });
  });
  afterAll(() => model?.dispose());

  it('loads as the blip3o family with sizes from config.json and the tensors', () => {
    expect(model.family).toBe('blip3o');
    if (model.info.family !== 'blip3o') return;
    expect(model.info.llm).toMatchObject({ hiddenSize: 48, layers: 2, heads: 4, kvHeads: 2, headDim: 12, mropeSection: [2, 2, 2] });
    expect(model.info.vision).toMatchObject({ embedDim: 32, depth: 4, windowed: true, outHidden: 48 });
    expect(model.info.nQuery).toBe(16);
  });

  it('renders the fixture prompt: the image, then the question', () => {
    const rendered = model.template.render([{ role: 'user', content: [{ type: 'image', image: imagePath }, { type: 'text', text: question }] }]);
    expect(rendered.prompt).toBe(json.prompt);
  });

  it('every recorded tensor matches, and the greedy tokens', () => {
    const trace = reply.trace ?? {};
    const names = Object.keys(json.tensors);
    expect(names.filter((n) => !(n in trace))).toEqual([]);
    for (const name of names) {
      const want = expected.get(name)!;
      const got = trace[name]!;
      expect(got.size, `${name}: element count`).toBe(want.shape.reduce((a, b) => a * b, 1));
      if (want.dtype === 'F32') {
        expectClose(`blip3o.${name}`, got.data as Float32Array, asFloat32(want), spreadTolerance(json.tensors, name, 'understanding'));
      } else {
        expectEqualInts(name, got.data as ArrayLike<number>, asNumbers(want));
      }
    }
    expect(Array.from(reply.tokens)).toEqual(json.generated_ids);
    expect(reply.stopReason).toBe('length');
  });

  it('answers the same after a drawing, and refuses what BLIP3-o does not do', async () => {
    await model.generateImage('A photo of cute cat', { flowSteps: 1, steps: 1, seed: 1 });
    await expect(model.chat([{ role: 'user', content: 'draw' }], { image: { steps: 2 } })).rejects.toThrow(/draws only when asked \(forceImage: true\)/);
    await expect(model.encodeImageTokens(imagePath)).rejects.toThrow(/no discrete image tokens/);
    const again = await model.ask(imagePath, question, { maxNewTokens: json.generated_ids.length });
    expect(Array.from(again.tokens)).toEqual(json.generated_ids);
  });
});
