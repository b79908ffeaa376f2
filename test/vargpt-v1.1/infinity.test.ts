// The VARGPT-v1.1 fixture's Infinity decoder alone (attentive pool, shared-AdaLN blocks with
// cosine self-attention, 2D RoPE and a block-causal scale cache, bf16 cross-attention, AdaLN head)
// against upstream: the AdaLN condition, then every scale of the recorded schedule run in order
// through one cache, comparing every block's output and both rows' logits. Tolerance: 4x each
// tensor's float32-vs-float64 spread from the fixture, never tighter than 1e-5 of max|ref|.
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { native, type NativeInfinity, type NativeInfinityCache, type NativeTensor } from '../../lib/native.js';
import { asFloat32, readJson, readSafetensors, type StTensor } from '../helpers/fixtures.js';
import { expectClose, reportObserved, spreadTolerance } from '../helpers/model-fixture.js';
import { v11ExpectedDir, v11ModelDir } from '../helpers/paths.js';

interface Expected {
  scale_schedule: [number, number, number][];
  tensors: Record<string, { f32_vs_f64?: { rel_err_maxnorm?: number } }>;
}

interface Case {
  name: string;
  tensors: Map<string, StTensor>;
  json: Expected;
}

const cases: Case[] = ['generation', 'editing'].map((name) => ({
  name,
  tensors: readSafetensors(path.join(v11ExpectedDir, `${name}.safetensors`)),
  json: readJson<Expected>(path.join(v11ExpectedDir, `${name}.json`)),
}));

function get(c: Case, name: string): StTensor {
  const t = c.tensors.get(name);
  if (!t) throw new Error(`${c.name}: fixture tensor ${name} is missing`);
  return t;
}

function values(c: Case, name: string): Float32Array {
  return asFloat32(get(c, name));
}

function tolerance(c: Case, tensor: string): number {
  return spreadTolerance(c.json.tensors, tensor, c.name);
}

function f32(t: NativeTensor): Float32Array {
  expect(t.dtype).toBe('f32');
  return new Float32Array(t.data);
}

// The conditional pool row: sos_embedding[image_gen_start_token_id] of the checkpoint (bf16).
function sosRow(): Float32Array {
  const config = readJson<{ special_tokens: { image_gen_start_token_id: number } }>(path.join(v11ModelDir, 'config.json'));
  const table = readSafetensors(path.join(v11ModelDir, 'model.safetensors')).get('sos_embedding.weight');
  if (!table || table.dtype !== 'BF16') throw new Error('sos_embedding.weight (bf16) is missing');
  const C = table.shape[1]!;
  const id = config.special_tokens.image_gen_start_token_id;
  const out = new Float32Array(C);
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < C; i++) bits[i] = table.bytes.readUInt16LE((id * C + i) * 2) << 16;
  return out;
}

interface ScaleRun {
  blockOut: Float32Array;
  logitsCond: Float32Array;
  logitsUncond: Float32Array;
}

// Every scale of the schedule in order through `cache`, from the fixture's block inputs.
async function runScales(inf: NativeInfinity, c: Case, cache: NativeInfinityCache): Promise<ScaleRun[]> {
  const out: ScaleRun[] = [];
  for (const [si, [, h, w]] of c.json.scale_schedule.entries()) {
    const r = await inf.forward({ x: values(c, `s${si}.block_input`), h, w, cache, blockOutputs: true });
    out.push({ blockOut: f32(r.blockOut!), logitsCond: f32(r.logitsCond), logitsUncond: f32(r.logitsUncond) });
  }
  return out;
}

function newCache(inf: NativeInfinity, c: Case, kvDtype: 'f32' | 'bf16' = 'f32'): Promise<NativeInfinityCache> {
  return inf.newCache({
    cond: values(c, 'adaln_cond'),
    context: values(c, 'ca_context_cond'),
    contextUncond: values(c, 'ca_context_uncond'),
    kvDtype,
  });
}

