// Reading request parameters: each check names the parameter at fault in a 400 error object.
import { badRequest } from './http.js';

export type Params = Record<string, unknown>;

export function optionalNumber(o: Params, key: string, check: (v: number) => boolean, rule: string): number | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v) || !check(v)) throw badRequest(`${key} must be ${rule}, got ${JSON.stringify(v) ?? String(v)}`, key);
  return v;
}

export function optionalInt(o: Params, key: string, min: number, max: number): number | undefined {
  return optionalNumber(o, key, (v) => Number.isSafeInteger(v) && v >= min && v <= max, `an integer in [${min}, ${max}]`);
}

export function optionalBool(o: Params, key: string): boolean | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') throw badRequest(`${key} must be true or false, got ${JSON.stringify(v)}`, key);
  return v;
}

export function optionalString(o: Params, key: string): string | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw badRequest(`${key} must be a string, got ${JSON.stringify(v)}`, key);
  return v;
}

export function requiredString(o: Params, key: string): string {
  const v = optionalString(o, key);
  if (v === undefined || v.trim().length === 0) throw badRequest(`${key} is required (a non-empty string)`, key, v === undefined ? 'missing_required_parameter' : 'invalid_value');
  return v;
}

// 2^48: the largest seed the models take.
export const MAX_SEED = 2 ** 48 - 1;

export function seedParam(o: Params): number | undefined {
  return optionalInt(o, 'seed', 0, MAX_SEED);
}

// Multipart form fields arrive as strings: numbers and booleans are read back from them.
export function fromFormFields(fields: Record<string, string>): Params {
  const out: Params = {};
  for (const [key, raw] of Object.entries(fields)) {
    const text = raw.trim();
    if (key === 'prompt' || key === 'model' || key === 'size' || key === 'response_format' || key === 'output_format' || key === 'user') out[key] = raw;
    else if (text === 'true' || text === 'false') out[key] = text === 'true';
    else if (text !== '' && Number.isFinite(Number(text))) out[key] = Number(text);
    else out[key] = raw;
  }
  return out;
}
