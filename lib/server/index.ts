// createServer(models, options): an OpenAI-compatible HTTP API over loaded models, as one
// (req, res) handler that node:http, Express and Fastify (reply.hijack()) can mount.
// Requests for one model run one at a time through lib/server/scheduler.ts, the single place a
// batching scheduler would replace.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';

import type { VargptModel } from '../model.js';
import { parseReadBackCheck } from '../self-check.js';
import type { ReadBackCheck } from '../self-check.js';
import { chatCompletions } from './chat.js';
import { RequestContext, outcomeOf, toHttpError } from './context.js';
import type { Services } from './context.js';
import { EventStream, HttpError, sendError, sendJson } from './http.js';
import { imageEdits, imageGenerations } from './images-api.js';
import { canDraw, canEdit, defaultSize } from './images.js';
import { Metrics } from './metrics.js';
import type { Outcome } from './metrics.js';
import { ModelScheduler } from './scheduler.js';

export interface ServerOptions {
  // Requests that may wait for a busy model (per model) before new ones get 429 (default 16).
  maxQueue?: number;
  // When set, every endpoint but /health needs `Authorization: Bearer <apiKey>`.
  apiKey?: string;
  // Longest a request may take, waiting included, before it is stopped with a 504 (default 600).
  timeoutS?: number;
  // Hosts whose http(s) image URLs the server fetches; others are refused (default: none).
  allowRemoteImages?: readonly string[];
  // Largest JSON body, data: URLs included (default 32 MiB).
  maxBodyBytes?: number;
  // Largest image, encoded (default 16 MiB) and in pixels (default 4096 x 4096).
  maxImageBytes?: number;
  maxImagePixels?: number;
  // Where the server reports internal errors (default: stderr).
  log?: (message: string) => void;
  // Per served model name, what to ask the model about its own drawings (a model folder's
  // self_check.json, from loadReadBackCheck): image generations for that model are self-checked,
  // up to `candidates` drawings per image (default 4; generateImageSelfChecked).
  selfChecks?: Readonly<Record<string, ReadBackCheck>>;
}

export interface ShutdownOptions {
  // How long in-flight requests may run on before they are stopped (default 30 000).
  graceMs?: number;
}

// The models served, by the name requests give in `model`.
export type ServedModels = Readonly<Record<string, VargptModel>> | ReadonlyMap<string, VargptModel>;

export interface VargptServer {
  (req: IncomingMessage, res: ServerResponse): void;
  // Refuses new requests (503), lets in-flight ones finish within the grace period, then stops
  // them. The models are not disposed.
  shutdown(options?: ShutdownOptions): Promise<void>;
  readonly draining: boolean;
  // Requests being answered now.
  readonly inFlight: number;
  // The Prometheus text of GET /metrics.
  metrics(): string;
}

type Handler = (req: IncomingMessage, res: ServerResponse, ctx: RequestContext, services: Services) => Promise<void>;

const ROUTES: Record<string, { method: string; handler: Handler }> = {
  '/v1/chat/completions': { method: 'POST', handler: chatCompletions },
  '/v1/images/generations': { method: 'POST', handler: imageGenerations },
  '/v1/images/edits': { method: 'POST', handler: imageEdits },
};

function positive(value: number | undefined, fallback: number, what: string, min = 1): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min) throw new TypeError(`createServer options.${what} must be a number >= ${min}, got ${String(value)}`);
  return value;
}

