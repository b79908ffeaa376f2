// Where a tokenizer's tables live. Building @huggingface/tokenizers' Tokenizer for a 151k-token
// vocabulary means parsing an 11 MB tokenizer.json and filling Maps of the vocabulary and merges:
// 100-300 ms of synchronous work, and large heaps the garbage collector then walks, on whichever
// thread does it. loadModel builds it in a worker thread of its own (WorkerEngine) so the event
// loop of a serving process keeps running; each call (encode, decode, ...) is a synchronous
// round trip to that worker (Atomics.wait until it answers, tens of microseconds), so the
// tokenizer API stays synchronous. VargptTokenizer.fromJSON keeps the tables on the calling
// thread (LocalEngine).
import { createRequire } from 'node:module';
import { MessageChannel, type MessagePort, Worker, receiveMessageOnPort } from 'node:worker_threads';

import type { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';

import type { JsonObject } from './checkpoint-config.js';

export interface TokenizerEngine {
  encode(text: string, addSpecialTokens: boolean): number[];
  tokenize(text: string, addSpecialTokens: boolean): string[];
  decode(ids: number[], skipSpecialTokens: boolean): string;
  // Several sequences in one call: one round trip to a worker instead of one each.
  decodeBatch(sequences: number[][], skipSpecialTokens: boolean): string[];
  tokenToId(token: string): number | undefined;
  idToToken(id: number): string | undefined;
  // Frees the tables (ends the worker); later calls throw.
  close(): void;
}

// The parts of a built tokenizer that never change: the largest id + 1 and the special ids.
export interface TokenizerTables {
  size: number;
  specialIds: number[];
}

const DISPOSED = 'tokenizer: its model has been disposed';

export class LocalEngine implements TokenizerEngine {
  private hf: HfTokenizer | null;
  constructor(hf: HfTokenizer) {
    this.hf = hf;
  }
  private get open(): HfTokenizer {
    if (this.hf === null) throw new Error(DISPOSED);
    return this.hf;
  }
  encode(text: string, addSpecialTokens: boolean): number[] {
    return this.open.encode(text, { add_special_tokens: addSpecialTokens }).ids;
  }
  tokenize(text: string, addSpecialTokens: boolean): string[] {
    return this.open.tokenize(text, { add_special_tokens: addSpecialTokens });
  }
  decode(ids: number[], skipSpecialTokens: boolean): string {
    return this.open.decode(ids, { skip_special_tokens: skipSpecialTokens });
  }
  decodeBatch(sequences: number[][], skipSpecialTokens: boolean): string[] {
    const hf = this.open;
    return sequences.map((ids) => hf.decode(ids, { skip_special_tokens: skipSpecialTokens }));
  }
  tokenToId(token: string): number | undefined {
    return this.open.token_to_id(token);
  }
  idToToken(id: number): string | undefined {
    return this.open.id_to_token(id);
  }
  close(): void {
    this.hf = null;
  }
}

// How a worker build failed: the file is not JSON (or not an object), or the library refused it.
export class TokenizerBuildError extends Error {
  constructor(
    readonly kind: 'json' | 'not-object' | 'build',
    message: string,
  ) {
    super(message);
  }
}

// The worker, as a CommonJS script (eval: true) so that it runs the same from the TypeScript sources
// and from dist/. It parses tokenizer.json, builds the Tokenizer, reports its tables, then answers
// calls on its MessagePort: each answer is posted, then the shared flag is set and notified.
const WORKER_SOURCE = `(() => {
const { parentPort, workerData } = require('node:worker_threads');
const { Tokenizer } = require(workerData.library);
const flag = new Int32Array(workerData.flag);
const port = workerData.port;
// Slot 1 says the worker is gone, to a caller blocked in Atomics.wait (its 'exit' event would
// arrive only after the call).
process.on('exit', () => {
  Atomics.store(flag, 1, 1);
  Atomics.notify(flag, 0);
});
function reply(message) {
  port.postMessage(message);
  Atomics.store(flag, 0, 1);
  Atomics.notify(flag, 0);
}
let json;
try {
  // ignoreBOM keeps a byte-order mark in the text, which JSON.parse then rejects, as it does for
  // readFile(file, 'utf8').
  json = JSON.parse(new TextDecoder('utf-8', { ignoreBOM: true }).decode(workerData.bytes));
} catch (error) {
  parentPort.postMessage({ error: { kind: 'json', message: String(error && error.message) } });
  return;
}
if (json === null || typeof json !== 'object' || Array.isArray(json)) {
  parentPort.postMessage({ error: { kind: 'not-object', message: 'not an object' } });
  return;
}
let hf;
try {
  hf = new Tokenizer(json, workerData.config);
} catch (error) {
  parentPort.postMessage({ error: { kind: 'build', message: String(error && error.message) } });
  return;
}
json = null;
let size = 0;
for (const id of hf.get_vocab(true).values()) if (id + 1 > size) size = id + 1;
const specialIds = [];
for (const [id, added] of hf.get_added_tokens_decoder()) if (added.special) specialIds.push(id);
const calls = {
  encode: (text, add) => hf.encode(text, { add_special_tokens: add }).ids,
  tokenize: (text, add) => hf.tokenize(text, { add_special_tokens: add }),
  decode: (ids, skip) => hf.decode(ids, { skip_special_tokens: skip }),
  decodeBatch: (sequences, skip) => sequences.map((ids) => hf.decode(ids, { skip_special_tokens: skip })),
  tokenToId: (token) => hf.token_to_id(token),
  idToToken: (id) => hf.id_to_token(id),
};
port.on('message', ({ id, op, args }) => {
  try {
    reply({ id, value: calls[op](...args) });
  } catch (error) {
    reply({ id, error: String(error && error.message) });
  }
});
parentPort.postMessage({ tables: { size, specialIds } });
})();
`;

// How long a call waits for the worker before checking that it is still alive, and at most.
const CALL_POLL_MS = 1000;
const CALL_LIMIT_MS = 120_000;

interface Reply {
  id: number;
  value?: unknown;
  error?: string;
}

export class WorkerEngine implements TokenizerEngine {
  private closed = false;
  private exited = false;
  private lastCall = 0;

  private constructor(
    private readonly worker: Worker,
    private readonly port: MessagePort,
    private readonly flag: Int32Array,
  ) {
    const exited = () => {
      this.exited = true;
    };
    worker.once('exit', exited);
    // An error inside the worker after it was ready (it then exits): calls report it, and the
    // event must have a listener so that it does not throw in this thread.
    worker.on('error', exited);
  }

  // Decodes and parses `bytes` (tokenizer.json) and builds the tokenizer in a new worker; the
  // bytes' buffer moves to the worker (it is detached here), so the file is neither decoded nor
  // copied on this thread. Rejects with a TokenizerBuildError for a file the library cannot use,
  // with another error when no worker could run.
  static create(bytes: Uint8Array, config: JsonObject): Promise<{ engine: WorkerEngine; tables: TokenizerTables }> {
    // A thread that may not block (a browser-like main thread, e.g. an Electron renderer) cannot
    // wait for the worker's answers: Atomics.wait throws there, and the caller builds in-thread.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 1, 0);
    const whole = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength && bytes.buffer instanceof ArrayBuffer;
    const owned = whole ? bytes : bytes.slice();
    const library = createRequire(import.meta.url).resolve('@huggingface/tokenizers');
    const flag = new Int32Array(new SharedArrayBuffer(8));
    const { port1, port2 } = new MessageChannel();
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { library, bytes: owned, config, flag: flag.buffer, port: port2 },
      transferList: [port2, owned.buffer as ArrayBuffer],
    });
    // A tokenizer never keeps the process alive: it has no work of its own.
    worker.unref();
    port1.unref();
    return new Promise((resolve, reject) => {
      const fail = (error: Error) => {
        void worker.terminate();
        port1.close();
        reject(error);
      };
      worker.once('message', (message: { tables?: TokenizerTables; error?: { kind: TokenizerBuildError['kind']; message: string } }) => {
        worker.removeAllListeners('error');
        worker.removeAllListeners('exit');
        if (message.error) return fail(new TokenizerBuildError(message.error.kind, message.error.message));
        resolve({ engine: new WorkerEngine(worker, port1, flag), tables: message.tables! });
      });
      worker.once('error', (error) => fail(error));
      worker.once('exit', (code) => fail(new Error(`the tokenizer worker exited with code ${code} before it was ready`)));
    });
  }

  private call(op: string, args: unknown[]): unknown {
    if (this.closed) throw new Error(DISPOSED);
    if (this.exited) throw new Error('tokenizer: its worker thread has exited');
    const id = ++this.lastCall;
    this.port.postMessage({ id, op, args });
    const start = Date.now();
    for (;;) {
      Atomics.wait(this.flag, 0, 0, CALL_POLL_MS);
      // Cleared before reading the port: an answer posted from here on sets it again.
      Atomics.store(this.flag, 0, 0);
      for (let received = receiveMessageOnPort(this.port); received; received = receiveMessageOnPort(this.port)) {
        const reply = received.message as Reply;
        if (reply.id !== id) continue; // the late answer to a call that gave up waiting
        if (reply.error !== undefined) throw new Error(reply.error);
        return reply.value;
      }
      if (Atomics.load(this.flag, 1) === 1) {
        this.exited = true;
        throw new Error('tokenizer: its worker thread has exited');
      }
      if (Date.now() - start > CALL_LIMIT_MS) throw new Error(`tokenizer: ${op} had no answer from its worker thread in ${CALL_LIMIT_MS / 1000} s`);
    }
  }

  encode(text: string, addSpecialTokens: boolean): number[] {
    return this.call('encode', [text, addSpecialTokens]) as number[];
  }
  tokenize(text: string, addSpecialTokens: boolean): string[] {
    return this.call('tokenize', [text, addSpecialTokens]) as string[];
  }
  decode(ids: number[], skipSpecialTokens: boolean): string {
    return this.call('decode', [ids, skipSpecialTokens]) as string;
  }
  decodeBatch(sequences: number[][], skipSpecialTokens: boolean): string[] {
    return this.call('decodeBatch', [sequences, skipSpecialTokens]) as string[];
  }
  tokenToId(token: string): number | undefined {
    return this.call('tokenToId', [token]) as number | undefined;
  }
  idToToken(id: number): string | undefined {
    return this.call('idToToken', [id]) as string | undefined;
  }
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.port.close();
    void this.worker.terminate();
  }
}
