// Starts the HTTP server on 127.0.0.1 (port 0) over loaded models, with an openai client on it.
import { createServer as createHttpServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';

import OpenAI from 'openai';
import sharp from 'sharp';
import { afterAll, beforeAll } from 'vitest';

import { loadModel } from '../../lib/model.js';
import type { VargptModel } from '../../lib/model.js';
import { createServer } from '../../lib/server/index.js';
import type { ServerOptions, VargptServer } from '../../lib/server/index.js';
import { pattern } from './images.js';
import { blip3oModelDir, tinyModelDir, v11ModelDir } from './paths.js';

export interface Running {
  url: string;
  handler: VargptServer;
  http: Server;
  logs: string[];
  client(options?: { apiKey?: string }): OpenAI;
  close(): Promise<void>;
}

export async function startServer(models: Record<string, VargptModel>, options: ServerOptions = {}): Promise<Running> {
  const logs: string[] = [];
  const handler = createServer(models, { log: (m) => logs.push(m), ...options });
  const http = createHttpServer(handler);
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
  return {
    url,
    handler,
    http,
    logs,
    client: (o = {}) => new OpenAI({ apiKey: o.apiKey ?? 'none', baseURL: `${url}/v1`, maxRetries: 0, timeout: 120_000 }),
    close: () =>
      new Promise<void>((resolve) => {
        http.close(() => resolve());
        http.closeAllConnections();
      }),
  };
}

export async function postJson(url: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; headers: Headers; json: { error?: { message: string; type: string; param: string | null; code: string | null } } & Record<string, unknown> }> {
  const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await r.text();
  return { status: r.status, headers: r.headers, json: JSON.parse(text) as never };
}

export async function testPng(width = 64, height = 48): Promise<Buffer> {
  return sharp(Buffer.from(pattern(width, height)), { raw: { width, height, channels: 3 } }).png().toBuffer();
}

export async function pngSize(b64: string): Promise<{ width: number; height: number; format: string }> {
  const meta = await sharp(Buffer.from(b64, 'base64')).metadata();
  return { width: meta.width ?? 0, height: meta.height ?? 0, format: meta.format ?? '' };
}

export function dataUrl(png: Buffer): string {
  return `data:image/png;base64,${png.toString('base64')}`;
}

// The tiny fixture models by the names the server tests serve them under.
const FIXTURES = { v1: tinyModelDir, v11: v11ModelDir, b3: blip3oModelDir } as const;

export async function loadFixtureModels(
  names: ReadonlyArray<keyof typeof FIXTURES> = ['v1', 'v11', 'b3'],
  options: { maxBatch?: number } = {},
): Promise<Record<string, VargptModel>> {
  const out: Record<string, VargptModel> = {};
  for (const name of names) out[name] = await loadModel(FIXTURES[name], { device: 'cpu', ...options });
  return out;
}

export async function disposeAll(models: Record<string, VargptModel> | undefined): Promise<void> {
  for (const m of Object.values(models ?? {})) await m.dispose();
}

export interface FixtureServer {
  models: Record<string, VargptModel>;
  server: Running;
  client: OpenAI;
}

// Loads the fixture models and starts a server on them before the file's tests, and stops both after.
export function useFixtureServer(names?: ReadonlyArray<keyof typeof FIXTURES>, options: ServerOptions = {}): FixtureServer {
  const fx = {} as FixtureServer;
  beforeAll(async () => {
    fx.models = await loadFixtureModels(names);
    fx.server = await startServer(fx.models, options);
    fx.client = fx.server.client();
  });
  afterAll(async () => {
    await fx.server?.close();
    await disposeAll(fx.models);
  });
  return fx;
}
