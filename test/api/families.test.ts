// The family registry: config.json `model_type` picks the adapter, `architectures[0]` when there is
// no model_type, and a checkpoint of another family is refused before any weights load, naming
// the families this runtime supports.
import { afterAll, describe, expect, it } from 'vitest';

import { CheckpointError } from '../../lib/errors.js';
import { FAMILIES, familyFor, supportedFamilies } from '../../lib/families/registry.js';
import { loadModelWith } from '../../lib/model.js';
import type { NativeVargptV1Info } from '../../lib/native.js';
import { VargptTokenizer } from '../../lib/tokenizer.js';
import { jsonCheckpoint, removeJsonCheckpoints } from '../helpers/checkpoint-copy.js';
import { FIXTURE_INFO, fakeAddon } from '../helpers/fake-native.js';
import { fixtureTitle } from '../helpers/fixture-title.js';
import { fixturesMissing } from '../helpers/paths.js';

afterAll(removeJsonCheckpoints);

describe('family registry', () => {
  it('lists each family once, with its model types and architectures', () => {
    expect(FAMILIES.map((f) => f.family)).toEqual(['vargpt-v1', 'vargpt-v1.1', 'blip3o']);
    expect(new Set(FAMILIES.flatMap((f) => f.modelTypes)).size).toBe(FAMILIES.flatMap((f) => f.modelTypes).length);
    expect(supportedFamilies()).toBe(
      'vargpt_llava (VARGPT v1, VARGPTLlavaForConditionalGeneration), vargpt_qwen2_vl (VARGPT-v1.1, VARGPTQwen2VLForConditionalGeneration), ' +
        'blip3o_qwen / blip3o_qwen_inference (BLIP3-o, blip3oQwenForCausalLM / blip3oQwenForInferenceLM)',
    );
  });

  it('picks the family by model_type, else by architectures[0]', () => {
    expect(familyFor({ model_type: 'vargpt_llava' }, 'config.json').family).toBe('vargpt-v1');
    expect(familyFor({ architectures: ['VARGPTLlavaForConditionalGeneration', 'Other'] }, 'config.json').family).toBe('vargpt-v1');
    expect(familyFor({ model_type: null, architectures: ['VARGPTLlavaForConditionalGeneration'] }, 'config.json').family).toBe('vargpt-v1');
    expect(familyFor({ model_type: 'vargpt_qwen2_vl' }, 'config.json').family).toBe('vargpt-v1.1');
    expect(familyFor({ architectures: ['VARGPTQwen2VLForConditionalGeneration'] }, 'config.json').family).toBe('vargpt-v1.1');
    expect(familyFor({ model_type: 'blip3o_qwen' }, 'config.json').family).toBe('blip3o');
  });

  it('refuses an unknown model_type, or no model_type and an unknown architecture, listing the supported families', () => {
    const list = /supports vargpt_llava \(VARGPT v1, VARGPTLlavaForConditionalGeneration\)/;
    expect(() => familyFor({ model_type: 'qwen2_vl', architectures: ['VARGPTLlavaForConditionalGeneration'] }, 'c.json')).toThrow(list);
    expect(() => familyFor({ model_type: 'qwen2_vl' }, 'c.json')).toThrow(/c\.json: model_type "qwen2_vl" is not a model family this runtime supports/);
    expect(() => familyFor({ model_type: 7 }, 'c.json')).toThrow(/model_type 7 is not/);
    expect(() => familyFor({ architectures: ['LlavaForConditionalGeneration'] }, 'c.json')).toThrow(/no model_type and architectures\[0\] "LlavaForConditionalGeneration"/);
    expect(() => familyFor({ architectures: ['LlavaForConditionalGeneration'] }, 'c.json')).toThrow(list);
    expect(() => familyFor({}, 'c.json')).toThrow(/c\.json has neither model_type nor architectures/);
    expect(() => familyFor({}, 'c.json')).toThrow(CheckpointError);
  });

  // The loadModel tests copy the tiny fixture's JSON files (jsonCheckpoint); without the fixtures
  // they skip, the registry tests above run.
  it.skipIf(fixturesMissing !== null)(fixtureTitle('loadModel refuses a checkpoint of an unsupported family before loading weights'), async () => {
    const dir = jsonCheckpoint({ config: (c) => (c['model_type'] = 'qwen2_5_vl') });
    const addon = fakeAddon();
    const load = loadModelWith(addon, dir);
    await expect(load).rejects.toBeInstanceOf(CheckpointError);
    await expect(loadModelWith(addon, dir)).rejects.toThrow(/model_type "qwen2_5_vl" is not a model family this runtime supports; it supports vargpt_llava \(VARGPT v1/);
    expect(addon.loads).toBe(0);
    await expect(VargptTokenizer.fromDir(dir)).rejects.toThrow(/model_type "qwen2_5_vl"/);
  });

  it.skipIf(fixturesMissing !== null)(fixtureTitle('loadModel reads a config without model_type through architectures[0]'), async () => {
    const dir = jsonCheckpoint({ config: (c) => delete c['model_type'] });
    const model = await loadModelWith(fakeAddon(), dir);
    expect(model.info.family).toBe('vargpt-v1');
    expect((await model.chat([{ role: 'user', content: 'hi' }])).stopReason).toBe('eos');
  });

  it.skipIf(fixturesMissing !== null)(fixtureTitle('refuses a runtime that loaded the checkpoint as another family'), async () => {
    const addon = fakeAddon({ ...FIXTURE_INFO, family: 'vargpt-v1.1' } as unknown as NativeVargptV1Info);
    await expect(loadModelWith(addon, jsonCheckpoint())).rejects.toThrow(/config\.json is a vargpt-v1 checkpoint, but the runtime loaded it as "vargpt-v1\.1"/);
    expect(addon.model.disposeCalls).toBe(1);
  });
});
