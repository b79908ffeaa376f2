// The model's calls, in the order they were made. A native model computes one thing at a time;
// this queue decides what that is:
// - assistant turns (chat, ask, chatStream, and the drawing calls) decode together: each turn is
//   started (its prefill) when it reaches the head of the line, then joins the running batch,
//   whose turns advance one token per step in a single forward pass (the native stepTurns), so N
//   concurrent text calls cost about what one costs on the memory-bound decode. Turns leave the
//   batch between steps when they end; a turn that draws leaves to draw, which runs on its own
//   while the other turns wait (an image is one long computation, not a stream of steps).
// - other calls (image tokens) run alone: once one reaches the head of the line, no later call
//   joins the batch until it has run, so every call starts in the order it was made.
// Each call gets its own native cancel token: an AbortSignal cancels it while it runs (the native
// side stops within one token or one image step) or removes it from the line while it waits. A
// call may name a promise it needs first (images to decode): the line waits for it at the head,
// while those behind it keep their places.
import { AbortError, DisposedError, abortErrorFrom } from './errors.js';
import type { NativeCancelToken, NativeGenerateRequest, NativeGenerateResult, NativeModel, NativeTurn } from './native.js';

// The most turns one decode step runs. Up to this many rows the GEMM streams each weight row once
// for the whole batch and computes every row exactly as it computes a row alone, so a batched
// call returns the tokens it returns alone (native/backend/cpu/gemm.h: kSmallRows).
export const MAX_BATCH = 8;

// Runs one native turn through the queue's batch: `request` carries the call's cancel token.
export type ExecuteTurn = (request: NativeGenerateRequest) => Promise<NativeGenerateResult>;

type Kind = 'turn' | 'alone';

type TurnModel = Pick<NativeModel, 'generate'> & Partial<Pick<NativeModel, 'startTurn' | 'stepTurns' | 'finishTurn'>>;

interface Entry {
  kind: Kind;
  what: string;
  token: NativeCancelToken;
  ready: boolean; // the promise the call needs first has settled
  started: boolean;
  start: () => Promise<void>; // resolves once the queue may go on (turn: started or failed; alone: finished)
  reject: (error: Error) => void;
}

interface Active {
  entry: Entry;
  turn: NativeTurn;
  request: NativeGenerateRequest;
  resolve: (result: NativeGenerateResult) => void;
  reject: (error: unknown) => void;
}

export class CallQueue {
  private readonly line: Entry[] = [];
  private readonly active: Active[] = [];
  private readonly running = new Set<Entry>(); // started and not settled (turns and alone calls)
  private pumping: Promise<void> | null = null;
  private interrupt: NativeCancelToken | null = null; // the running stepTurns call's
  private disposing = false;
  private wake: (() => void) | null = null; // the pump waits for a head that is not ready

  constructor(
    private readonly createToken: () => NativeCancelToken,
    private readonly model: TurnModel,
    readonly maxBatch = MAX_BATCH,
  ) {
    if (!Number.isInteger(maxBatch) || maxBatch < 1 || maxBatch > MAX_BATCH) {
      throw new RangeError(`maxBatch must be an integer in 1..${MAX_BATCH}, got ${String(maxBatch)}`);
    }
    // One turn at a time needs no batch: each runs through generate(), the path batched turns are
    // compared with. (So do models without the turn calls, such as the tests' doubles.)
    this.batching = maxBatch > 1 && typeof model.startTurn === 'function';
  }

  private readonly batching: boolean;

  get closed(): boolean {
    return this.disposing;
  }

  // Turns decoding now, and calls waiting for their turn.
  get stats(): { decoding: number; waiting: number } {
    return { decoding: this.active.length, waiting: this.line.length };
  }

  // A call that runs alone.
  run<T>(what: string, signal: AbortSignal | undefined, task: (token: NativeCancelToken) => Promise<T>, needs?: Promise<unknown>): Promise<T> {
    return this.enqueue('alone', what, signal, needs, (token) => task(token));
  }

  // An assistant turn: `task` builds the request and hands it to `execute`, which runs it in the
  // batch (or alone, when the queue batches one turn at a time or has no turn support).
  runTurn<T>(what: string, signal: AbortSignal | undefined, needs: Promise<unknown> | undefined, task: (token: NativeCancelToken, execute: ExecuteTurn) => Promise<T>): Promise<T> {
    return this.enqueue(this.batching ? 'turn' : 'alone', what, signal, needs, task);
  }

