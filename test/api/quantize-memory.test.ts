// Quantizing on load gives the float copy back: once a linear weight is quantized, its pages of the
// memory-mapped float checkpoint are released, so loading `weights: 'int8' | 'q4'` from an f32 or
// bf16 folder does not keep the float LLM resident beside the quantized one.
//
// Measured page by page where it can be: on Linux, /proc/self/maps locates the checkpoint's
// mapping in this process and /proc/self/pagemap says which of its pages are resident. After the
// load, no page lying wholly inside an LLM layer's weight may be resident; after a load at stored
// precision and a call, which read those weights in place, they are (the check's counterpart, so it
// can fail). After dispose() following a call, the mapping is gone.
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import path from 'node:path';

import { describe, expect, it } from 'vitest';

import { demoModelDir, loadModel } from '../../lib/index.js';

const linux = process.platform === 'linux';
const PAGE = 4096;

// Resident flags of the pages of `file`'s mapping in this process (null when it is not mapped).
function residentPages(file: string): Uint8Array | null {
  const line = readFileSync('/proc/self/maps', 'utf8').split('\n').find((l) => l.trimEnd().endsWith(file));
  if (!line) return null;
  const [start, end] = line.split(' ')[0]!.split('-').map((x) => BigInt(`0x${x}`)) as [bigint, bigint];
  const pages = Number((end - start) / BigInt(PAGE));
  const map = Buffer.alloc(pages * 8);
  const fd = openSync('/proc/self/pagemap', 'r');
  try {
    readSync(fd, map, 0, map.length, Number(start / BigInt(PAGE)) * 8);
  } finally {
    closeSync(fd);
  }
  const out = new Uint8Array(pages);
  for (let i = 0; i < pages; i++) out[i] = map.readBigUInt64LE(i * 8) >> 63n === 1n ? 1 : 0; // bit 63: present
  return out;
}

// The pages lying wholly inside the named tensors' bytes (offsets from the start of the file).
function interiorPages(file: string, pattern: RegExp): { pages: number[]; tensors: number } {
  const fd = openSync(file, 'r');
  try {
    const head = Buffer.alloc(8);
    readSync(fd, head, 0, 8, 0);
    const n = Number(head.readBigUInt64LE(0));
    const json = Buffer.alloc(n);
    readSync(fd, json, 0, n, 8);
    const header = JSON.parse(json.toString('utf8')) as Record<string, { data_offsets?: [number, number] }>;
    const pages: number[] = [];
    let tensors = 0;
    for (const [name, t] of Object.entries(header)) {
      if (!pattern.test(name) || !t.data_offsets) continue;
      tensors++;
      const begin = 8 + n + t.data_offsets[0], end = 8 + n + t.data_offsets[1];
      for (let p = Math.ceil(begin / PAGE); p < Math.floor(end / PAGE); p++) pages.push(p);
    }
    return { pages, tensors };
  } finally {
    closeSync(fd);
  }
}

describe.skipIf(!linux)('quantizing on load releases the float pages (Linux: /proc/self/smaps)', () => {
  // The shipped demo checkpoint (bf16): its LLM layers are 128-352 KB each, far above a page.
  const dir = demoModelDir();

  it('int8 and q4 loads keep none of the LLM layers\' float pages resident; a stored-precision load does', async () => {
    const file = path.join(dir, 'model.safetensors');
    const llm = interiorPages(file, /^language_model\.model\.layers\.\d+\.(self_attn|mlp)\.\w+_proj\.weight$/);
    expect(llm.tensors).toBeGreaterThan(0);
    expect(llm.pages.length).toBeGreaterThan(16 * llm.tensors);
    const residentOf = (flags: Uint8Array) => llm.pages.filter((p) => flags[p] === 1).length;
    for (const weights of ['int8', 'q4'] as const) {
      const model = await loadModel(dir, { device: 'cpu', weights });
      try {
        expect(model.info.llm.weights).toBe(weights);
        expect(residentOf(residentPages(file)!), `${weights}: resident pages of ${llm.pages.length} inside the LLM layers`).toBe(0);
        // Still answers after its source pages went: nothing reads the released float bytes.
        const reply = await model.chat([{ role: 'user', content: 'what colour is the shape?' }], { maxNewTokens: 2, seed: 1 });
        expect(reply.tokens.length).toBeGreaterThan(0);
        expect(residentOf(residentPages(file)!), `${weights}: after a call`).toBe(0);
      } finally {
        await model.dispose();
      }
      // dispose() unmaps the checkpoint at once, not at the next garbage collection (a finished
      // call's turn once kept the model alive until then).
      expect(residentPages(file), `${weights}: the mapping after dispose()`).toBeNull();
    }
    const stored = await loadModel(dir, { device: 'cpu' });
    try {
      await stored.chat([{ role: 'user', content: 'what colour is the shape?' }], { maxNewTokens: 2, seed: 1 });
      expect(residentOf(residentPages(file)!)).toBeGreaterThan(llm.pages.length / 2);
    } finally {
      await stored.dispose();
    }
  });
});