// The request's path, decoded, without trailing slashes ('/' when it cannot be read).
function pathOf(url: string | undefined): string {
  try {
    return decodeURIComponent(new URL(url ?? '/', 'http://localhost').pathname).replace(/\/+$/, '') || '/';
  } catch {
    return '/';
  }
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

export function createServer(models: ServedModels, options: ServerOptions = {}): VargptServer {
  const entries = models instanceof Map ? [...models.entries()] : Object.entries(models as Record<string, VargptModel>);
  if (entries.length === 0) throw new TypeError('createServer: give at least one model');
  const maxQueue = Math.floor(positive(options.maxQueue, 16, 'maxQueue', 0));
  const timeoutMs = positive(options.timeoutS, 600, 'timeoutS') * 1000;
  const log = options.log ?? ((message: string) => process.stderr.write(`vargpt serve: ${message}\n`));
  const keyDigest = options.apiKey === undefined ? null : digest(options.apiKey);
  if (options.apiKey !== undefined && (typeof options.apiKey !== 'string' || options.apiKey.length === 0)) throw new TypeError('createServer options.apiKey must be a non-empty string');
  const metrics = new Metrics();
  const schedulers = new Map<string, ModelScheduler>();
  for (const [name, model] of entries) schedulers.set(name, new ModelScheduler(name, model, maxQueue, metrics));
  const created = Math.floor(Date.now() / 1000);
  const selfChecks = new Map<string, ReadBackCheck>();
  for (const [name, check] of Object.entries(options.selfChecks ?? {})) {
    if (!schedulers.has(name)) throw new TypeError(`createServer options.selfChecks: no served model is named "${name}"`);
    selfChecks.set(name, parseReadBackCheck(check, `createServer options.selfChecks.${name}`));
  }

  const services: Services = {
    scheduler(name: unknown, param = 'model') {
      if (name === undefined || name === null) {
        if (schedulers.size === 1) {
          const [only] = schedulers.values() as IterableIterator<ModelScheduler>;
          if (only) return { scheduler: only, model: only.model, name: only.name };
        }
        throw new HttpError(400, `model is required (served: ${[...schedulers.keys()].join(', ')})`, 'invalid_request_error', param, 'missing_required_parameter');
      }
      if (typeof name !== 'string') throw new HttpError(400, 'model must be a string', 'invalid_request_error', param, 'invalid_value');
      const scheduler = schedulers.get(name);
      if (!scheduler) throw new HttpError(404, `the model "${name}" does not exist (served: ${[...schedulers.keys()].join(', ')})`, 'invalid_request_error', param, 'model_not_found');
      return { scheduler, model: scheduler.model, name };
    },
    generated: (model, tokens, images) => metrics.generated(model, tokens, images),
    selfCheck: (name) => selfChecks.get(name) ?? null,
    imageLimits: {
      maxImageBytes: Math.floor(positive(options.maxImageBytes, 16 * 2 ** 20, 'maxImageBytes')),
      maxImagePixels: Math.floor(positive(options.maxImagePixels, 4096 * 4096, 'maxImagePixels')),
      allowRemoteImages: (options.allowRemoteImages ?? []).map((h) => h.toLowerCase()),
      remoteTimeoutMs: 30_000,
    },
    maxBodyBytes: Math.floor(positive(options.maxBodyBytes, 32 * 2 ** 20, 'maxBodyBytes')),
    log,
  };

  let draining = false;
  const inFlight = new Set<RequestContext>();
  let settled: (() => void) | null = null;

  const modelList = () => ({
    object: 'list',
    data: [...schedulers.values()].map((s) => modelObject(s)),
  });
  const modelObject = (s: ModelScheduler) => {
    const [width, height] = canDraw(s.model) ? defaultSize(s.model) : [0, 0];
    return {
      id: s.name,
      object: 'model',
      created,
      owned_by: 'vargpt',
      family: s.model.family,
      capabilities: { chat: true, image_input: true, image_generation: canDraw(s.model), image_edits: canEdit(s.model) },
      default_image_size: canDraw(s.model) ? `${width}x${height}` : null,
    };
  };

  function authorized(req: IncomingMessage): boolean {
    if (!keyDigest) return true;
    const header = req.headers['authorization'];
    const given = typeof header === 'string' && /^Bearer /i.test(header) ? header.slice(7).trim() : '';
    // Both sides hashed first: equal lengths for timingSafeEqual, and nothing learned from timing.
    return timingSafeEqual(digest(given), keyDigest);
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    const path = pathOf(req.url);
    const route = ROUTES[path];
    const endpoint = route ? path : path.startsWith('/v1/models') ? '/v1/models' : path === '/health' || path === '/metrics' ? path : 'other';
    const ctx = new RequestContext();
    let outcome: Outcome = 'ok';
    const finish = () => {
      inFlight.delete(ctx);
      metrics.request(endpoint, outcome, (performance.now() - started) / 1000);
      if (inFlight.size === 0) settled?.();
    };
    inFlight.add(ctx);
    const timer = setTimeout(() => ctx.abort('timeout'), timeoutMs);
    res.once('close', () => {
      if (!res.writableFinished) ctx.abort('disconnect');
    });
    try {
      if (path === '/health') {
        if (req.method !== 'GET' && req.method !== 'HEAD') throw new HttpError(405, 'use GET', 'invalid_request_error', null, 'method_not_allowed');
        sendJson(res, draining ? 503 : 200, { status: draining ? 'draining' : 'ok', models: [...schedulers.values()].map((s) => ({ id: s.name, family: s.model.family, waiting: s.waiting, running: s.running })) });
        return;
      }
      if (draining) throw new HttpError(503, 'the server is shutting down', 'unavailable_error', null, 'shutting_down', { connection: 'close' });
      if (!authorized(req)) throw new HttpError(401, 'invalid or missing API key (send Authorization: Bearer <key>)', 'invalid_request_error', null, 'invalid_api_key', { 'www-authenticate': 'Bearer' });
      if (path === '/metrics' && req.method === 'GET') {
        const text = metrics.render([...schedulers.values()].map((s) => ({ model: s.name, waiting: s.waiting, running: s.running })));
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
        res.end(text);
        return;
      }
      if (path === '/v1/models' && req.method === 'GET') {
        sendJson(res, 200, modelList());
        return;
      }
      if (path.startsWith('/v1/models/') && req.method === 'GET') {
        const id = path.slice('/v1/models/'.length);
        const s = schedulers.get(id);
        if (!s) throw new HttpError(404, `the model "${id}" does not exist`, 'invalid_request_error', 'model', 'model_not_found');
        sendJson(res, 200, modelObject(s));
        return;
      }
      if (!route) {
        if (path === '/metrics' || path.startsWith('/v1/models')) throw new HttpError(405, 'use GET', 'invalid_request_error', null, 'method_not_allowed');
        throw new HttpError(404, `no endpoint ${req.method ?? ''} ${path}`, 'invalid_request_error', null, 'unknown_url');
      }
      if (req.method !== route.method) throw new HttpError(405, `use ${route.method}`, 'invalid_request_error', null, 'method_not_allowed', { allow: route.method });
      await route.handler(req, res, ctx, services);
    } catch (error) {
      const http = toHttpError(error, ctx, log);
      outcome = outcomeOf(http);
      if (res.headersSent) {
        // A stream already under way: the error as its last event.
        if (ctx.reason !== 'disconnect') new EventStream(res).send(http.body());
        res.end();
      } else if (ctx.reason !== 'disconnect') {
        sendError(res, http);
      } else {
        res.destroy();
      }
    } finally {
      clearTimeout(timer);
      finish();
    }
  }

  const server = ((req: IncomingMessage, res: ServerResponse) => {
    handle(req, res).catch((error: unknown) => {
      log(`request failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
      if (!res.headersSent) sendError(res, new HttpError(500, 'the server failed to complete the request', 'server_error', null, 'internal_error'));
      else res.end();
    });
  }) as VargptServer;

  Object.defineProperties(server, {
    draining: { get: () => draining },
    inFlight: { get: () => inFlight.size },
  });
  server.metrics = () => metrics.render([...schedulers.values()].map((s) => ({ model: s.name, waiting: s.waiting, running: s.running })));
  server.shutdown = async ({ graceMs = 30_000 }: ShutdownOptions = {}) => {
    draining = true;
    const idle = () =>
      new Promise<void>((resolve) => {
        if (inFlight.size === 0) resolve();
        else settled = resolve;
      });
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), graceMs);
    });
    const first = await Promise.race([idle().then(() => 'idle' as const), grace]);
    clearTimeout(timer);
    if (first === 'late') {
      for (const ctx of inFlight) ctx.abort('shutdown');
      await idle();
    }
  };
  return server;
}
