// Builds safetensors files byte by byte, including deliberately broken ones, so the loader's
// validation can be tested without trusting any other writer.
export interface RawTensorSpec {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

export function encodeHeader(header: unknown): Buffer {
  return Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf8');
}

// [u64 little-endian header length][header][data]; headerLength overrides the stored length.
export function safetensorsBytes(header: unknown, data: Buffer = Buffer.alloc(0), headerLength?: bigint): Buffer {
  const json = encodeHeader(header);
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(headerLength ?? BigInt(json.length));
  return Buffer.concat([prefix, json, data]);
}

// A valid file holding f32 tensors with the given values, laid out back to back.
export function validF32File(tensors: Record<string, { shape: number[]; values: Float32Array }>): Buffer {
  const header: Record<string, RawTensorSpec> = {};
  const chunks: Buffer[] = [];
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    const bytes = Buffer.from(t.values.buffer, t.values.byteOffset, t.values.byteLength);
    header[name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + bytes.length] };
    chunks.push(bytes);
    offset += bytes.length;
  }
  return safetensorsBytes(header, Buffer.concat(chunks));
}
