// Quantizing on load gives the float copy back: once a linear weight is quantized, its pages of the
// memory-mapped float checkpoint are released, so loading `weights: 'int8' | 'q4'` from an f32 or
// bf16 folder does not keep the float LLM resident beside the quantized one. And a weight the
// loader applies once (VAR's AdaLN projections of its fixed condition) is not kept at all.
//
// Measured page by page where it can be: on Linux, /proc/self/maps locates the checkpoint's
// mapping in this process and /proc/self/pagemap says which of its pages are resident. After the
// load and after a call, no page lying wholly inside an LLM layer's weight may be resident unless
// the kernel's fault-around put it there: a read fault on a file mapping also maps the neighbours
// still in the page cache, within a window aligned in the address space (fault_around_bytes,
// 64 KiB by default). So when a page the runtime does read (a norm weight between two projections,
// say) is reclaimed under memory pressure and read again, released neighbours in its window come
// back mapped without anything reading them. A resident interior page is therefore allowed only in
// a window that also holds a resident page outside the LLM layers' interiors; a runtime that read a
// released weight would fault in windows lying wholly inside it, which fails. After a load at
// stored precision and a call, which read those weights in place, they are resident and most of
// them unexcused (the check's counterpart, so it can fail). After dispose() following a call, the
// mapping is gone.
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import path from 'node:path';

import { describe, expect, it } from 'vitest';

import { loadModel } from '../../lib/index.js';
import { repoRoot } from '../helpers/paths.js';

const linux = process.platform === 'linux';
const PAGE = 4096;

// Resident flags of the pages of `file`'s mapping in this process, and the mapping's first page
// number in the address space (null when it is not mapped).
interface Residency {
  flags: Uint8Array;
  firstPage: number;
}
function residentPages(file: string): Residency | null {
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
  return { flags: out, firstPage: Number(start / BigInt(PAGE)) };
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

// The kernel's default fault-around window, in pages (fault_around_bytes = 64 KiB).
const FAULT_AROUND_PAGES = 16;

// The resident pages of `interior` that fault-around cannot explain: those whose window holds no
// resident page outside `interior`. The windows are aligned in the address space, not the file.
function unexplainedResident({ flags, firstPage }: Residency, interior: Set<number>): number[] {
  return [...interior].filter((p) => {
    if (flags[p] !== 1) return false;
    const first = Math.max(0, p - ((firstPage + p) % FAULT_AROUND_PAGES));
    for (let q = first; q < Math.min(flags.length, first + FAULT_AROUND_PAGES); q++) {
      if (!interior.has(q) && flags[q] === 1) return false;
    }
    return true;
  });
}

describe.skipIf(!linux)('quantizing on load releases the float pages (Linux: /proc/self/pagemap)', () => {
  // The demo model's bf16 master (the package ships its int8 copy): its LLM layers are 128-352 KB
  // each, far above a page.
  const dir = path.join(repoRoot, 'training', 'demo', 'model-bf16');

  it('int8 and q4 loads keep none of the LLM layers\' float pages resident; a stored-precision load does', async () => {
    const file = path.join(dir, 'model.safetensors');
    const llm = interiorPages(file, /^language_model\.model\.layers\.\d+\.(self_attn|mlp)\.\w+_proj\.weight$/);
    expect(llm.tensors).toBeGreaterThan(0);
    expect(llm.pages.length).toBeGreaterThan(16 * llm.tensors);
    const interior = new Set(llm.pages);
    const residentOf = ({ flags }: Residency) => llm.pages.filter((p) => flags[p] === 1).length;
    for (const weights of ['int8', 'q4'] as const) {
      const model = await loadModel(dir, { device: 'cpu', weights });
      try {
        expect(model.info.llm.weights).toBe(weights);
        const loaded = residentPages(file)!;
        expect(unexplainedResident(loaded, interior), `${weights}: resident pages inside the LLM layers after the load`).toEqual([]);
        // Still answers after its source pages went: nothing reads the released float bytes.
        const reply = await model.chat([{ role: 'user', content: 'what colour is the shape?' }], { maxNewTokens: 2, seed: 1 });
        expect(reply.tokens.length).toBeGreaterThan(0);
        const called = residentPages(file)!;
        expect(unexplainedResident(called, interior), `${weights}: resident pages inside the LLM layers after a call`).toEqual([]);
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
      const flags = residentPages(file)!;
      expect(residentOf(flags)).toBeGreaterThan(llm.pages.length / 2);
      // Most of them lie in windows wholly inside one weight, which the check above does not excuse.
      expect(unexplainedResident(flags, interior).length).toBeGreaterThan(llm.pages.length / 2);
    } finally {
      await stored.dispose();
    }
  });

  // VARGPT v1's VAR conditions every block on one fixed vector, so each block's AdaLN projection (a
  // third of its weights) acts once, at load; the loader keeps the product and gives the projection
  // back. Checked at the stored precision, where nothing else would release those pages, after the
  // load and after a drawing.
  it('VAR\'s AdaLN projections are read once at load and not kept resident', async () => {
    const file = path.join(dir, 'model.safetensors');
    const ada = interiorPages(file, /^vargpt_gen\.(blocks\.\d+\.|head_nm\.)ada_lin\.1\.weight$/);
    expect(ada.tensors).toBeGreaterThan(1);
    expect(ada.pages.length).toBeGreaterThan(16 * ada.tensors);
    const interior = new Set(ada.pages);
    const model = await loadModel(dir, { device: 'cpu' });
    try {
      const info = model.info;
      if (info.family !== 'vargpt-v1') throw new Error(`expected a VARGPT v1 checkpoint, got ${info.family}`);
      expect(info.var?.weights).toBe('bf16');
      expect(unexplainedResident(residentPages(file)!, interior), 'after the load').toEqual([]);
      const drawn = await model.generateImage('draw a red circle', { seed: 1 });
      expect(drawn.image.width).toBe(64);
      expect(unexplainedResident(residentPages(file)!, interior), 'after a drawing').toEqual([]);
    } finally {
      await model.dispose();
    }
  });
});
