// The errors a new user meets first, on a synthesized tiny checkpoint (no fixtures needed): a
// broken checkpoint file is a CheckpointError, a missing or empty folder says so, NaN and Infinity
// options are named as such, a misspelled option is rejected with the closest known name, and the
// CLI refuses an output path it cannot write before it draws.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, openSync, rmSync, truncateSync, writeSync, closeSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { CheckpointError, InputError, loadModel, synthesize } from '../../lib/index.js';
import type { VargptModel } from '../../lib/index.js';
import { closestName, describeValue } from '../../lib/options.js';
import { repoRoot } from '../helpers/paths.js';

const work = mkdtempSync(path.join(tmpdir(), 'vargpt-errors-'));
const good = path.join(work, 'tiny');
let model: VargptModel;

beforeAll(async () => {
  await synthesize({ preset: 'tiny', out: good });
  model = await loadModel(good);
});
afterAll(async () => {
  await model?.dispose();
  rmSync(work, { recursive: true, force: true });
});

function copyOfGood(name: string): string {
  const dir = path.join(work, name);
  cpSync(good, dir, { recursive: true });
  return dir;
}

async function loadError(dir: string): Promise<Error> {
  const error: unknown = await loadModel(dir).then(
    async (m) => {
      await m.dispose();
      return null;
    },
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(Error);
  return error as Error;
}

describe('checkpoint errors', () => {
  it('a truncated safetensors file is a CheckpointError naming the file', async () => {
    const dir = copyOfGood('truncated');
    const file = path.join(dir, 'model.safetensors');
    truncateSync(file, Math.floor(statSync(file).size / 2));
    const error = await loadError(dir);
    expect(error).toBeInstanceOf(CheckpointError);
    expect(error.name).toBe('CheckpointError');
    expect(error.message).toContain(file);
    expect(error.message).toMatch(/truncated/);
  });

  it('a corrupt safetensors header is a CheckpointError naming the file', async () => {
    const dir = copyOfGood('corrupt');
    const file = path.join(dir, 'model.safetensors');
    const fd = openSync(file, 'r+');
    writeSync(fd, Buffer.from('{garbage'), 0, 8, 8);
    closeSync(fd);
    const error = await loadError(dir);
    expect(error).toBeInstanceOf(CheckpointError);
    expect(error.message).toContain(`${file}: header`);
  });

  it('a missing folder, an empty folder and a file are reported as such', async () => {
    const missing = await loadError(path.join(work, 'no-such-model'));
    expect(missing).toBeInstanceOf(CheckpointError);
    expect(missing.message).toMatch(/^model folder .*no-such-model does not exist/);
    const empty = path.join(work, 'empty');
    mkdirSync(empty);
    const emptyError = await loadError(empty);
    expect(emptyError).toBeInstanceOf(CheckpointError);
    expect(emptyError.message).toMatch(/^model folder .*empty is empty \(a checkpoint folder holds config\.json/);
    const file = path.join(work, 'file.bin');
    writeFileSync(file, 'x');
    expect((await loadError(file)).message).toMatch(/file\.bin is a file, not a model folder/);
    // A folder with other files but no config.json still names the file it lacks.
    const partial = path.join(work, 'partial');
    mkdirSync(partial);
    writeFileSync(path.join(partial, 'README.md'), 'x');
    expect((await loadError(partial)).message).toMatch(/model config not found: .*partial\/config\.json/);
  });
});

describe('option errors', () => {
  const chat = (options: Record<string, unknown>) => model.chat([{ role: 'user', content: 'hi' }], { maxNewTokens: 2, ...options });

  it('NaN, Infinity and -Infinity are named in the message, not shown as null', async () => {
    await expect(chat({ temperature: NaN })).rejects.toThrow(/^chat options\.temperature must be a number >= 0 \(0 = greedy\), got NaN$/);
    await expect(chat({ topP: Infinity })).rejects.toThrow(/chat options\.topP must be a number in \(0, 1\], got Infinity$/);
    await expect(chat({ seed: -Infinity })).rejects.toThrow(/got -Infinity$/);
    await expect(model.generateImage('x', { cfg: NaN })).rejects.toThrow(/cfg must be .*, got NaN$/);
    expect(describeValue([NaN, 2])).toBe('[NaN, 2]');
    expect(describeValue('a')).toBe('"a"');
    expect(describeValue(undefined)).toBe('undefined');
  });

  it('an unknown option is an InputError with the closest known name', async () => {
    const error = await chat({ maxTokens: 5 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InputError);
    expect((error as Error).message).toBe('chat options.maxTokens: unknown option; did you mean maxNewTokens?');
    await expect(model.ask(path.join(work, 'none.png'), 'x', { max_new_tokens: 3 } as object)).rejects.toThrow('ask options.max_new_tokens: unknown option; did you mean maxNewTokens?');
    await expect(model.generateImage('x', { cfgg: 2 } as object)).rejects.toThrow('generateImage options.cfgg: unknown option; did you mean cfg?');
    await expect(chat({ image: { topk: 5 } })).rejects.toThrow('chat options.image.topk: unknown option; did you mean topK?');
    await expect(model.generateImage('x', { replay: { indeces: [] } } as object)).rejects.toThrow('generateImage options.replay.indeces: unknown option; did you mean indices?');
    await expect(chat({ zzzzzz: 1 })).rejects.toThrow(/chat options\.zzzzzz: unknown option; the options are signal, seed, .*maxNewTokens/);
    await expect(model.encodeImageTokens('x', { scale: [] } as object)).rejects.toThrow('encodeImageTokens options.scale: unknown option; did you mean scales?');
    await expect(loadModel(good, { kvcache: 'bf16' } as object)).rejects.toThrow('loadModel options.kvcache: unknown option; did you mean kvCache?');
    await expect(loadModel(good, { imageLimits: { maxPixel: 4 } } as object)).rejects.toThrow('loadModel options.imageLimits.maxPixel: unknown option; did you mean maxPixels?');
    // A known key set to undefined is fine, and so is an unknown one (nothing to ignore).
    expect((await chat({ temperature: undefined, notAnOption: undefined })).stopReason).toMatch(/length|eos/);
  });

  it('closestName: case, underscores and small typos; nothing when nothing is near', () => {
    const known = ['maxNewTokens', 'temperature', 'topK', 'topP', 'seed'];
    expect(closestName('max_new_tokens', known)).toBe('maxNewTokens');
    expect(closestName('temprature', known)).toBe('temperature');
    expect(closestName('topk', known)).toBe('topK');
    expect(closestName('banana', known)).toBeNull();
  });
});

describe('CLI output paths', () => {
  const main = path.join(repoRoot, 'dist/cli/main.js');
  const cache = path.join(work, 'cache');
  const cli = (args: string[]) => spawnSync(process.execPath, [main, ...args], { cwd: work, encoding: 'utf8', env: { ...process.env, VARGPT_CACHE_DIR: cache }, timeout: 60_000 });

  it('generate -o into a missing folder fails before any model is loaded or drawn', () => {
    const r = cli(['generate', 'a fox', '-o', '/missing/dir/x.png']);
    expect(r.status).toBe(1);
    expect(r.stderr).toBe('vargpt: -o /missing/dir/x.png: the folder /missing/dir does not exist\n');
    expect(existsSync(cache)).toBe(false); // the default model was not even created
  });

  it('chat --out-dir that is not a folder fails at once', () => {
    const file = path.join(work, 'not-a-dir');
    writeFileSync(file, '');
    const r = cli(['chat', '--out-dir', file]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`${file} is not a folder`);
  });
});
