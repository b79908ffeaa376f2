// What every synthesized checkpoint is made of: a list of tensor specs (name, shape, stored type,
// how to fill it), built by one family layout module each (vargpt-v1.ts, vargpt-v1.1.ts) with the
// helpers below, then streamed to safetensors by safetensors-writer.ts.
//
// How weights are filled (deterministic per seed and tensor name, see rng.ts), chosen so a forward
// pass stays in a sane range at any depth, not to imitate trained statistics:
//   matrices and conv kernels  N(0, 1/fan_in)  (unit-variance outputs for unit-variance inputs);
//                              layers that write into a residual stream (o_proj, down_proj,
//                              out_proj, fc2, proj) are further scaled by 1/sqrt(2 * layers)
//   token / class embeddings,  N(0, 1)
//   codebooks, learned rows
//   position embeddings        N(0, 0.02^2 * 25) = N(0, 0.1^2)
//   norm weights               1 + N(0, 0.02^2)  (not exactly 1, so a runtime that ignores them
//                                                  is caught by a cross-check)
//   biases                     N(0, 0.02^2)
// Each family module lists its own constants and buffers.

export type SynthDType = 'f32' | 'bf16' | 'f16';

export const TORCH_DTYPE: Readonly<Record<SynthDType, string>> = { f32: 'float32', bf16: 'bfloat16', f16: 'float16' };

export type Init =
  | { kind: 'normal'; std: number; mean?: number }
  | { kind: 'const'; value: number }
  | { kind: 'lvl' } // VAR's lvl_1L (int64 scale index per token)
  | { kind: 'blockCausal' } // VAR's attn_bias_for_masking
  | { kind: 'bitMask' }; // BSQ's lfq.mask (int64 2^(n-1-i): the weight of bit i in a code index)

export interface TensorSpec {
  name: string;
  shape: number[];
  // 'float' tensors take the requested dtype; integer buffers stay int64 (as upstream's bf16 cast
  // keeps them).
  type: 'float' | 'i64';
  init: Init;
  // A registered buffer (stored in the checkpoint but not a parameter).
  buffer: boolean;
}

export const BIAS: Init = { kind: 'normal', std: 0.02 };
export const NORM: Init = { kind: 'normal', mean: 1, std: 0.02 };
export const POS: Init = { kind: 'normal', std: 0.1 };
export const EMBED: Init = { kind: 'normal', std: 1 };
export const ZERO: Init = { kind: 'const', value: 0 };

function fanIn(shape: number[]): number {
  return shape.slice(1).reduce((a, b) => a * b, 1);
}

export class TensorLayout {
  readonly specs: TensorSpec[] = [];

  add(name: string, shape: number[], init: Init, type: 'float' | 'i64' = 'float', buffer = false): void {
    this.specs.push({ name, shape, type, init, buffer });
  }

  // A weight matrix / conv kernel; `residualLayers` > 0 marks a residual-stream writer.
  weight(name: string, shape: number[], residualLayers = 0): void {
    const std = 1 / Math.sqrt(fanIn(shape)) / (residualLayers > 0 ? Math.sqrt(2 * residualLayers) : 1);
    this.add(name, shape, { kind: 'normal', std });
  }

  linear(prefix: string, out: number, inp: number, options: { bias?: boolean; residualLayers?: number } = {}): void {
    this.weight(`${prefix}.weight`, [out, inp], options.residualLayers ?? 0);
    if (options.bias ?? true) this.add(`${prefix}.bias`, [out], BIAS);
  }

  conv(prefix: string, out: number, inp: number, k: number): void {
    this.weight(`${prefix}.weight`, [out, inp, k, k]);
    this.add(`${prefix}.bias`, [out], BIAS);
  }

  norm(prefix: string, c: number, bias = true): void {
    this.add(`${prefix}.weight`, [c], NORM);
    if (bias) this.add(`${prefix}.bias`, [c], BIAS);
  }
}

export function elementCount(spec: TensorSpec): number {
  return spec.shape.reduce((a, b) => a * b, 1);
}

// Parameters only (buffers left out), the count upstream and shared/bench/README.md quote.
export function parameterCount(specs: readonly TensorSpec[]): number {
  return specs.reduce((n, s) => n + (s.buffer ? 0 : elementCount(s)), 0);
}

// Sizes are user input (config.json, overrides): each must be a positive integer.
export function checkPositive(what: string, v: number): void {
  if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`synthesize: ${what} must be a positive integer, got ${v}`);
}
