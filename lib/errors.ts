import path from 'node:path';

// Error types the public API throws. Plain `Error` subclasses with a stable `name`, so callers can
// branch on `err.name` without importing the classes (the convention AbortSignal users expect).

// Thrown when an AbortSignal stops a call (or a load). The model stays usable.
export class AbortError extends Error {
  override readonly name = 'AbortError';
  constructor(message = 'the operation was aborted', options?: { cause?: unknown }) {
    super(message, options);
  }
}

// Thrown for calls on a disposed model, and for calls still queued or running when dispose() ran.
export class DisposedError extends Error {
  override readonly name = 'DisposedError';
}

// Thrown when an input is rejected before any native work starts (bad type, range, image, role...).
export class InputError extends TypeError {
  override readonly name = 'InputError';
}

// Thrown when a checkpoint folder is missing a file or a file does not hold what VARGPT v1 needs.
export class CheckpointError extends Error {
  override readonly name = 'CheckpointError';
}

// A native failure while loading whose message starts with the path of a file in the checkpoint
// folder (a truncated or corrupt safetensors file, a shard index that does not match its shards)
// is a CheckpointError; anything else (a device error, say) is returned as it is.
export function checkpointErrorFrom(error: unknown, dir: string): unknown {
  if (!(error instanceof Error) || error.constructor !== Error) return error;
  const prefixes = [path.join(dir, path.sep), path.join(path.resolve(dir), path.sep)];
  if (!prefixes.some((p) => error.message.startsWith(p))) return error;
  return new CheckpointError(error.message, { cause: error });
}

export function isAbortError(error: unknown): boolean {
  return error instanceof Error && error.name === 'AbortError';
}

// The reason an AbortSignal carries, as an AbortError (a signal aborted with a custom reason keeps
// it as the cause, so the caller can still see what they passed).
export function abortErrorFrom(signal: AbortSignal | undefined, what: string): AbortError {
  const reason: unknown = signal?.reason;
  if (reason instanceof AbortError) return reason;
  const isDefault = reason instanceof Error && reason.name === 'AbortError';
  return new AbortError(`${what} was aborted`, isDefault || reason === undefined ? undefined : { cause: reason });
}

export function throwIfAborted(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) throw abortErrorFrom(signal, what);
}
