// Deterministic random numbers for synthesized weights. Every tensor gets its own stream, keyed
// by (seed, tensor name), so a tensor's values do not depend on the order tensors are written,
// on sharding, or on the stored dtype (an f32 and a bf16 checkpoint of one seed hold the same
// numbers up to rounding). xoshiro128** for uniforms, a ziggurat for normals.

// FNV-1a over the UTF-16 code units, then mixed with the seed (splitmix32-style finaliser).
function mix32(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x7feb352d);
  x = Math.imul(x ^ (x >>> 15), 0x846ca68b);
  return (x ^ (x >>> 16)) >>> 0;
}

function hashString(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

export class TensorRng {
  // xoshiro128** state, kept as int32 so V8 stays on small integers.
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  constructor(seed: number, name: string) {
    const lo = seed >>> 0;
    const hi = Math.floor(seed / 2 ** 32) >>> 0;
    let k = mix32(hashString(name) ^ mix32(lo ^ mix32(hi + 0x9e3779b9)));
    const next = () => {
      k = (k + 0x9e3779b9) >>> 0;
      return mix32(k) | 0;
    };
    this.s0 = next();
    this.s1 = next();
    this.s2 = next();
    this.s3 = next();
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  // 32 random bits as an unsigned number.
  nextU32(): number {
    let s0 = this.s0, s1 = this.s1, s2 = this.s2, s3 = this.s3;
    const x = Math.imul(rotl(Math.imul(s1, 5), 7), 9);
    const t = s1 << 9;
    s2 ^= s0;
    s3 ^= s1;
    s1 ^= s2;
    s0 ^= s3;
    s2 ^= t;
    s3 = rotl(s3, 11);
    this.s0 = s0;
    this.s1 = s1;
    this.s2 = s2;
    this.s3 = s3;
    return x >>> 0;
  }

  // Uniform in (0, 1), 24 bits.
  private uniform(): number {
    return ((this.nextU32() >>> 8) + 0.5) * 5.9604644775390625e-8;
  }

  // Fills `out` with N(mean, std^2) by Marsaglia & Tsang's ziggurat (128 layers): one 32-bit draw,
  // a multiply and a compare per value on the fast path (~98.8% of draws), several times faster
  // than Box-Muller in JavaScript -- this is the synthesizer's hot loop (9.3e9 values for the
  // full-size preset). The state lives in locals while the loop runs.
  fillNormal(out: Float32Array, mean: number, std: number): void {
    let s0 = this.s0, s1 = this.s1, s2 = this.s2, s3 = this.s3;
    const n = out.length;
    for (let i = 0; i < n; i++) {
      const hz = Math.imul(rotl(Math.imul(s1, 5), 7), 9);
      const t = s1 << 9;
      s2 ^= s0;
      s3 ^= s1;
      s1 ^= s2;
      s0 ^= s3;
      s2 ^= t;
      s3 = rotl(s3, 11);
      const iz = hz & 127;
      if (Math.abs(hz) < (KN[iz] as number)) {
        out[i] = mean + std * hz * (WN[iz] as number);
      } else {
        this.s0 = s0;
        this.s1 = s1;
        this.s2 = s2;
        this.s3 = s3;
        out[i] = mean + std * this.slowNormal(hz, iz);
        s0 = this.s0;
        s1 = this.s1;
        s2 = this.s2;
        s3 = this.s3;
      }
    }
    this.s0 = s0;
    this.s1 = s1;
    this.s2 = s2;
    this.s3 = s3;
  }

  // The ziggurat's rejection path (Marsaglia & Tsang's nfix): the tail beyond R, or a wedge test.
  private slowNormal(hz: number, iz: number): number {
    for (;;) {
      const x = hz * (WN[iz] as number);
      if (iz === 0) {
        let tx: number, ty: number;
        do {
          tx = -Math.log(this.uniform()) / ZIG_R;
          ty = -Math.log(this.uniform());
        } while (ty + ty < tx * tx);
        return hz > 0 ? ZIG_R + tx : -ZIG_R - tx;
      }
      if ((FN[iz] as number) + this.uniform() * ((FN[iz - 1] as number) - (FN[iz] as number)) < Math.exp(-0.5 * x * x)) return x;
      hz = this.nextU32() | 0;
      iz = hz & 127;
      if (Math.abs(hz) < (KN[iz] as number)) return hz * (WN[iz] as number);
    }
  }
}

// Ziggurat tables for 128 layers (Marsaglia & Tsang 2000, "The Ziggurat Method for Generating
// Random Variables", zigset for RNOR).
const ZIG_R = 3.442619855899;
const KN = new Float64Array(128);
const WN = new Float64Array(128);
const FN = new Float64Array(128);
{
  const m1 = 2147483648.0;
  const vn = 9.91256303526217e-3;
  let dn = ZIG_R;
  let tn = dn;
  const q = vn / Math.exp(-0.5 * dn * dn);
  KN[0] = (dn / q) * m1;
  KN[1] = 0;
  WN[0] = q / m1;
  WN[127] = dn / m1;
  FN[0] = 1;
  FN[127] = Math.exp(-0.5 * dn * dn);
  for (let i = 126; i >= 1; i--) {
    dn = Math.sqrt(-2 * Math.log(vn / dn + Math.exp(-0.5 * dn * dn)));
    KN[i + 1] = (dn / tn) * m1;
    tn = dn;
    FN[i] = Math.exp(-0.5 * dn * dn);
    WN[i] = dn / m1;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
