// Typed tensors: a dtype, a shape and the values as a TypedArray view (no copy). bf16 and f16
// values are raw 16-bit patterns in a Uint16Array; toFloat32() widens them.

export type DType = 'f32' | 'bf16' | 'f16' | 'i32' | 'i64' | 'u8' | 'i8';

export interface TensorDataMap {
  f32: Float32Array;
  bf16: Uint16Array;
  f16: Uint16Array;
  i32: Int32Array;
  i64: BigInt64Array;
  u8: Uint8Array;
  i8: Int8Array;
}

export type TensorData = TensorDataMap[DType];

export const DTYPE_BYTES: Readonly<Record<DType, number>> = { f32: 4, bf16: 2, f16: 2, i32: 4, i64: 8, u8: 1, i8: 1 };

export function isDType(value: unknown): value is DType {
  return typeof value === 'string' && Object.prototype.hasOwnProperty.call(DTYPE_BYTES, value);
}

export function shapeSize(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) throw new RangeError(`invalid dimension ${d} in shape [${shape.join(', ')}]`);
    n *= d;
  }
  if (!Number.isSafeInteger(n)) throw new RangeError(`shape [${shape.join(', ')}] is too large`);
  return n;
}

function viewOf<D extends DType>(dtype: D, buffer: ArrayBufferLike, byteOffset: number, length: number): TensorDataMap[D] {
  switch (dtype) {
    case 'f32':
      return new Float32Array(buffer, byteOffset, length) as TensorDataMap[D];
    case 'bf16':
    case 'f16':
      return new Uint16Array(buffer, byteOffset, length) as TensorDataMap[D];
    case 'i32':
      return new Int32Array(buffer, byteOffset, length) as TensorDataMap[D];
    case 'i64':
      return new BigInt64Array(buffer, byteOffset, length) as TensorDataMap[D];
    case 'u8':
      return new Uint8Array(buffer, byteOffset, length) as TensorDataMap[D];
    case 'i8':
      return new Int8Array(buffer, byteOffset, length) as TensorDataMap[D];
  }
  throw new TypeError(`unknown dtype ${String(dtype)}`);
}

const scratch = new DataView(new ArrayBuffer(4));

export function bf16ToF32(bits: number): number {
  scratch.setUint32(0, (bits & 0xffff) << 16);
  return scratch.getFloat32(0);
}

// Round to nearest even, as torch's cast; NaN stays NaN.
export function f32ToBf16(value: number): number {
  scratch.setFloat32(0, value);
  const bits = scratch.getUint32(0);
  if ((bits & 0x7fffffff) > 0x7f800000) return ((bits >>> 16) | 0x40) & 0xffff;
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}

export function f16ToF32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa ? NaN : sign * Infinity;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

export class Tensor<D extends DType = DType> {
  readonly dtype: D;
  readonly shape: readonly number[];
  readonly data: TensorDataMap[D];

  constructor(dtype: D, shape: readonly number[], data: TensorDataMap[D]) {
    if (!isDType(dtype)) throw new TypeError(`unknown dtype ${String(dtype)}`);
    const size = shapeSize(shape);
    if (data.length !== size) {
      throw new RangeError(`${dtype}[${shape.join(', ')}] needs ${size} values, got ${data.length}`);
    }
    this.dtype = dtype;
    this.shape = Object.freeze([...shape]);
    this.data = data;
  }

  get size(): number {
    return this.data.length;
  }

  get rank(): number {
    return this.shape.length;
  }

  // Views `buffer` (no copy) as a tensor; byteOffset must be aligned to the element size.
  static fromBuffer<D extends DType>(dtype: D, shape: readonly number[], buffer: ArrayBufferLike, byteOffset = 0): Tensor<D> {
    const size = shapeSize(shape);
    if (byteOffset % DTYPE_BYTES[dtype] !== 0) throw new RangeError(`byte offset ${byteOffset} is not aligned for ${dtype}`);
    if (byteOffset + size * DTYPE_BYTES[dtype] > buffer.byteLength) {
      throw new RangeError(`${dtype}[${shape.join(', ')}] does not fit in ${buffer.byteLength - byteOffset} bytes`);
    }
    return new Tensor(dtype, shape, viewOf(dtype, buffer, byteOffset, size));
  }

  static zeros<D extends DType>(dtype: D, shape: readonly number[]): Tensor<D> {
    const size = shapeSize(shape);
    return new Tensor(dtype, shape, viewOf(dtype, new ArrayBuffer(size * DTYPE_BYTES[dtype]), 0, size));
  }

  static fromFloat32(shape: readonly number[], values: ArrayLike<number>): Tensor<'f32'> {
    return new Tensor('f32', shape, Float32Array.from(values));
  }

  // Same values, another shape (no copy). One dimension may be -1.
  reshape(shape: readonly number[]): Tensor<D> {
    const known = shape.filter((d) => d !== -1);
    const inferred = shape.length - known.length;
    if (inferred > 1) throw new RangeError('reshape: at most one -1');
    const knownSize = shapeSize(known);
    if (inferred && (knownSize === 0 || this.size % knownSize !== 0)) {
      throw new RangeError(`reshape: [${shape.join(', ')}] does not match [${this.shape.join(', ')}]`);
    }
    const full = inferred ? shape.map((d) => (d === -1 ? this.size / knownSize : d)) : [...shape];
    if (shapeSize(full) !== this.size) {
      throw new RangeError(`reshape: [${shape.join(', ')}] does not match [${this.shape.join(', ')}]`);
    }
    return new Tensor(this.dtype, full, this.data);
  }

  // The values as float32 (a copy for bf16/f16/integers; the same array for f32).
  toFloat32(): Float32Array {
    const data = this.data;
    if (data instanceof Float32Array) return data;
    const out = new Float32Array(data.length);
    if (this.dtype === 'bf16') {
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < data.length; i++) bits[i] = (data[i] as number) << 16;
    } else if (this.dtype === 'f16') {
      for (let i = 0; i < data.length; i++) out[i] = f16ToF32(data[i] as number);
    } else if (data instanceof BigInt64Array) {
      for (let i = 0; i < data.length; i++) out[i] = Number(data[i]);
    } else {
      for (let i = 0; i < data.length; i++) out[i] = data[i] as number;
    }
    return out;
  }

  toString(): string {
    return `Tensor(${this.dtype}[${this.shape.join(', ')}])`;
  }
}
