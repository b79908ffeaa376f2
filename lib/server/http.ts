// HTTP plumbing of the server: OpenAI-style error objects, JSON replies, bounded body reading and
// server-sent events.
import type { IncomingMessage, ServerResponse } from 'node:http';

export type ErrorType = 'invalid_request_error' | 'authentication_error' | 'not_found_error' | 'rate_limit_error' | 'server_error' | 'timeout_error' | 'unavailable_error';

// An error with its HTTP status and the OpenAI error object's fields: { error: { message, type, param, code } }.
export class HttpError extends Error {
  override readonly name = 'HttpError';
  constructor(
    readonly status: number,
    message: string,
    readonly type: ErrorType = 'invalid_request_error',
    readonly param: string | null = null,
    readonly code: string | null = null,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }

  body(): { error: { message: string; type: ErrorType; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

export function badRequest(message: string, param: string | null = null, code: string | null = 'invalid_value'): HttpError {
  return new HttpError(400, message, 'invalid_request_error', param, code);
}

export function tooLarge(message: string, param: string | null = null): HttpError {
  return new HttpError(413, message, 'invalid_request_error', param, 'payload_too_large');
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)), ...headers });
  res.end(text);
}

export function sendError(res: ServerResponse, error: HttpError): void {
  sendJson(res, error.status, error.body(), error.headers);
}

// The request body, at most `limit` bytes (413 past it, without reading the rest).
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > limit) {
      reject(tooLarge(`the request body is ${declared} bytes; the limit is ${limit}`));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    const onData = (chunk: Buffer) => {
      if (failed) return;
      size += chunk.length;
      if (size > limit) {
        failed = true;
        req.off('data', onData);
        req.resume();
        reject(tooLarge(`the request body is over the limit of ${limit} bytes`));
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => {
      if (!failed) resolve(Buffer.concat(chunks));
    });
    req.once('error', (error) => {
      if (!failed) {
        failed = true;
        reject(error);
      }
    });
    req.once('aborted', () => {
      if (!failed) {
        failed = true;
        reject(new HttpError(400, 'the request body was cut short', 'invalid_request_error', null, 'aborted'));
      }
    });
  });
}

export async function readJson(req: IncomingMessage, limit: number): Promise<Record<string, unknown>> {
  // Any content type but a form: curl -d sends JSON as application/x-www-form-urlencoded.
  const type = String(req.headers['content-type'] ?? '');
  if (/^multipart\//i.test(type)) {
    throw new HttpError(415, `expected a JSON body (content-type: application/json), got "${type}"`, 'invalid_request_error', null, 'unsupported_media_type');
  }
  // A body a framework has parsed already (Express's express.json()): the stream is spent.
  const parsed = (req as IncomingMessage & { body?: unknown }).body;
  if (parsed !== undefined && req.readableEnded) {
    if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) && !Buffer.isBuffer(parsed)) return parsed as Record<string, unknown>;
    if (typeof parsed !== 'string' && !Buffer.isBuffer(parsed)) throw badRequest('the request body must be a JSON object', null, 'invalid_json');
    return parseObject(Buffer.isBuffer(parsed) ? parsed.toString('utf8') : parsed);
  }
  return parseObject((await readBody(req, limit)).toString('utf8'));
}

function parseObject(text: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw badRequest(`the request body is not valid JSON: ${(error as Error).message}`, null, 'invalid_json');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw badRequest('the request body must be a JSON object', null, 'invalid_json');
  return value as Record<string, unknown>;
}

// Server-sent events: data lines (and an event name when given); writes after the client left
// are dropped.
export class EventStream {
  constructor(private readonly res: ServerResponse) {}

  open(): void {
    if (this.res.headersSent) return;
    this.res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
    this.res.flushHeaders();
  }

  get started(): boolean {
    return this.res.headersSent;
  }

  send(data: unknown, event?: string): void {
    if (this.res.destroyed || this.res.writableEnded) return;
    this.open();
    this.res.write(`${event ? `event: ${event}\n` : ''}data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`);
  }

  // A comment line every `ms` while the reply is worked on, so proxies and clients keep the
  // connection; returns the function that stops it.
  keepAlive(ms = 15_000): () => void {
    const timer = setInterval(() => {
      if (!this.res.destroyed && !this.res.writableEnded) {
        this.open();
        this.res.write(': keep-alive\n\n');
      }
    }, ms);
    timer.unref();
    return () => clearInterval(timer);
  }

  end(): void {
    if (!this.res.writableEnded) this.res.end();
  }
}

// Aborts when any of `signals` does (AbortSignal.any, which Node has from 20.3 only).
export function anySignal(signals: readonly AbortSignal[]): AbortSignal {
  const controller = new AbortController();
  for (const signal of signals) {
    if (signal.aborted) {
      controller.abort(signal.reason);
      break;
    }
    signal.addEventListener('abort', () => controller.abort(signal.reason), { once: true, signal: controller.signal });
  }
  return controller.signal;
}
