// A bounded loopback load test (autocannon): more concurrent clients than the queue holds, in
// rounds. Every request is answered 200 or refused 429, none lost or hung, memory stays flat and
// the server keeps answering.
import autocannon from 'autocannon';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { VargptModel } from '../../lib/model.js';
import { disposeAll, loadFixtureModels, startServer } from '../helpers/server.js';
import type { Running } from '../helpers/server.js';

let models: Record<string, VargptModel>;
let server: Running;

beforeAll(async () => {
  models = await loadFixtureModels(['v1', 'b3']);
  server = await startServer(models, { maxQueue: 4, timeoutS: 60 });
});

afterAll(async () => {
  await server?.close();
  await disposeAll(models);
});

const ROUNDS = 4;
const AMOUNT = 120;

describe('load', () => {
  it(`${ROUNDS} rounds of ${AMOUNT} requests from 24 connections, queue limit 4: all answered 200 or 429`, async () => {
    const headers = { 'content-type': 'application/json' };
    const rss: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const result = await autocannon({
        url: server.url,
        connections: 24,
        amount: AMOUNT,
        timeout: 60,
        requests: [
          { method: 'POST', path: '/v1/chat/completions', headers, body: JSON.stringify({ model: 'v1', messages: [{ role: 'user', content: `round ${round}` }], max_tokens: 4 }) },
          { method: 'POST', path: '/v1/chat/completions', headers, body: JSON.stringify({ model: 'v1', messages: [{ role: 'user', content: 'stream' }], max_tokens: 4, stream: true }) },
          { method: 'POST', path: '/v1/images/generations', headers, body: JSON.stringify({ model: 'b3', prompt: 'load', steps: 1, flow_steps: 1 }) },
        ],
      });
      const codes = Object.fromEntries(Object.entries(result.statusCodeStats ?? {}).map(([code, s]) => [code, s.count ?? 0]));
      expect(Object.keys(codes).every((c) => c === '200' || c === '429'), JSON.stringify(codes)).toBe(true);
      expect((codes['200'] ?? 0) + (codes['429'] ?? 0)).toBe(AMOUNT);
      expect(codes['200']).toBeGreaterThan(0);
      expect(codes['429']).toBeGreaterThan(0);
      expect(result.errors).toBe(0);
      expect(result.timeouts).toBe(0);
      expect(server.handler.inFlight).toBe(0);
      rss.push(process.memoryUsage().rss);
    }
    // Flat: the later rounds grow the process by less than 64 MiB.
    expect((rss[ROUNDS - 1] ?? 0) - (rss[1] ?? 0)).toBeLessThan(64 * 2 ** 20);
    expect((await fetch(`${server.url}/health`)).status).toBe(200);
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metrics).toMatch(/vargpt_requests_total\{endpoint="\/v1\/chat\/completions",outcome="rejected"\} [1-9]/);
    expect(metrics).toMatch(/^vargpt_queue_depth\{model="v1"\} 0$/m);
  });
});
