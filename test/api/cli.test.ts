// The `vargpt` command, spawned as users run it: node dist/cli/main.js (compiled first).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { decodeImage } from '../../lib/image.js';
import { candidateSeed } from '../../lib/self-check.js';
import type { SelfCheckReport } from '../../lib/self-check.js';
import { judgeDrawing } from '../../training/demo/judge.mjs';
import { fixtureExpected, fixtureModel, readJson, repoRoot } from '../helpers/fixtures.js';
import { fixturesMissing, v11ExpectedDir, v11ModelDir } from '../helpers/paths.js';

const work = mkdtempSync(path.join(tmpdir(), 'vargpt-cli-'));
const main = path.join(repoRoot, 'dist/cli/main.js');

function cli(args: string[], env: Record<string, string> = {}, input?: string) {
  const r = spawnSync(process.execPath, [main, ...args], { cwd: work, encoding: 'utf8', input, env: { ...process.env, VARGPT_CACHE_DIR: path.join(work, 'cache'), ...env }, timeout: 300_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

beforeAll(() => {
  execFileSync(process.execPath, [path.join(repoRoot, 'node_modules/typescript/bin/tsc'), '-p', path.join(repoRoot, 'tsconfig.json')], { stdio: 'inherit' });
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

// A test on the fixture checkpoints: without them it is skipped, the reason in its name.
function withFixtures(name: string, fn: () => void): void {
  if (fixturesMissing) it.skip(`${name} [${fixturesMissing}]`, fn);
  else it(name, fn);
}

describe('vargpt CLI', () => {
  it('starts with a node shebang and prints its version and help', () => {
    expect(readFileSync(main, 'utf8').startsWith('#!/usr/bin/env node\n')).toBe(true);
    const pkg = JSON.parse(readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { version: string; bin: Record<string, string> };
    expect(pkg.bin['vargpt']).toBe('./dist/cli/main.js');
    expect(cli(['--version']).stdout.trim()).toBe(pkg.version);
    const help = cli(['--help']).stdout;
    for (const c of ['generate', 'edit', 'ask', 'chat', 'info', 'synth']) expect(help).toContain(c);
  });

  it('info: CPU threads, SIMD and kernels, and CUDA devices or the reason it is unavailable', () => {
    const text = cli(['info']);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^cpu: .+, \d+ threads$/m);
    expect(text.stdout).toMatch(/^ {2}SIMD: /m);
    expect(text.stdout).toMatch(/^ {2}kernels: (amx|avx512|avx2|portable|neon)/m);
    expect(text.stdout).toMatch(/^cuda: (available|unavailable: .+)/m);
    const json = cli(['info', '--json']);
    const report = JSON.parse(json.stdout) as { cpu: { threads: number; features: string[]; kernels: string }; cuda: { available: boolean; reason?: string; devices: unknown[] } };
    expect(report.cpu.threads).toBeGreaterThan(0);
    expect(Array.isArray(report.cpu.features)).toBe(true);
    if (!report.cuda.available) expect(report.cuda.reason).toBeTruthy();
    else expect(report.cuda.devices.length).toBeGreaterThan(0);
  });

  it('synth: writes a checkpoint, refuses a non-empty folder, replaces it with --force', () => {
    const out = path.join(work, 'tiny');
    const r = cli(['synth', '--preset', 'tiny', '--out', out, '--dtype', 'bf16', '--seed', '5', '--json']);
    expect(r.code).toBe(0);
    const result = JSON.parse(r.stdout) as { dir: string; parameters: number; tensors: number; dtype: string; seed: number; files: string[] };
    expect(result).toMatchObject({ dir: out, tensors: 438, dtype: 'bf16', seed: 5 });
    expect(result.parameters).toBe(14258631);
    expect(readdirSync(out)).toContain('model.safetensors');
    expect(JSON.parse(readFileSync(path.join(out, 'config.json'), 'utf8')).torch_dtype).toBe('bfloat16');
    const again = cli(['synth', '--preset', 'tiny', '--out', out]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/vargpt: synthesize: .* is not empty/);
    const forced = cli(['synth', '--preset', 'tiny', '--out', out, '--force']);
    expect(forced.code).toBe(0);
    expect(forced.stdout.trim()).toBe(out);
    expect(forced.stderr).toMatch(/14\.3M parameters, 438 tensors, .* \(f32\)/);
  });

  it('synth: clear errors for a bad preset, dtype or seed', () => {
    const bad = cli(['synth', '--preset', 'giant', '--out', path.join(work, 'g')]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('preset "giant" is neither tiny, small, medium, vargpt-v1 nor the path of a config.json');
    const dtype = cli(['synth', '--preset', 'tiny', '--out', path.join(work, 'g'), '--dtype', 'f64']);
    expect(dtype.code).not.toBe(0);
    expect(dtype.stderr).toMatch(/Allowed choices are f32, bf16, f16/);
    const seed = cli(['synth', '--preset', 'tiny', '--out', path.join(work, 'g'), '--seed', '-1']);
    expect(seed.code).not.toBe(0);
    expect(existsSync(path.join(work, 'g'))).toBe(false);
  });

  it('synth --family vargpt-v1.1: writes the tiny layout; help lists families and presets; wrong input is a clear error', () => {
    const out = path.join(work, 'tiny-v11');
    const r = cli(['synth', '--family', 'vargpt-v1.1', '--preset', 'tiny', '--out', out, '--dtype', 'bf16', '--json']);
    expect(r.code).toBe(0);
    const result = JSON.parse(r.stdout) as { family: string; dir: string; parameters: number; tensors: number; dtype: string; files: string[] };
    expect(result).toMatchObject({ family: 'vargpt-v1.1', dir: out, tensors: 442, parameters: 32472971, dtype: 'bf16' });
    expect(result.files).toContain('tokenizer.json');
    expect(JSON.parse(readFileSync(path.join(out, 'config.json'), 'utf8')).model_type).toBe('vargpt_qwen2_vl');
    const help = cli(['synth', '--help']).stdout.replace(/\s+/g, ' ');
    expect(help).toContain('"vargpt-v1", "vargpt-v1.1"');
    expect(help).toContain('vargpt-v1.1: tiny, small, medium, full');
    const wrong = cli(['synth', '--family', 'vargpt-v1.1', '--preset', 'vargpt-v1', '--out', path.join(work, 'w')]);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain('preset "vargpt-v1" is not a vargpt-v1.1 preset (tiny, small, medium, full); "vargpt-v1" is a vargpt-v1 preset');
    const v1 = cli(['synth', '--preset', 'full', '--out', path.join(work, 'w')]);
    expect(v1.code).toBe(1);
    expect(v1.stderr).toContain('"full" is a vargpt-v1.1 preset (family: \'vargpt-v1.1\', --family vargpt-v1.1)');
    const family = cli(['synth', '--family', 'vargpt-v3', '--preset', 'tiny', '--out', path.join(work, 'w')]);
    expect(family.code).not.toBe(0);
    expect(family.stderr).toMatch(/Allowed choices are vargpt-v1, vargpt-v1\.1/);
    const depth = cli(['synth', '--family', 'vargpt-v1.1', '--preset', 'tiny', '--var-depth', '2', '--out', path.join(work, 'w')]);
    expect(depth.code).toBe(1);
    expect(depth.stderr).toContain('--var-depth applies to --family vargpt-v1 only');
    expect(existsSync(path.join(work, 'w'))).toBe(false);
  });

  it('ask: a missing image is a clear error', () => {
    const r = cli(['ask', path.join(work, 'missing.png'), 'what?']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('cannot read the image');
  });

  it('generate: uses the built-in demo model (one stderr line), draws a circle when asked, is seeded', async () => {
    const first = cli(['generate', 'draw a big red circle', '-o', 'a.png', '--seed', '1']);
    expect(first.code, first.stderr).toBe(0);
    const notice = first.stderr.split('\n').filter((l) => l.includes('no --model given'));
    expect(notice).toHaveLength(1);
    expect(notice[0]).toContain(path.join(repoRoot, 'models', 'vargpt-v1-demo'));
    expect(first.stdout.trim()).toBe(path.join(work, 'a.png'));
    // The demo folder has self_check.json: the model reads its drawing back ("what colour is the
    // shape?", "what shape is this?") and draws again, up to 4 times, until it reads as asked.
    expect(first.stderr).toMatch(/read back by the model as red, circle|no drawing of 4 read back as asked/);
    const second = cli(['generate', 'draw a big red circle', '-o', 'b.png', '--seed', '1', '--json']);
    expect(second.code).toBe(0);
    const result = JSON.parse(second.stdout) as { output: string; width: number; height: number; seed: number; tokens: number[]; selfCheck: SelfCheckReport };
    expect(result).toMatchObject({ output: path.join(work, 'b.png'), width: 64, height: 64, seed: candidateSeed(1, result.selfCheck.kept) });
    expect(result.selfCheck).toMatchObject({ candidates: 4 });
    expect(result.selfCheck.readings[result.selfCheck.kept]!.map((r) => r.wanted)).toEqual(['red', 'circle']);
    expect(readFileSync(path.join(work, 'a.png')).equals(readFileSync(path.join(work, 'b.png')))).toBe(true);
    // --candidates 1: one drawing, with the given seed, and no check; the kept drawing is that
    // one drawing when its seed is given.
    const plain = cli(['generate', 'draw a big red circle', '-o', 'c.png', '--seed', String(result.seed), '--candidates', '1', '--json']);
    expect(plain.code, plain.stderr).toBe(0);
    const plainResult = JSON.parse(plain.stdout) as { seed: number; selfCheck?: unknown };
    expect(plainResult.seed).toBe(result.seed);
    expect(plainResult.selfCheck).toBeUndefined();
    expect(readFileSync(path.join(work, 'c.png')).equals(readFileSync(path.join(work, 'a.png')))).toBe(true);
    const noCheck = cli(['generate', 'x', '--model', work, '--candidates', '2']);
    expect(noCheck.code).toBe(1);
    expect(noCheck.stderr).toContain('has no self_check.json');
    expect(cli(['generate', 'x', '--candidates', '0']).stderr).toContain('expected an integer >= 1');
    expect(cli(['generate', 'x', '--candidates', '65']).stderr).toContain('candidates must be an integer from 1 to 64');
    const drawn = await decodeImage(path.join(work, 'a.png'));
    const palette = (JSON.parse(readFileSync(path.join(repoRoot, 'training/demo/eval-set/eval-set.json'), 'utf8')) as { colours: Record<string, number[]> }).colours;
    // Measured over seeds 1-20: a red circle 16 times (seed 1 among them), an orange circle 4 times
    // (README, "The built-in demo model"), so another CPU's rounding may tip seed 1 to orange.
    const verdict = judgeDrawing(drawn.data, drawn.width, drawn.height, palette);
    expect(verdict.shape).toBe('circle');
    expect(['red', 'orange']).toContain(verdict.colour);
    const bad = cli(['generate', 'x', '-o', 'x.gif']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('cannot tell the image format');
  });

  it('ask: the built-in demo model answers about an image', () => {
    const r = cli(['ask', path.join(repoRoot, 'training/demo/eval-set/image-00.png'), 'what colour is the shape?']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('red\n');
  });

  withFixtures('ask: the fixture answer, as text and as JSON', () => {
    const u = readJson<{ generated_ids: number[]; generated_text: string }>(path.join(fixtureExpected, 'understanding.json'));
    const args = ['ask', path.join(fixtureExpected, 'input.png'), 'What is shown in this image?', '--model', fixtureModel, '--max-new-tokens', '8'];
    const text = cli(args);
    expect(text.code).toBe(0);
    expect(text.stdout).toBe(`${u.generated_text}\n`);
    expect(text.stderr).not.toContain('no --model given');
    const json = cli([...args, '--json']);
    const result = JSON.parse(json.stdout) as { text: string; tokens: number[]; stopReason: string; promptTokens: number };
    expect(result).toMatchObject({ text: u.generated_text, tokens: u.generated_ids, stopReason: 'length', promptTokens: 595 });
  });

  withFixtures('ask --model <VARGPT-v1.1 checkpoint>: the fixture tokens of the v1.1 understanding case', () => {
    const u = readJson<{ generated_ids: number[] }>(path.join(v11ExpectedDir, 'understanding.json'));
    const args = ['ask', path.join(v11ExpectedDir, 'input.png'), 'What is shown in this image?', '--model', v11ModelDir, '--max-new-tokens', '8', '--json'];
    const r = cli(args);
    expect(r.code).toBe(0);
    const result = JSON.parse(r.stdout) as { tokens: number[]; stopReason: string; promptTokens: number };
    expect(result).toMatchObject({ tokens: u.generated_ids, stopReason: 'length', promptTokens: 40 });
  });

  withFixtures('generate and edit --model <VARGPT-v1.1 checkpoint>: seeded 128x128 images with the fixture schedule, --json, bf16 caches', () => {
    const scales = '1,2,4,6,8';
    const out = (name: string) => path.join(work, name);
    const gen = cli(['generate', 'a butterfly on a flower', '--model', v11ModelDir, '--scales', scales, '--seed', '9', '-o', out('g1.png'), '--json']);
    expect(gen.code, gen.stderr).toBe(0);
    const g = JSON.parse(gen.stdout) as { output: string; width: number; height: number; seed: number; tokens: number[] };
    expect(g).toMatchObject({ output: out('g1.png'), width: 128, height: 128, seed: 9 });
    const again = cli(['generate', 'a butterfly on a flower', '--model', v11ModelDir, '--scales', scales, '--seed', '9', '-o', out('g2.png'), '--kv-cache', 'bf16']);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout.trim()).toBe(out('g2.png'));
    expect(readFileSync(out('g2.png')).length).toBeGreaterThan(0);
    const reduced = cli(['generate', 'a butterfly on a flower', '--model', v11ModelDir, '--scales', scales, '--seed', '9', '-o', out('g3.png'), '--weights', 'f32', '--generator-weights', 'q4']);
    expect(reduced.code, reduced.stderr).toBe(0);
    expect(readFileSync(out('g3.png')).length).toBeGreaterThan(0);
    expect(cli(['generate', 'x', '--model', v11ModelDir, '--generator-weights', 'q2']).stderr).toContain("argument 'q2' is invalid. Allowed choices are auto, f32, bf16, int8, q4");
    const image = path.join(v11ExpectedDir, 'input.png');
    const edit = cli(['edit', image, 'Make it look like a watercolor painting.', '--model', v11ModelDir, '--scales', '1x1,2x2,4x4,6x6,8x8', '--seed', '4', '-o', out('e.png'), '--json']);
    expect(edit.code, edit.stderr).toBe(0);
    const e = JSON.parse(edit.stdout) as { width: number; promptTokens: number };
    expect(e).toMatchObject({ width: 128, promptTokens: 42 });
    expect(cli(['edit', '/no/such.png', 'x', '--model', v11ModelDir]).stderr).toContain('cannot read the image /no/such.png');
    const bad = cli(['generate', 'x', '--model', v11ModelDir, '--scales', '2,1']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/scales\[1\] = \[1, 1\] is smaller than the scale before it/);
    expect(cli(['generate', 'x', '--scales', '2,a']).stderr).toContain('"a" is not N or HxW');
    expect(cli(['edit', image, 'make it blue', '--model', fixtureModel]).stderr).toContain('VARGPT v1 does not edit images');
  });

  withFixtures('chat: reads lines, attaches images, saves drawn images and prints their paths', () => {
    const input = ['hello', `/image ${path.join(fixtureExpected, 'input.png')}`, 'What is this?', '/image /no/such.png', '/draw a red fox', '/bogus', '/exit', 'never sent'].join('\n');
    const r = cli(['chat', '--model', fixtureModel, '--max-new-tokens', '4', '--out-dir', work], {}, input);
    expect(r.code).toBe(0);
    expect(r.stdout.match(/^vargpt> /gm)).toHaveLength(3);
    expect(r.stdout).toContain('(image attached:');
    expect(r.stderr).toContain('cannot read image "/no/such.png"');
    expect(r.stderr).toContain('unknown command /bogus');
    const saved = /\[image saved to (.+\.png)\]/.exec(r.stdout);
    expect(saved).not.toBeNull();
    expect(existsSync(saved![1]!)).toBe(true);
  });

  withFixtures('chat --json: one JSON object per turn on stdout (text, stopReason, image path), notices on stderr', () => {
    const input = ['hello', '/reset', '/draw a red fox', '/exit'].join('\n');
    const r = cli(['chat', '--model', fixtureModel, '--max-new-tokens', '4', '--out-dir', work, '--json'], {}, input);
    expect(r.code, r.stderr).toBe(0);
    const turns = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { text: string; stopReason: string; image: string | null; images: string[] });
    expect(turns).toHaveLength(2);
    expect(turns[0]).toMatchObject({ image: null, images: [] });
    expect(typeof turns[0]!.text).toBe('string');
    expect(turns[0]!.stopReason).toMatch(/^(length|eos)$/);
    expect(turns[1]!.stopReason).toBe('image');
    expect(turns[1]!.images).toEqual([turns[1]!.image]);
    expect(existsSync(turns[1]!.image!)).toBe(true);
    expect(r.stderr).toContain('(new conversation)');
  });

  it('chat --help lists the chat commands, /draw included', () => {
    const help = cli(['chat', '--help']).stdout;
    for (const c of ['/draw <text>', '/image <path>', '/reset', '/exit', '--json']) expect(help).toContain(c);
  });

  it('examples/quickstart.mjs (the README tour) runs', () => {
    const r = spawnSync(process.execPath, [path.join(repoRoot, 'examples/quickstart.mjs'), path.join(work, 'example')], { encoding: 'utf8', timeout: 300_000 });
    expect(r.stderr).not.toMatch(/Error/);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^generateImage -> .*blue-square\.png 64x64$/m);
    expect(r.stdout).toMatch(/^generateImageSelfChecked -> kept drawing [1-4] of [1-4], read as [a-z]+ [a-z]+$/m);
    expect(r.stdout).toMatch(/^ask -> "square" eos$/m);
    expect(r.stdout).toMatch(/^chat -> 1 image\(s\)$/m);
    // The drawn "red circle" is asked about: the answer is one of the world's colours (the demo's
    // VQ-VAE draws red toward orange, and the model says what it sees).
    expect(r.stdout).toMatch(/^chatStream -> "(red|green|blue|yellow|purple|orange)" eos$/m);
    expect(r.stdout).toContain('aborted -> AbortError');
    expect(r.stdout).toContain('VQ-VAE -> 1,4,9,16,36,64 64x64');
  });
});
