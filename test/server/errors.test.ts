// Every error class of the server, as OpenAI error objects: 400 (malformed JSON, bad parameters,
// remote images), 401, 404, 405, 413, 429 with Retry-After, 504 on timeout; a client that
// disconnects stops its work; graceful shutdown; no input crashes the process; /metrics.
import { createServer as createHttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';

import OpenAI, { toFile } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { VargptModel } from '../../lib/model.js';
import { pngWithHeader } from '../helpers/images.js';
import { dataUrl, disposeAll, loadFixtureModels, postJson, startServer, testPng } from '../helpers/server.js';
import type { Running } from '../helpers/server.js';

let models: Record<string, VargptModel>;
let server: Running;
const opened: Running[] = [];

// A BLIP3-o drawing of about ten seconds on the tiny model: work to interrupt.
const SLOW = { model: 'b3', prompt: 'slow', steps: 1000, flow_steps: 2 };
const QUICK = { model: 'v1', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 };

async function another(options: Parameters<typeof startServer>[1]): Promise<Running> {
  const s = await startServer(models, options);
  opened.push(s);
  return s;
}

beforeAll(async () => {
  models = await loadFixtureModels();
  server = await another({});
});

afterAll(async () => {
  for (const s of opened) await s.close();
  await disposeAll(models);
});

function expectError(r: { status: number; json: Awaited<ReturnType<typeof postJson>>['json'] }, status: number, param?: string | null, code?: string) {
  expect(r.status).toBe(status);
  expect(r.json.error).toBeDefined();
  expect(typeof r.json.error?.message).toBe('string');
  expect(typeof r.json.error?.type).toBe('string');
  if (param !== undefined) expect(r.json.error?.param).toBe(param);
  if (code !== undefined) expect(r.json.error?.code).toBe(code);
}

describe('server errors', () => {
  it('400 for malformed JSON and bad parameters, naming the parameter', async () => {
    const url = `${server.url}/v1/chat/completions`;
    expectError(await postJson(url, '{"model": "v1", '), 400, null, 'invalid_json');
    expectError(await postJson(url, '[1, 2]'), 400, null, 'invalid_json');
    expectError(await postJson(url, { model: 'v1' }), 400, 'messages', 'missing_required_parameter');
    expectError(await postJson(url, { model: 'v1', messages: [] }), 400, 'messages');
    expectError(await postJson(url, { model: 'v1', messages: [{ role: 'tool', content: 'x' }] }), 400, 'messages[0].role');
    expectError(await postJson(url, { model: 'v1', messages: [{ role: 'user', content: [{ type: 'input_audio' }] }] }), 400, 'messages[0].content[0].type');
    expectError(await postJson(url, { model: 'v1', messages: [{ role: 'user', content: 5 }] }), 400, 'messages[0].content');
    expectError(await postJson(url, { ...QUICK, temperature: 3 }), 400, 'temperature');
    expectError(await postJson(url, { ...QUICK, top_p: 0 }), 400, 'top_p');
    expectError(await postJson(url, { ...QUICK, max_tokens: 0 }), 400, 'max_tokens');
    expectError(await postJson(url, { ...QUICK, seed: -1 }), 400, 'seed');
    expectError(await postJson(url, { ...QUICK, stop: ['a', 'b', 'c', 'd', 'e'] }), 400, 'stop');
    expectError(await postJson(url, { ...QUICK, n: 9 }), 400, 'n');
    expectError(await postJson(url, { ...QUICK, n: 0 }), 400, 'n');
    expectError(await postJson(url, { ...QUICK, stream: 'yes' }), 400, 'stream');
    expectError(await postJson(url, { ...QUICK, model: 7 }), 400, 'model');
    // The model's own checks become 400s too: no image in a system message.
    const png = await testPng(32, 32);
    const sys = await postJson(url, { model: 'v11', messages: [{ role: 'system', content: [{ type: 'image_url', image_url: { url: dataUrl(png) } }] }, { role: 'user', content: 'x' }] });
    expectError(sys, 400);
    expect(sys.json.error?.message).toContain('system message cannot hold an image');
    expectError(await postJson(url, { model: 'v11', messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA' } }] }] }), 400, 'messages[0].content[0].image_url.url', 'invalid_image');
    expectError(await postJson(`${server.url}/v1/images/generations`, { model: 'b3' }), 400, 'prompt');
    expectError(await postJson(`${server.url}/v1/images/generations`, { model: 'b3', prompt: 'x', n: 11 }), 400, 'n');
    expectError(await postJson(`${server.url}/v1/images/generations`, { model: 'b3', prompt: 'x', steps: 0 }), 400, 'steps');
    expectError(await postJson(`${server.url}/v1/images/generations`, { model: 'v1', prompt: 'x', steps: 2 }), 400);
    // The same through the openai client: a BadRequestError carrying the fields.
    const error = await server.client().chat.completions.create({ model: 'v1', messages: [{ role: 'user', content: 'x' }], temperature: 5 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    expect(error).toMatchObject({ status: 400, param: 'temperature', type: 'invalid_request_error' });
  });

  it('404 for an unknown model or path, 405 for a wrong method', async () => {
    const error = await server.client().chat.completions.create({ model: 'nope', messages: [{ role: 'user', content: 'x' }] }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.NotFoundError);
    expect(error).toMatchObject({ code: 'model_not_found', param: 'model' });
    expect((await fetch(`${server.url}/v1/models/nope`)).status).toBe(404);
    expect((await fetch(`${server.url}/v1/nothing`)).status).toBe(404);
    expect((await fetch(`${server.url}/v1/models/%E0%A4%A`)).status).toBe(404);
    expect((await fetch(`${server.url}/v1/models/v1/`)).status).toBe(200);
    const get = await fetch(`${server.url}/v1/chat/completions`);
    expect(get.status).toBe(405);
    expect(get.headers.get('allow')).toBe('POST');
    expect((await fetch(`${server.url}/v1/models`, { method: 'DELETE' })).status).toBe(405);
  });

  it('remote image URLs are refused unless their host is allowed', async () => {
    const png = await testPng(56, 56);
    const images = createHttpServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'image/png' });
      res.end(png);
    });
    await new Promise<void>((resolve) => images.listen(0, '127.0.0.1', resolve));
    const imageUrl = `http://127.0.0.1:${(images.address() as AddressInfo).port}/cat.png`;
    try {
      const body = (url: string) => ({ model: 'v11', max_tokens: 1, messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url } }, { type: 'text', text: 'what?' }] }] });
      expectError(await postJson(`${server.url}/v1/chat/completions`, body(imageUrl)), 400, 'messages[0].content[0].image_url.url', 'remote_image_refused');
      expectError(await postJson(`${server.url}/v1/chat/completions`, body('file:///etc/passwd')), 400, 'messages[0].content[0].image_url.url', 'invalid_image_url');
      const allowing = await another({ allowRemoteImages: ['127.0.0.1'] });
      const remote = await postJson(`${allowing.url}/v1/chat/completions`, body(imageUrl));
      const inline = await postJson(`${allowing.url}/v1/chat/completions`, body(dataUrl(png)));
      expect(remote.status).toBe(200);
      expect(remote.json['usage']).toEqual(inline.json['usage']);
    } finally {
      await new Promise<void>((resolve) => images.close(() => resolve()));
    }
  });

  it('413 for a body or an image over the limits', async () => {
    const small = await another({ maxBodyBytes: 16384, maxImagePixels: 1000, maxImageBytes: 8000 });
    expectError(await postJson(`${small.url}/v1/chat/completions`, { ...QUICK, messages: [{ role: 'user', content: 'x'.repeat(20000) }] }), 413, null, 'payload_too_large');
    // 40 x 40 pixels: under the byte limits, over the pixel limit.
    const pixels = await postJson(`${small.url}/v1/chat/completions`, { model: 'v11', messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: dataUrl(await testPng(40, 40)) } }] }] });
    expectError(pixels, 413, 'messages[0].content[0].image_url.url', 'payload_too_large');
    // A header claiming 100000 x 100000 pixels: refused before decoding.
    const huge = await postJson(`${server.url}/v1/chat/completions`, { model: 'v11', messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: dataUrl(pngWithHeader(100000, 100000)) } }] }] });
    expectError(huge, 413);
    const edit = await small.client().images.edit({ model: 'v11', image: await toFile(await testPng(200, 200), 'big.png'), prompt: 'x' }).catch((e: unknown) => e);
    expect(edit).toMatchObject({ status: 413, code: 'payload_too_large' });
  });

  it('an API key is required when set (401), compared as a hash; /health needs none', async () => {
    const locked = await another({ apiKey: 'sesame' });
    const wrong = await locked.client({ apiKey: 'open' }).models.list().catch((e: unknown) => e);
    expect(wrong).toBeInstanceOf(OpenAI.AuthenticationError);
    expect(wrong).toMatchObject({ code: 'invalid_api_key' });
    expect((await fetch(`${locked.url}/v1/models`)).status).toBe(401);
    expect((await fetch(`${locked.url}/metrics`)).status).toBe(401);
    expect((await fetch(`${locked.url}/health`)).status).toBe(200);
    const ok = await locked.client({ apiKey: 'sesame' }).chat.completions.create({ model: 'v1', messages: [{ role: 'user', content: 'x' }], max_tokens: 1 });
    expect(ok.choices[0]?.finish_reason).toBe('length');
  });

  it('a full queue answers 429 with Retry-After; a request past its timeout is stopped with 504 and the next one runs', async () => {
    // The timeout counts from a request's arrival, queue wait included: the second request comes
    // late enough to have time left to run once the first is stopped, even on a slow
    // (sanitizer) build.
    // A model that runs one request at a time, so that the second request waits in the line.
    const one = await loadFixtureModels(['b3'], { maxBatch: 1 });
    const tight = await startServer(one, { maxQueue: 1, timeoutS: 2 });
    const started = Date.now();
    const slow = postJson(`${tight.url}/v1/images/generations`, SLOW);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const waiting = postJson(`${tight.url}/v1/chat/completions`, { ...QUICK, model: 'b3' });
    await new Promise((resolve) => setTimeout(resolve, 50));
    const busy = await postJson(`${tight.url}/v1/chat/completions`, { ...QUICK, model: 'b3' });
    expectError(busy, 429, null, 'queue_full');
    expect(Number(busy.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expectError(await slow, 504, null, 'timeout');
    expect((await waiting).status).toBe(200);
    expect(Date.now() - started).toBeLessThan(8000);
    // The model is free again at once.
    expect((await postJson(`${tight.url}/v1/chat/completions`, { ...QUICK, model: 'b3' })).status).toBe(200);
    await tight.close();
    await disposeAll(one);
  });

  it('a client that disconnects stops its work', async () => {
    const controller = new AbortController();
    const slow = fetch(`${server.url}/v1/images/generations`, { method: 'POST', body: JSON.stringify(SLOW), signal: controller.signal }).catch((e: unknown) => e);
    await new Promise((resolve) => setTimeout(resolve, 200));
    controller.abort();
    expect(await slow).toBeInstanceOf(Error);
    const before = Date.now();
    const next = await postJson(`${server.url}/v1/chat/completions`, { ...QUICK, model: 'b3' });
    expect(next.status).toBe(200);
    expect(Date.now() - before).toBeLessThan(3000);
    // A stream left half way is stopped as well.
    const stream = await server.client().images.generate({ ...SLOW, stream: true } as unknown as OpenAI.ImageGenerateParamsStreaming);
    for await (const event of stream) {
      expect(event.type).toBe('image_generation.partial_image');
      break;
    }
    const after = Date.now();
    expect((await postJson(`${server.url}/v1/chat/completions`, { ...QUICK, model: 'b3' })).status).toBe(200);
    expect(Date.now() - after).toBeLessThan(3000);
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metrics).toMatch(/vargpt_requests_total\{endpoint="\/v1\/images\/generations",outcome="cancelled"\} [1-9]/);
  });

  it('no input crashes the process', async () => {
    const url = `${server.url}/v1/chat/completions`;
    const bodies: unknown[] = [
      '',
      'null',
      '"text"',
      '\u0000\u0001\u0002',
      '{"model":"v1","messages":' + '['.repeat(5000) + ']'.repeat(5000) + '}',
      { model: 'v1', messages: [null] },
      { model: 'v1', messages: [{ role: 'user', content: [null] }] },
      { model: 'v1', messages: [{ role: 'user', content: [{ type: 'text', text: 5 }] }] },
      { model: 'v1', messages: [{ role: 'user', content: [{ type: 'image_url', image_url: null }] }] },
      { model: 'v1', messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'data:,' } }] }] },
      { model: 'v1', messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'data:image/png;base64,' + 'A'.repeat(100) } }] }] },
      { model: 'v1', messages: [{ role: 'user', content: 'x' }], image: 'big' },
      { model: 'v1', messages: [{ role: 'user', content: 'x' }], force_image: true, image: { cfg: -1 } },
      { model: 'v1', messages: [{ role: 'user', content: 'x' }], stream_options: 5, max_tokens: 1 },
      { model: 'v1', messages: [{ role: 'user', content: 'x'.repeat(100000) }] },
      { model: 'v1', messages: [{ role: 'user', content: 'x' }], max_tokens: 1e308 },
      { model: 'v1', messages: [{ role: 'user', content: '<image>' }], max_tokens: 1 },
      { model: '__proto__', messages: [{ role: 'user', content: 'x' }] },
      { model: 'constructor', messages: [{ role: 'constructor', content: 'x' }] },
    ];
    for (const body of bodies) {
      const r = await fetch(url, { method: 'POST', body: typeof body === 'string' ? body : JSON.stringify(body), headers: { 'content-type': 'application/json' } });
      expect(r.status, String(typeof body === 'string' ? body.slice(0, 40) : JSON.stringify(body).slice(0, 80))).toBeGreaterThanOrEqual(200);
      expect(r.status).toBeLessThan(500);
      await r.text();
    }
    const multipart = await fetch(`${server.url}/v1/images/edits`, { method: 'POST', headers: { 'content-type': 'multipart/form-data; boundary=x' }, body: '--x\r\nbroken' });
    expect(multipart.status).toBe(400);
    const noBoundary = await fetch(`${server.url}/v1/images/edits`, { method: 'POST', headers: { 'content-type': 'multipart/form-data' }, body: 'x' });
    expect(noBoundary.status).toBe(400);
    expect((await fetch(`${server.url}/health`)).status).toBe(200);
    expect(server.logs.filter((l) => l.includes('internal error'))).toEqual([]);
  });

  it('serves Prometheus metrics: queue depth, requests by outcome, tokens and images per second, latency histograms', async () => {
    await postJson(`${server.url}/v1/chat/completions`, QUICK);
    await postJson(`${server.url}/v1/images/generations`, { model: 'b3', prompt: 'x', steps: 1, flow_steps: 1 });
    const r = await fetch(`${server.url}/metrics`);
    expect(r.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await r.text();
    for (const name of ['vargpt_queue_depth', 'vargpt_requests_running', 'vargpt_requests_total', 'vargpt_generated_tokens_total', 'vargpt_tokens_per_second', 'vargpt_generated_images_total', 'vargpt_images_per_second']) {
      expect(text).toContain(`# TYPE ${name} `);
    }
    expect(text).toMatch(/^vargpt_queue_depth\{model="v1"\} 0$/m);
    expect(text).toMatch(/^vargpt_requests_total\{endpoint="\/v1\/chat\/completions",outcome="ok"\} [1-9]/m);
    expect(text).toMatch(/^vargpt_requests_total\{endpoint="\/v1\/chat\/completions",outcome="client_error"\} [1-9]/m);
    expect(text).toMatch(/^vargpt_generated_images_total\{model="b3"\} [1-9]/m);
    expect(text).toMatch(/^vargpt_request_duration_seconds_bucket\{endpoint="\/v1\/chat\/completions",outcome="ok",le="\+Inf"\} [1-9]/m);
    expect(text).toMatch(/^vargpt_queue_wait_seconds_count\{model="v1"\} [1-9]/m);
  });

  it('shutdown: in-flight requests finish, new ones get 503; past the grace period they are stopped', async () => {
    const graceful = await another({});
    const inFlight = postJson(`${graceful.url}/v1/images/generations`, { ...SLOW, steps: 60 });
    await new Promise((resolve) => setTimeout(resolve, 100));
    const done = graceful.handler.shutdown({ graceMs: 20_000 });
    expect(graceful.handler.draining).toBe(true);
    expectError(await postJson(`${graceful.url}/v1/chat/completions`, QUICK), 503, null, 'shutting_down');
    expect((await fetch(`${graceful.url}/health`)).status).toBe(503);
    expect((await inFlight).status).toBe(200);
    await done;
    expect(graceful.handler.inFlight).toBe(0);
    const hurried = await another({});
    const cut = postJson(`${hurried.url}/v1/images/generations`, SLOW);
    await new Promise((resolve) => setTimeout(resolve, 100));
    const t = Date.now();
    await hurried.handler.shutdown({ graceMs: 200 });
    expect(Date.now() - t).toBeLessThan(3000);
    expectError(await cut, 503, null, 'shutting_down');
  });
});
