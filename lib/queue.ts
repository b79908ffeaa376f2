// One model runs one call at a time: the native model keeps a KV cache and scratch memory per
// instance, so calls are queued here, in order, and never interleaved. Each call gets its own
// native cancel token; an AbortSignal cancels it while it runs (the native side stops within one
// token or one image scale) or removes it from the queue at once while it waits.
import { AbortError, DisposedError, abortErrorFrom } from './errors.js';
import type { NativeCancelToken } from './native.js';

interface Pending {
  reject: (error: Error) => void;
  started: boolean;
  token: NativeCancelToken;
  what: string;
}

export class CallQueue {
  private tail: Promise<unknown> = Promise.resolve();
  private readonly pending = new Set<Pending>();
  private disposing = false;

  constructor(private readonly createToken: () => NativeCancelToken) {}

  get closed(): boolean {
    return this.disposing;
  }

  run<T>(what: string, signal: AbortSignal | undefined, task: (token: NativeCancelToken) => Promise<T>): Promise<T> {
    if (this.disposing) return Promise.reject(new DisposedError(`${what}: the model has been disposed`));
    if (signal?.aborted) return Promise.reject(abortErrorFrom(signal, what));
    return new Promise<T>((resolve, reject) => {
      const entry: Pending = { reject, started: false, token: this.createToken(), what };
      this.pending.add(entry);
      const onAbort = () => {
        if (!entry.started) {
          this.pending.delete(entry);
          reject(abortErrorFrom(signal, what));
        } else {
          entry.token.cancel();
        }
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      const start = async (): Promise<void> => {
        // Left the queue already (aborted or disposed while waiting): nothing to run.
        if (!this.pending.has(entry)) return;
        entry.started = true;
        try {
          resolve(await task(entry.token));
        } catch (error) {
          reject(this.translate(error, entry, signal));
        } finally {
          this.pending.delete(entry);
          signal?.removeEventListener('abort', onAbort);
        }
      };
      const next = this.tail.then(start, start);
      this.tail = next.catch(() => undefined);
    });
  }

  private translate(error: unknown, entry: Pending, signal: AbortSignal | undefined): Error {
    const cancelled = entry.token.cancelled || (error instanceof Error && error.name === 'AbortError');
    if (cancelled && this.disposing) return new DisposedError(`${entry.what}: the model was disposed during the call`, { cause: error });
    if (cancelled && signal?.aborted) return abortErrorFrom(signal, entry.what);
    if (error instanceof AbortError) return error;
    return error instanceof Error ? error : new Error(String(error));
  }

  // Rejects queued calls, cancels the running one and waits until it has stopped.
  async close(): Promise<void> {
    if (this.disposing) return this.tail.then(() => undefined);
    this.disposing = true;
    for (const entry of this.pending) {
      if (entry.started) {
        entry.token.cancel();
      } else {
        this.pending.delete(entry);
        entry.reject(new DisposedError(`${entry.what}: the model was disposed before the call started`));
      }
    }
    await this.tail;
  }
}
