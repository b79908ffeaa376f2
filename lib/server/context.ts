// One request's life on the server: its abort signal (client gone, timeout, shutdown, or a stop
// sequence met) and how a failure becomes an HTTP error.
import type { VargptModel } from '../model.js';
import type { ReadBackCheck } from '../self-check.js';
import { HttpError } from './http.js';
import type { ImageInputLimits } from './images.js';
import type { Outcome } from './metrics.js';
import type { ModelScheduler } from './scheduler.js';

export type AbortReason = 'disconnect' | 'timeout' | 'shutdown';

export class RequestContext {
  private readonly controller = new AbortController();
  reason: AbortReason | null = null;

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  abort(reason: AbortReason): void {
    if (this.controller.signal.aborted) return;
    this.reason = reason;
    const error = new Error(`the request was stopped (${reason})`);
    error.name = 'AbortError';
    this.controller.abort(error);
  }
}

// What an endpoint needs from the server.
export interface Services {
  scheduler(name: unknown, param?: string): { scheduler: ModelScheduler; model: VargptModel; name: string };
  generated(model: string, tokens: number, images: number): void;
  // What to ask the named model about its own drawings, or null (ServerOptions.selfChecks).
  selfCheck(name: string): ReadBackCheck | null;
  imageLimits: ImageInputLimits;
  maxBodyBytes: number;
  log(message: string): void;
}

export function toHttpError(error: unknown, ctx: RequestContext, log: (message: string) => void): HttpError {
  if (error instanceof HttpError) return error;
  if (ctx.reason === 'timeout') return new HttpError(504, 'the request took longer than the server allows and was stopped', 'timeout_error', null, 'timeout');
  if (ctx.reason === 'shutdown') return new HttpError(503, 'the server is shutting down', 'unavailable_error', null, 'shutting_down');
  if (ctx.reason === 'disconnect') return new HttpError(499, 'the client closed the connection', 'invalid_request_error', null, 'client_closed');
  const name = error instanceof Error ? error.name : '';
  if (name === 'InputError') return new HttpError(400, (error as Error).message, 'invalid_request_error', null, 'invalid_value');
  if (name === 'DisposedError' || name === 'AbortError') return new HttpError(503, 'the model is no longer available', 'unavailable_error', null, 'model_unavailable');
  log(`internal error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  return new HttpError(500, 'the server failed to complete the request', 'server_error', null, 'internal_error');
}

export function outcomeOf(error: HttpError): Outcome {
  if (error.status === 429) return 'rejected';
  if (error.status === 504) return 'timeout';
  if (error.status === 499) return 'cancelled';
  if (error.status === 503) return 'unavailable';
  if (error.status >= 500) return 'error';
  return 'client_error';
}
