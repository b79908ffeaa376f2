// ModelScheduler alone: up to model.maxBatch requests at a time in arrival order, a bounded waiting
// line (429 with Retry-After past it), and a waiting request whose signal aborts leaves the line at once.
import { describe, expect, it } from 'vitest';

import type { VargptModel } from '../../lib/model.js';
import { HttpError } from '../../lib/server/http.js';
import { Metrics } from '../../lib/server/metrics.js';
import { ModelScheduler } from '../../lib/server/scheduler.js';

function gate(): { wait: Promise<void>; open: () => void } {
  let open = () => undefined as void;
  const wait = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { wait, open };
}

describe('ModelScheduler', () => {
  it('runs one request at a time, in order, and refuses past the waiting limit', async () => {
    const scheduler = new ModelScheduler('m', { maxBatch: 1 } as VargptModel, 2, new Metrics());
    const order: string[] = [];
    const first = gate();
    const signal = new AbortController().signal;
    const a = scheduler.submit(signal, async () => {
      order.push('a');
      await first.wait;
      return 'a';
    });
    const b = scheduler.submit(signal, async () => {
      order.push('b');
      return 'b';
    });
    const c = scheduler.submit(signal, async () => {
      order.push('c');
      return 'c';
    });
    expect(scheduler.running).toBe(1);
    expect(scheduler.waiting).toBe(2);
    const refused = await scheduler.submit(signal, async () => 'd').catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(HttpError);
    expect(refused).toMatchObject({ status: 429, code: 'queue_full' });
    expect(Number((refused as HttpError).headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(order).toEqual(['a']);
    first.open();
    expect(await Promise.all([a, b, c])).toEqual(['a', 'b', 'c']);
    expect(order).toEqual(['a', 'b', 'c']);
    expect(scheduler.running + scheduler.waiting).toBe(0);
  });

  it('a waiting request that aborts leaves the line without running; a failing task frees the model', async () => {
    const scheduler = new ModelScheduler('m', { maxBatch: 1 } as VargptModel, 4, new Metrics());
    const first = gate();
    const running = scheduler.submit(new AbortController().signal, async () => {
      await first.wait;
      throw new Error('boom');
    });
    const controller = new AbortController();
    let ran = false;
    const waiting = scheduler.submit(controller.signal, async () => {
      ran = true;
    });
    controller.abort(new Error('gone'));
    await expect(waiting).rejects.toThrow('gone');
    expect(scheduler.waiting).toBe(0);
    first.open();
    await expect(running).rejects.toThrow('boom');
    expect(ran).toBe(false);
    expect(await scheduler.submit(new AbortController().signal, async () => 'next')).toBe('next');
  });

  it('runs up to maxBatch requests at once (the model decodes them together), the rest in order', async () => {
    const scheduler = new ModelScheduler('m', { maxBatch: 2 } as VargptModel, 1, new Metrics());
    const signal = new AbortController().signal;
    const gates = [gate(), gate(), gate()];
    const order: number[] = [];
    const calls = [0, 1, 2].map((i) =>
      scheduler.submit(signal, async () => {
        order.push(i);
        await gates[i]!.wait;
        return i;
      }),
    );
    expect(scheduler.running).toBe(2);
    expect(scheduler.waiting).toBe(1);
    expect(order).toEqual([0, 1]);
    await expect(scheduler.submit(signal, async () => 3)).rejects.toMatchObject({ status: 429 });
    gates[1]!.open();
    await calls[1];
    await new Promise((resolve) => setTimeout(resolve, 0)); // the slot is handed on after the reply
    expect(order).toEqual([0, 1, 2]);
    gates[0]!.open();
    gates[2]!.open();
    expect(await Promise.all(calls)).toEqual([0, 1, 2]);
    expect(scheduler.running + scheduler.waiting).toBe(0);
  });
});
