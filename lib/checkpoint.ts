// Read access to safetensors checkpoints (a single file, or a folder with model.safetensors or a
// sharded model.safetensors.index.json). Files are memory-mapped natively and validated before
// any tensor is handed out; read() returns a view over the mapping without copying.
import { native, type NativeCheckpoint } from './native.js';
import { Tensor, type DType } from './tensor.js';

export interface TensorEntry {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly byteLength: number;
}

export class Checkpoint {
  readonly path: string;
  readonly tensors: readonly TensorEntry[];
  readonly #native: NativeCheckpoint;
  readonly #byName: Map<string, TensorEntry>;

  private constructor(path: string, handle: NativeCheckpoint) {
    this.path = path;
    this.#native = handle;
    this.tensors = Object.freeze(handle.list().map((t) => Object.freeze({ ...t, shape: Object.freeze([...t.shape]) })));
    this.#byName = new Map(this.tensors.map((t) => [t.name, t]));
  }

  static async open(path: string): Promise<Checkpoint> {
    if (typeof path !== 'string' || path.length === 0) throw new TypeError('Checkpoint.open(path): path must be a non-empty string');
    return new Checkpoint(path, await native().openCheckpoint(path));
  }

  has(name: string): boolean {
    return this.#byName.has(name);
  }

  entry(name: string): TensorEntry {
    const entry = this.#byName.get(name);
    if (!entry) throw new RangeError(`${this.path}: no tensor named "${name}"`);
    return entry;
  }

  // A typed view of the tensor's bytes (bf16/f16 as Uint16Array: use toFloat32()).
  read(name: string): Tensor {
    const t = this.#native.read(name);
    return Tensor.fromBuffer(t.dtype, t.shape, t.data);
  }

  metadata(): Record<string, string> {
    return this.#native.metadata();
  }
}