  private enqueue<T>(
    kind: Kind,
    what: string,
    signal: AbortSignal | undefined,
    needs: Promise<unknown> | undefined,
    task: (token: NativeCancelToken, execute: ExecuteTurn) => Promise<T>,
  ): Promise<T> {
    needs?.catch(() => undefined); // its failure is the task's to report, or nobody's if the call never starts
    if (this.disposing) return Promise.reject(new DisposedError(`${what}: the model has been disposed`));
    if (signal?.aborted) return Promise.reject(abortErrorFrom(signal, what));
    return new Promise<T>((resolve, reject) => {
      const token = this.createToken();
      const entry: Entry = {
        kind,
        what,
        token,
        ready: needs === undefined,
        started: false,
        reject: (error) => reject(error),
        start: () => {
          entry.started = true;
          this.running.add(entry);
          // A turn lets the queue go on once it has joined the batch (or failed to).
          let joined: () => void = () => undefined;
          const admitted = new Promise<void>((done) => {
            joined = done;
          });
          const execute: ExecuteTurn = (request) => (kind === 'turn' ? this.join(entry, request, joined) : this.model.generate(request));
          const finished = (async () => {
            try {
              resolve(await task(token, execute));
            } catch (error) {
              reject(this.translate(error, entry, signal));
            } finally {
              this.running.delete(entry);
              signal?.removeEventListener('abort', onAbort);
              joined();
            }
          })();
          return kind === 'turn' ? admitted : finished;
        },
      };
      const onAbort = () => {
        if (entry.started) {
          token.cancel();
          return;
        }
        const at = this.line.indexOf(entry);
        if (at >= 0) this.line.splice(at, 1);
        reject(abortErrorFrom(signal, what));
        this.poke();
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.line.push(entry);
      if (needs !== undefined) {
        const settle = () => {
          entry.ready = true;
          this.poke();
        };
        needs.then(settle, settle);
      }
      this.poke();
    });
  }

  // Something changed (a call arrived, became ready or left): start the pump, or end the running
  // step early when the head of the line can join the batch now.
  private poke(): void {
    this.wake?.();
    const head = this.line[0];
    if (this.interrupt && head?.kind === 'turn' && head.ready && this.active.length < this.maxBatch) this.interrupt.cancel();
    if (!this.pumping) {
      this.pumping = this.pump()
        .catch((error: unknown) => {
          // Not expected (every call's own failures are its own): fail what depends on the pump
          // rather than leave it waiting.
          const failure = error instanceof Error ? error : new Error(String(error));
          for (const a of this.active.splice(0)) a.reject(failure);
          for (const entry of this.line.splice(0)) entry.reject(failure);
        })
        .finally(() => {
          this.pumping = null;
          if (this.line.length > 0 && !this.disposing) this.poke();
        });
    }
  }

  private async pump(): Promise<void> {
    for (;;) {
      const head = this.line[0];
      const headReady = head !== undefined && head.ready;
      if (headReady && (head.kind === 'alone' ? this.active.length === 0 : this.active.length < this.maxBatch)) {
        this.line.shift();
        await head.start();
        continue;
      }
      if (this.active.length > 0) {
        await this.step();
        continue;
      }
      if (head === undefined) return;
      // The head waits for what it needs (its images), and everything behind it with it.
      await new Promise<void>((resume) => {
        this.wake = resume;
        if (this.line[0] !== head || head.ready) resume();
      });
      this.wake = null;
    }
  }

  // Starts a turn (its prefill) and adds it to the batch; the promise settles with its result.
  private join(entry: Entry, request: NativeGenerateRequest, joined: () => void): Promise<NativeGenerateResult> {
    const model = this.turnModel();
    return new Promise<NativeGenerateResult>((resolve, reject) => {
      model.startTurn(request).then(
        (turn) => {
          this.active.push({ entry, turn, request, resolve, reject });
          joined();
        },
        (error: unknown) => {
          reject(error);
          joined();
        },
      );
    });
  }

  // Decode steps of every active turn together until one leaves or a waiting turn can join.
  private async step(): Promise<void> {
    const model = this.turnModel();
    const batch = this.active.slice();
    const interrupt = this.createToken();
    this.interrupt = interrupt;
    const head = this.line[0];
    if (head?.kind === 'turn' && head.ready && batch.length < this.maxBatch) interrupt.cancel();
    let states;
    try {
      states = await model.stepTurns(
        batch.map((a) => a.turn),
        interrupt,
        (token, index) => {
          // The model's own onToken guards the user's callback; nothing thrown here reaches the addon.
          try {
            batch[index]?.request.onToken?.(token);
          } catch {
            batch[index]?.entry.token.cancel();
          }
        },
      );
    } catch (error) {
      // The step itself failed (not one turn): every turn in it fails with that error.
      for (const a of batch) this.leave(a, error);
      return;
    } finally {
      this.interrupt = null;
    }
    for (let i = 0; i < batch.length; i++) {
      const a = batch[i]!;
      const s = states[i];
      if (s === undefined || s.state === 'ready') continue;
      if (s.state === 'failed') {
        this.leave(a, new Error(s.error ?? 'the turn failed'));
      } else if (s.state === 'cancelled') {
        this.leave(a, new AbortError(`${a.entry.what}: aborted`));
      } else {
        this.remove(a);
        try {
          a.resolve(await model.finishTurn(a.turn, { onToken: a.request.onToken, onImageProgress: a.request.onImageProgress }));
        } catch (error) {
          a.reject(error);
        } finally {
          a.turn.dispose();
        }
      }
    }
  }

  private turnModel(): Required<TurnModel> {
    const m = this.model;
    if (!m.startTurn || !m.stepTurns || !m.finishTurn) throw new Error('this native model cannot run turns');
    return m as Required<TurnModel>;
  }

  private remove(a: Active): void {
    const at = this.active.indexOf(a);
    if (at >= 0) this.active.splice(at, 1);
  }

  private leave(a: Active, error: unknown): void {
    this.remove(a);
    a.turn.dispose();
    a.reject(error);
  }

  private translate(error: unknown, entry: Entry, signal: AbortSignal | undefined): Error {
    const cancelled = entry.token.cancelled || (error instanceof Error && error.name === 'AbortError');
    if (cancelled && this.disposing) return new DisposedError(`${entry.what}: the model was disposed during the call`, { cause: error });
    if (cancelled && signal?.aborted) return abortErrorFrom(signal, entry.what);
    if (error instanceof AbortError) return error;
    return error instanceof Error ? error : new Error(String(error));
  }

  // Rejects waiting calls, cancels the running ones and waits until they have stopped.
  async close(): Promise<void> {
    if (!this.disposing) {
      this.disposing = true;
      for (const entry of this.line.splice(0)) entry.reject(new DisposedError(`${entry.what}: the model was disposed before the call started`));
      for (const entry of this.running) entry.token.cancel();
      this.wake?.();
    }
    while (this.pumping) await this.pumping;
  }
}
