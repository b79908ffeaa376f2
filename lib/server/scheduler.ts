// "Run this request on this model": the one place that decides when a request's model work runs.
// Up to model.maxBatch requests run at once: the model's own queue decodes their text together
// (continuous batching: one forward pass per token for all of them) and runs drawings in turn, in
// arrival order. Past that, requests wait here in a bounded line, in arrival order.
import type { VargptModel } from '../model.js';
import { HttpError } from './http.js';
import type { Metrics } from './metrics.js';

interface Waiting {
  start: () => void;
  fail: (error: Error) => void;
}

export class ModelScheduler {
  private readonly line: Waiting[] = [];
  private active = 0;
  // Seconds the last requests took to run, for a Retry-After estimate.
  private averageRun = 1;

  constructor(
    readonly name: string,
    readonly model: VargptModel,
    private readonly maxQueue: number,
    private readonly metrics: Metrics,
  ) {}

  get waiting(): number {
    return this.line.length;
  }

  get running(): number {
    return this.active;
  }

  private get full(): boolean {
    return this.active >= this.model.maxBatch;
  }

  // Runs `task` on the model once its turn comes. Refuses at once (429, with Retry-After) when
  // `maxQueue` requests already wait; a request whose signal aborts while waiting leaves the line.
  submit<T>(signal: AbortSignal, task: (model: VargptModel, signal: AbortSignal) => Promise<T>): Promise<T> {
    if (signal.aborted) return Promise.reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
    if (this.full && this.line.length >= this.maxQueue) {
      const retry = Math.max(1, Math.ceil((this.averageRun * (this.line.length + 1)) / this.model.maxBatch));
      return Promise.reject(
        new HttpError(429, `model "${this.name}" is busy: ${this.line.length} requests are waiting (the limit is ${this.maxQueue}); retry later`, 'rate_limit_error', null, 'queue_full', {
          'retry-after': String(retry),
        }),
      );
    }
    const queuedAt = performance.now();
    return new Promise<T>((resolve, reject) => {
      const entry: Waiting = {
        start: () => {
          signal.removeEventListener('abort', onAbort);
          this.metrics.queued(this.name, (performance.now() - queuedAt) / 1000);
          const began = performance.now();
          this.active++;
          let work: Promise<T>;
          try {
            work = task(this.model, signal);
          } catch (error) {
            work = Promise.reject(error);
          }
          work.then(resolve, reject).finally(() => {
            this.averageRun = 0.8 * this.averageRun + 0.2 * ((performance.now() - began) / 1000);
            this.active--;
            this.next();
          });
        },
        fail: reject,
      };
      const onAbort = () => {
        const at = this.line.indexOf(entry);
        if (at >= 0) {
          this.line.splice(at, 1);
          reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
        }
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.line.push(entry);
      this.next();
    });
  }

  private next(): void {
    while (!this.full && this.line.length > 0) this.line.shift()?.start();
  }
}
