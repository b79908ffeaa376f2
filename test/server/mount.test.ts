// The handler mounted in Express (under a path, behind express.json() or not) and in Fastify
// (reply.hijack(), body parsing left to the handler), driven by the openai client.
import type { AddressInfo } from 'node:net';

import express from 'express';
import Fastify from 'fastify';
import OpenAI, { toFile } from 'openai';
import { describe, expect, it } from 'vitest';

import { createServer } from '../../lib/server/index.js';
import { testPng, useFixtureServer } from '../helpers/server.js';

const fx = useFixtureServer(['v1', 'b3']);

async function exercise(baseURL: string): Promise<void> {
  const client = new OpenAI({ apiKey: 'none', baseURL, maxRetries: 0 });
  expect((await client.models.list()).data.map((m) => m.id)).toEqual(['v1', 'b3']);
  const r = await client.chat.completions.create({ model: 'v1', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 });
  expect(r.usage?.completion_tokens).toBe(2);
  let text = '';
  for await (const chunk of await client.chat.completions.create({ model: 'v1', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2, stream: true })) text += chunk.choices[0]?.delta.content ?? '';
  expect(text).toBe(r.choices[0]?.message.content);
  const edit = await client.images.edit({ model: 'b3', image: await toFile(await testPng(32, 32), 'a.png'), prompt: 'x', steps: 1, flow_steps: 1 } as OpenAI.ImageEditParamsNonStreaming);
  expect(edit.data).toHaveLength(1);
  const bad = await client.chat.completions.create({ model: 'v1', messages: [] }).catch((e: unknown) => e);
  expect(bad).toMatchObject({ status: 400, param: 'messages' });
}

describe('mounting the handler', () => {
  it('in Express, under a path, with or without express.json() before it', async () => {
    const handler = createServer(fx.models);
    const app = express();
    app.use('/plain', handler);
    app.use('/parsed', express.json({ limit: '32mb' }), handler);
    const server = app.listen(0, '127.0.0.1');
    await new Promise<void>((resolve) => server.once('listening', () => resolve()));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      await exercise(`${url}/plain/v1`);
      await exercise(`${url}/parsed/v1`);
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it('in Fastify, with reply.hijack() and the body left unparsed', async () => {
    const handler = createServer(fx.models);
    const app = Fastify();
    app.removeAllContentTypeParsers();
    app.addContentTypeParser('*', (_request, _payload, done) => done(null));
    app.all('/*', (request, reply) => {
      reply.hijack();
      handler(request.raw, reply.raw);
    });
    await app.listen({ port: 0, host: '127.0.0.1' });
    try {
      await exercise(`http://127.0.0.1:${(app.server.address() as AddressInfo).port}/v1`);
    } finally {
      await app.close();
    }
  });
});
