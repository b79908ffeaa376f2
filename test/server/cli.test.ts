// `vargpt serve` as users run it: node dist/cli/main.js serve, on 127.0.0.1 and a free port,
// driven by the openai client, stopped by SIGTERM.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import path from 'node:path';

import OpenAI from 'openai';
import { beforeAll, describe, expect, it } from 'vitest';

import { repoRoot } from '../helpers/fixtures.js';
import { blip3oModelDir, tinyModelDir } from '../helpers/paths.js';

const main = path.join(repoRoot, 'dist/cli/main.js');

beforeAll(() => {
  execFileSync(process.execPath, [path.join(repoRoot, 'node_modules/typescript/bin/tsc'), '-p', path.join(repoRoot, 'tsconfig.json')], { stdio: 'inherit' });
});

describe('vargpt serve', () => {
  it('serves several named models, requires the API key, and shuts down cleanly on SIGTERM', async () => {
    const child = spawn(process.execPath, [main, 'serve', '--model', `tiny=${tinyModelDir}`, '--model', blip3oModelDir, '--port', '0', '--api-key', 'k3y', '--device', 'cpu'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const url = await new Promise<string>((resolve, reject) => {
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
        const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(stderr);
        if (m?.[1]) resolve(m[1]);
      });
      void exited.then(() => reject(new Error(`serve exited: ${stderr}`)));
    });
    try {
      expect(stderr).toContain('models: tiny, model; API key required');
      const client = new OpenAI({ apiKey: 'k3y', baseURL: `${url}/v1`, maxRetries: 0 });
      expect((await client.models.list()).data.map((m) => m.id)).toEqual(['tiny', 'model']);
      const reply = await client.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'hi' }], max_tokens: 3 });
      expect(reply.usage?.completion_tokens).toBe(3);
      const denied = await new OpenAI({ apiKey: 'nope', baseURL: `${url}/v1`, maxRetries: 0 }).models.list().catch((e: unknown) => e);
      expect(denied).toBeInstanceOf(OpenAI.AuthenticationError);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
    expect(stderr).toContain('shutting down');
    expect(stderr).toContain('vargpt serve: stopped');
  });

  it('refuses two models of the same name and shows the options in --help', () => {
    const twice = spawnSync(process.execPath, [main, 'serve', '--model', tinyModelDir, '--model', blip3oModelDir, '--port', '0'], { encoding: 'utf8', timeout: 60_000 });
    expect(twice.status).toBe(1);
    expect(twice.stderr).toContain('two models are named "model"; name them with NAME=DIR');
    const help = spawnSync(process.execPath, [main, 'serve', '--help'], { encoding: 'utf8' }).stdout;
    for (const option of ['--model', '--host', '--port', '--max-queue', '--api-key', '--timeout-s', '--allow-remote-images', '--grace-s']) expect(help).toContain(option);
  });
});