describe('VARGPT-v1.1 Infinity decoder against the fixture', () => {
  let inf: NativeInfinity;
  beforeAll(async () => {
    inf = await native().loadInfinity(v11ModelDir, 'cpu');
  });
  afterAll(() => {
    reportObserved('Infinity');
  });

  it('derives its sizes from tensor shapes', () => {
    const c = inf.config();
    const gen = cases[0]!;
    expect(c).toMatchObject({ depth: 4, width: 128, heads: 2, headDim: 64, mlpHidden: 512, bits: 32, uncondRows: 512, levels: 15 });
    expect(get(gen, 's0.block_out').shape).toEqual([c.depth, 2, 1, c.width]);
    expect(get(gen, 's0.logits_cond').shape).toEqual([1, 2 * c.bits]);
  });

  describe.each(cases)('$name', (c) => {
    it('AdaLN condition: attentive pool of text_norm(sos row | cfg_uncond[0]), shared_ada_lin, scale-0 start input', async () => {
      const r = await inf.condition(sosRow());
      expect(r.cond.shape).toEqual([2, 128]);
      expect(r.gss.shape).toEqual(get(c, 'adaln_gss').shape);
      expectClose(`${c.name}.adaln_cond`, f32(r.cond), values(c, 'adaln_cond'), tolerance(c, 'adaln_cond'));
      expectClose(`${c.name}.adaln_gss`, f32(r.gss), values(c, 'adaln_gss'), tolerance(c, 'adaln_gss'));
      expectClose(`${c.name}.sos_gen_input`, f32(r.startInput), values(c, 'sos_gen_input'), tolerance(c, 'sos_gen_input'));
      // The unconditional row given explicitly is the default one.
      const cfg0 = f32(await inf.uncondRows(1));
      const explicit = await inf.condition(sosRow(), cfg0);
      expect(Array.from(f32(explicit.cond))).toEqual(Array.from(f32(r.cond)));
    });

    it('the unconditional context is the raw cfg_uncond rows', async () => {
      const L = get(c, 'ca_context_cond').shape[0]!;
      const u = await inf.uncondRows(L);
      expect(u.shape).toEqual([L, 128]);
      expect(Array.from(f32(u))).toEqual(Array.from(values(c, 'ca_context_uncond')));
    });

    it('word_embed of each scale\'s codes (the next input map, channel-major in the fixture)', async () => {
      for (let si = 1; si < c.json.scale_schedule.length; si++) {
        const map = get(c, `s${si - 1}.next_input`);
        const [d, h, w] = map.shape as [number, number, number];
        const planes = asFloat32(map);
        const rows = new Float32Array(d * h * w);
        for (let ch = 0; ch < d; ch++) for (let t = 0; t < h * w; t++) rows[t * d + ch] = planes[ch * h * w + t]!;
        const out = await inf.embedCodes(rows);
        expect(out.shape).toEqual(get(c, `s${si}.word_embed_out`).shape);
        expectClose(`${c.name}.s${si}.word_embed_out`, f32(out), values(c, `s${si}.word_embed_out`), tolerance(c, `s${si}.word_embed_out`));
      }
    });

    it('every scale through one cache: each block and both rows of logits', async () => {
      const cache = await newCache(inf, c);
      expect(cache.length).toBe(0);
      const runs = await runScales(inf, c, cache);
      let tokens = 0;
      for (const [si, [, h, w]] of c.json.scale_schedule.entries()) {
        tokens += h * w;
        const run = runs[si]!;
        for (const t of ['block_out', 'logits_cond', 'logits_uncond'] as const) {
          const got = t === 'block_out' ? run.blockOut : t === 'logits_cond' ? run.logitsCond : run.logitsUncond;
          expectClose(`${c.name}.s${si}.${t}`, got, values(c, `s${si}.${t}`), tolerance(c, `s${si}.${t}`));
        }
      }
      expect(cache.length).toBe(tokens);
    });

    it('adds the level embedding itself when given the scale index', async () => {
      const cache = await newCache(inf, c);
      for (const [si, [, h, w]] of c.json.scale_schedule.entries()) {
        const r = await inf.forward({ x: values(c, `s${si}.infinity_input`), h, w, cache, scale: si, blockOutputs: true });
        expectClose(`${c.name}.s${si}.block_out (lvl_embed)`, f32(r.blockOut!), values(c, `s${si}.block_out`), tolerance(c, `s${si}.block_out`));
      }
    });

    it('a bf16 self-attention cache stays within the tolerance', async () => {
      const runs = await runScales(inf, c, await newCache(inf, c, 'bf16'));
      for (const [si] of c.json.scale_schedule.entries()) {
        expectClose(`${c.name}.s${si}.block_out (bf16 cache)`, runs[si]!.blockOut, values(c, `s${si}.block_out`), tolerance(c, `s${si}.block_out`));
        expectClose(`${c.name}.s${si}.logits_cond (bf16 cache)`, runs[si]!.logitsCond, values(c, `s${si}.logits_cond`), tolerance(c, `s${si}.logits_cond`));
      }
    });
  });

  it('two caches interleaved give what each gives alone (contexts of different lengths)', async () => {
    const [gen, edit] = cases as [Case, Case];
    expect(get(gen, 'ca_context_cond').shape[0]).not.toBe(get(edit, 'ca_context_cond').shape[0]);
    const aloneGen = await runScales(inf, gen, await newCache(inf, gen));
    const aloneEdit = await runScales(inf, edit, await newCache(inf, edit));
    const a = await newCache(inf, gen);
    const b = await newCache(inf, edit);
    for (const [si, [, h, w]] of gen.json.scale_schedule.entries()) {
      // Issued together: the calls queue and run one at a time, each on its own cache.
      const [ra, rb] = await Promise.all([
        inf.forward({ x: values(gen, `s${si}.block_input`), h, w, cache: a, blockOutputs: true }),
        inf.forward({ x: values(edit, `s${si}.block_input`), h, w, cache: b, blockOutputs: true }),
      ]);
      expect(Array.from(f32(ra.blockOut!))).toEqual(Array.from(aloneGen[si]!.blockOut));
      expect(Array.from(f32(ra.logitsCond))).toEqual(Array.from(aloneGen[si]!.logitsCond));
      expect(Array.from(f32(rb.blockOut!))).toEqual(Array.from(aloneEdit[si]!.blockOut));
      expect(Array.from(f32(rb.logitsUncond))).toEqual(Array.from(aloneEdit[si]!.logitsUncond));
    }
    // The two images differ, so equality above is not two copies of one computation.
    expect(Array.from(aloneGen[4]!.logitsCond)).not.toEqual(Array.from(aloneEdit[4]!.logitsCond));
  });

  it('rejects bad input with clear errors and stays usable', async () => {
    const c = cases[0]!;
    const cache = await newCache(inf, c);
    const x0 = values(c, 's0.block_input');
    await expect(inf.forward({ x: x0.subarray(1), h: 1, w: 1, cache })).rejects.toThrow(/x has 255 values, expected 2 x 1 x 128 for a 1x1 scale/);
    await expect(inf.forward({ x: x0, h: 2, w: 2, cache })).rejects.toThrow(/expected 2 x 4 x 128 for a 2x2 scale/);
    await expect(inf.forward({ x: x0, h: 0, w: 1, cache })).rejects.toThrow(/bad scale size 0x1/);
    await expect(inf.forward({ x: x0, h: 1.5, w: 1, cache })).rejects.toThrow(/h must be an integer/);
    await expect(inf.forward({ x: x0, h: 1, w: 1, cache, scale: 15 })).rejects.toThrow(/scale 15 has no level embedding \(lvl_embed has 15 rows\)/);
    await expect(inf.forward({ x: x0, h: 1, w: 1, cache: {} as NativeInfinityCache })).rejects.toThrow(/cache must come from this addon's infinity.newCache\(\)/);
    const other = await native().loadInfinity(v11ModelDir, 'cpu');
    const foreign = await other.newCache({ cond: values(c, 'adaln_cond'), context: values(c, 'ca_context_cond') });
    await expect(inf.forward({ x: x0, h: 1, w: 1, cache: foreign })).rejects.toThrow(/the cache belongs to another Infinity decoder/);
    await expect(inf.newCache({ cond: values(c, 'adaln_cond').subarray(1), context: values(c, 'ca_context_cond') })).rejects.toThrow(
      /cond has 255 values, expected 2 x 128/,
    );
    await expect(inf.newCache({ cond: values(c, 'adaln_cond'), context: values(c, 'ca_context_cond').subarray(1) })).rejects.toThrow(
      /context has 3839 values, expected a positive multiple of 128/,
    );
    // A conditional context longer than cfg_uncond has no default unconditional counterpart.
    await expect(inf.newCache({ cond: values(c, 'adaln_cond'), context: new Float32Array(513 * 128).fill(0.5) })).rejects.toThrow(
      /an unconditional context of 513 rows; cfg_uncond holds 1 to 512/,
    );
    await expect(
      inf.newCache({ cond: values(c, 'adaln_cond'), context: values(c, 'ca_context_cond'), kvDtype: 'f16' as unknown as 'bf16' }),
    ).rejects.toThrow(/kvDtype must be 'f32' or 'bf16'/);
    await expect(inf.condition(new Float32Array(100))).rejects.toThrow(/rowsCond has 100 values, expected a positive multiple of 128/);
    await expect(inf.condition(new Float32Array(0))).rejects.toThrow(/rowsCond has 0 values/);
    await expect(inf.embedCodes(new Float32Array(33))).rejects.toThrow(/codes has 33 values, expected a positive multiple of 32/);
    await expect(inf.uncondRows(0)).rejects.toThrow(/L = 0 outside \[1, 512\]/);
    // Nothing above touched the cache: the scales still run and match.
    expect(cache.length).toBe(0);
    const runs = await runScales(inf, c, cache);
    expectClose('generation.s4.logits_cond (after errors)', runs[4]!.logitsCond, values(c, 's4.logits_cond'), tolerance(c, 's4.logits_cond'));
  });
});
