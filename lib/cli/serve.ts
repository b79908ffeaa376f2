// `vargpt serve`: loads the models and serves the OpenAI-compatible API (lib/server) on node:http
// until SIGTERM or Ctrl-C, which stop new requests and let in-flight ones finish within the grace
// period.
import { createServer as createHttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';

import { InputError } from '../errors.js';
import type { Device, VargptModel, WeightsPrecision } from '../model.js';
import { loadModel } from '../model.js';
import { loadReadBackCheck } from '../self-check.js';
import type { ReadBackCheck } from '../self-check.js';
import { createServer } from '../server/index.js';
import type { Io } from './commands.js';
import { weightsFor } from './commands.js';
import { defaultModelNotice, requireDefaultModel } from './default-model.js';

export interface ServeCommandOptions {
  model: string[];
  device?: Device;
  kvCache?: 'f32' | 'bf16';
  weights?: WeightsPrecision;
  generatorWeights?: WeightsPrecision;
  mmap?: boolean;
  host: string;
  port: number;
  maxQueue: number;
  maxBatch: number;
  apiKey?: string;
  timeoutS: number;
  graceS: number;
  allowRemoteImages?: string[];
}

// "NAME=DIR" or "DIR" (named by the folder's basename).
export function parseModelSpecs(specs: readonly string[]): Array<{ name: string; dir: string }> {
  const out: Array<{ name: string; dir: string }> = [];
  for (const spec of specs) {
    const eq = spec.indexOf('=');
    const named = eq > 0 && !spec.slice(0, eq).includes(path.sep);
    const dir = named ? spec.slice(eq + 1) : spec;
    const name = named ? spec.slice(0, eq) : path.basename(path.resolve(dir));
    if (!dir) throw new InputError(`--model ${spec}: no folder given`);
    if (out.some((m) => m.name === name)) throw new InputError(`--model: two models are named "${name}"; name them with NAME=DIR`);
    out.push({ name, dir });
  }
  return out;
}

export async function serveCommand(options: ServeCommandOptions, io: Io): Promise<void> {
  let specs = parseModelSpecs(options.model);
  if (specs.length === 0) {
    const dir = await requireDefaultModel();
    io.err(defaultModelNotice(dir, true));
    specs = [{ name: path.basename(dir), dir }];
  }
  const apiKey = options.apiKey ?? process.env['VARGPT_API_KEY'];
  const models = new Map<string, VargptModel>();
  try {
    for (const { name, dir } of specs) {
      io.err(`vargpt serve: loading ${name} from ${dir}\n`);
      models.set(name, await loadModel(dir, { device: options.device ?? 'auto', kvCache: options.kvCache, weights: weightsFor(options), mmap: options.mmap, maxBatch: options.maxBatch, signal: io.signal }));
    }
    const selfChecks: Record<string, ReadBackCheck> = {};
    for (const { name, dir } of specs) {
      const check = await loadReadBackCheck(dir);
      if (check) selfChecks[name] = check;
    }
    const handler = createServer(models, {
      selfChecks,
      maxQueue: options.maxQueue,
      apiKey: apiKey || undefined,
      timeoutS: options.timeoutS,
      allowRemoteImages: options.allowRemoteImages,
      log: (message) => io.err(`vargpt serve: ${message}\n`),
    });
    const server = createHttpServer(handler);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port, options.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const address = server.address() as AddressInfo;
    const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    io.err(`vargpt serve: listening on http://${host}:${address.port} (models: ${[...models.keys()].join(', ')}${apiKey ? '; API key required' : ''})\n`);
    if (options.host !== '127.0.0.1' && options.host !== 'localhost' && options.host !== '::1' && !apiKey) {
      io.err('vargpt serve: warning: listening beyond loopback without --api-key\n');
    }
    await new Promise<void>((resolve) => {
      const stop = () => resolve();
      process.once('SIGTERM', stop);
      if (io.signal.aborted) resolve();
      io.signal.addEventListener('abort', stop, { once: true });
    });
    io.err(`vargpt serve: shutting down (in-flight requests have ${options.graceS} s)\n`);
    await handler.shutdown({ graceMs: options.graceS * 1000 });
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeIdleConnections();
    });
    io.err('vargpt serve: stopped\n');
  } finally {
    for (const model of models.values()) await model.dispose();
  }
}
