// The native family registry (native/models/pipelines/registry.cc), reached through the addon's
// loadModel directly: the TypeScript registry refuses unknown families first, so this checks the
// native side on its own. It must agree with lib/families/registry.ts.
import path from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { native } from '../../lib/native.js';
import { jsonCheckpoint, removeJsonCheckpoints } from '../helpers/checkpoint-copy.js';
import { fixturesDir, tinyModelDir, v11ModelDir } from '../helpers/paths.js';

afterAll(removeJsonCheckpoints);

const supported = /is not a supported family; supported model types: vargpt_llava \(vargpt-v1\), vargpt_qwen2_vl \(vargpt-v1\.1\), blip3o_qwen \(blip3o\)/;

describe('native family registry', () => {
  it('loads a VARGPT v1 checkpoint as the vargpt-v1 family', async () => {
    const model = await native().loadModel(tinyModelDir, { device: 'cpu' });
    expect(model.info().family).toBe('vargpt-v1');
    await model.dispose();
  });

  it('loads a VARGPT-v1.1 checkpoint as the vargpt-v1.1 family', async () => {
    const model = await native().loadModel(v11ModelDir, { device: 'cpu' });
    expect(model.info().family).toBe('vargpt-v1.1');
    await model.dispose();
  });

  it('loads a BLIP3-o checkpoint as the blip3o family', async () => {
    const model = await native().loadModel(path.join(fixturesDir, 'blip3o-tiny', 'model'), { device: 'cpu' });
    expect(model.info().family).toBe('blip3o');
    await model.dispose();
  });

  it('refuses another family by its model_type, listing the supported ones', async () => {
    const other = jsonCheckpoint({ config: (c) => void (c['model_type'] = 'qwen2_5_vl') });
    await expect(native().loadModel(other, { device: 'cpu' })).rejects.toThrow(/model_type "qwen2_5_vl" .*is not a supported family/);
    await expect(native().loadModel(other, { device: 'cpu' })).rejects.toThrow(supported);
  });

  it('reads architectures[0] only where model_type is absent', async () => {
    // A known architecture under an unknown model_type is refused ...
    const unknownType = jsonCheckpoint({ config: (c) => void (c['model_type'] = 'llava') });
    await expect(native().loadModel(unknownType, { device: 'cpu' })).rejects.toThrow(supported);
    // ... and without a model_type it picks the family, which then fails on the missing weights
    // (these copies hold only the JSON files), not on the family.
    const noType = jsonCheckpoint({ config: (c) => void delete c['model_type'] });
    const error = await native().loadModel(noType, { device: 'cpu' }).then(
      () => null,
      (e: unknown) => e as Error,
    );
    expect(error).toBeInstanceOf(Error);
    expect(error!.message).not.toMatch(/supported family/);
    expect(error!.message).toMatch(/safetensors/);
  });
});
