// AMX kernels of the packed GEMM (Intel Advanced Matrix Extensions: eight 1 KB tile registers and
// a bf16 tile multiply, TDPBF16PS, that accumulates in f32). The driver is gemm.cc's; this file
// packs A and B into tiles and runs the 32 x 32 micro-kernel. Compiled with AMX and AVX-512 flags
// and only called once gemm.cc has checked the CPU, the OS and the Linux tile permission.
//
// Precision: the tile multiply takes bf16 operands, and rounding f32 activations to bf16 would
// cost ~3 significant digits against the other paths. So every f32 operand is split into three
// bf16 terms, hi = bf16(x), mid = bf16(x - hi), lo = bf16(x - hi - mid), whose sum is x exactly
// (each term takes the next 8 bits of the 24-bit significand, sign included). Each bf16 x bf16
// product is exact in f32, so:
// - bf16 weights: A·B = (hi + mid + lo)·B, three tile products, exact up to the f32 accumulation
//   order, like the AVX-512 path.
// - f32 weights (split the same way): the six term products of relative size >= 2^-16
//   (hi·hi, hi·mid, mid·hi, hi·lo, lo·hi, mid·mid); the three left out are below 2^-23 of the
//   product, i.e. within an f32 rounding of it.
// The terms are applied smallest first, so the large products are added to a sum that already
// holds the small ones. One difference remains: the tile unit treats bf16 subnormals as zero, so
// an x below 2^-110 or so loses its low terms (far under any activation this runtime sees).
// GCC 12 warns that the placeholder operand inside _mm512_cvtepu16_epi32 / _mm512_castsi512_si256
// "may be used uninitialized" once they are inlined here (GCC bug 105593, fixed in GCC 13).
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "gemm.h"
#include "simd_avx512.h"

namespace vargpt::cpu {

namespace {

// Tiles: C 0..3 (a 2 x 2 grid of 16 x 16 f32), A 4..5 (16 rows x 32 bf16), B 6..7 (16 k-pairs
// x 16 columns x 2 bf16). All are 16 rows of 64 bytes.
// A constant in memory: GCC 12 drops stores into a local configuration that only
// _tile_loadconfig reads, which leaves the tiles unconfigured (#UD on the first tile instruction).
struct alignas(64) TileConfig {
  uint8_t palette;
  uint8_t start_row;
  uint8_t reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};
constexpr TileConfig kTileConfig = {1, 0, {}, {64, 64, 64, 64, 64, 64, 64, 64}, {16, 16, 16, 16, 16, 16, 16, 16}};

void begin() { _tile_loadconfig(&kTileConfig); }

void end() { _tile_release(); }

// 32 f32 values (two vectors) split into three rows of 32 bf16: hi, mid, lo.
inline void split32(__m512 x0, __m512 x1, __m512i terms[3]) {
  auto widen_lo = [](__m512i bf) {  // bf16 lanes 0..15 as f32
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_castsi512_si256(bf)), 16));
  };
  auto widen_hi = [](__m512i bf) {  // bf16 lanes 16..31 as f32
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(bf, 1)), 16));
  };
  for (int t = 0; t < 3; ++t) {
    const __m512i bf = (__m512i)_mm512_cvtne2ps_pbh(x1, x0);
    terms[t] = bf;
    x0 = _mm512_sub_ps(x0, widen_lo(bf));
    x1 = _mm512_sub_ps(x1, widen_hi(bf));
  }
}

// A rows x kc (rows <= 32) into dst[step][term][row][32]: 2 KB per (step, term), rows beyond
// `rows` and k beyond kc zero. Term order in memory: hi, mid, lo.
void pack_a(const float* A, int64_t lda, int rows, int64_t kc, uint16_t* dst) {
  const int64_t steps = (kc + kAmxStepK - 1) / kAmxStepK;
  for (int64_t s = 0; s < steps; ++s) {
    const int64_t k = s * kAmxStepK, valid = std::min<int64_t>(kAmxStepK, kc - k);
    const __mmask16 m0 = tail_mask16(valid), m1 = tail_mask16(valid - 16);
    uint16_t* step = dst + s * 3 * kAmxTermBlock;
    for (int r = 0; r < kAmxRows; ++r) {
      __m512i terms[3];
      if (r < rows) {
        const float* src = A + r * lda + k;
        split32(_mm512_maskz_loadu_ps(m0, src), _mm512_maskz_loadu_ps(m1, src + 16), terms);
      } else {
        terms[0] = terms[1] = terms[2] = _mm512_setzero_si512();
      }
      for (int t = 0; t < 3; ++t) _mm512_store_si512(step + t * kAmxTermBlock + r * 32, terms[t]);
    }
  }
}

// One 16-column tile of B in VNNI order for one step: out[p][j] = the pair (B(j, 2p), B(j, 2p+1))
// as a 32-bit word. rows[j] holds B(j, 0..31) as 16 pairs; the tile is its 16 x 16 transpose.
inline void store_vnni_tile(__m512i rows[16], uint16_t* out) {
  __m512* as_float = reinterpret_cast<__m512*>(rows);
  transpose16(as_float);
  for (int p = 0; p < 16; ++p) _mm512_store_si512(out + p * 32, rows[p]);
}

// B(n0 + j, k0 + k) for j < cols (<= 32), k < kc into dst[step][term][tile][16 pairs][16 x 2].
void pack_b(const GemmB& B, int64_t n0, int cols, int64_t k0, int64_t kc, uint16_t* dst) {
  const int64_t steps = (kc + kAmxStepK - 1) / kAmxStepK;
  const int terms = B.dtype == DType::BF16 ? 1 : 3;
  for (int64_t s = 0; s < steps; ++s) {
    const int64_t k = k0 + s * kAmxStepK, valid = std::min<int64_t>(kAmxStepK, kc - s * kAmxStepK);
    uint16_t* step = dst + s * terms * kAmxTermBlock;
    for (int tile = 0; tile < 2; ++tile) {
      __m512i rows[3][16];
      for (int j = 0; j < 16; ++j) {
        const int64_t n = tile * 16 + j;
        if (n >= cols) {
          for (int t = 0; t < terms; ++t) rows[t][j] = _mm512_setzero_si512();
          continue;
        }
        if (B.dtype == DType::BF16) {
          const uint16_t* src = static_cast<const uint16_t*>(B.data) + (n0 + n) * B.ld + k;
          rows[0][j] = _mm512_maskz_loadu_epi16(valid >= 32 ? ~__mmask32{0} : (__mmask32{1} << valid) - 1, src);
        } else {
          const float* src = static_cast<const float*>(B.data) + (n0 + n) * B.ld + k;
          __m512i split[3];
          split32(_mm512_maskz_loadu_ps(tail_mask16(valid), src), _mm512_maskz_loadu_ps(tail_mask16(valid - 16), src + 16),
                  split);
          for (int t = 0; t < 3; ++t) rows[t][j] = split[t];
        }
      }
      for (int t = 0; t < terms; ++t) store_vnni_tile(rows[t], step + t * kAmxTermBlock + tile * 512);
    }
  }
}

// GCC's tile intrinsics paste their tile number into the instruction text, so it must be a
// literal: C tiles are picked by a switch the compiler folds away.
#define VG_C_TILE(tile, op)    \
  switch (tile) {              \
    case 0: op(0); break;      \
    case 1: op(1); break;      \
    case 2: op(2); break;      \
    default: op(3); break;     \
  }

// C tile (i, j) of the 32 x 32 block: straight from/to C when it lies wholly inside the valid
// rows x cols, else through a zero-padded 16 x 16 buffer.
template <int kTile>
inline void load_c_tile(const float* C, int64_t ldc, int rows, int cols, bool load_c, float* buffer) {
  constexpr int i = kTile / 2, j = kTile % 2;
  const int r = std::min(16, rows - 16 * i), c = std::min(16, cols - 16 * j);
  const float* src = buffer;
  int64_t stride = 64;
#define VG_ZERO(t) _tile_zero(t)
#define VG_LOAD(t) _tile_loadd(t, src, stride)
  if (!load_c || r <= 0 || c <= 0) {
    VG_C_TILE(kTile, VG_ZERO);
    return;
  }
  if (r == 16 && c == 16) {
    src = C + 16 * i * ldc + 16 * j;
    stride = ldc * static_cast<int64_t>(sizeof(float));
  } else {
    std::memset(buffer, 0, 256 * sizeof(float));
    for (int y = 0; y < r; ++y) std::memcpy(buffer + y * 16, C + (16 * i + y) * ldc + 16 * j, c * sizeof(float));
  }
  VG_C_TILE(kTile, VG_LOAD);
#undef VG_ZERO
#undef VG_LOAD
}

template <int kTile>
inline void store_c_tile(float* C, int64_t ldc, int rows, int cols, float* buffer) {
  constexpr int i = kTile / 2, j = kTile % 2;
  const int r = std::min(16, rows - 16 * i), c = std::min(16, cols - 16 * j);
  if (r <= 0 || c <= 0) return;
  float* dst = buffer;
  int64_t stride = 64;
  if (r == 16 && c == 16) {
    dst = C + 16 * i * ldc + 16 * j;
    stride = ldc * static_cast<int64_t>(sizeof(float));
  }
#define VG_STORE(t) _tile_stored(t, dst, stride)
  VG_C_TILE(kTile, VG_STORE);
#undef VG_STORE
  if (dst == buffer)
    for (int y = 0; y < r; ++y) std::memcpy(C + (16 * i + y) * ldc + 16 * j, buffer + y * 16, c * sizeof(float));
}

// The (A term, B term) products, smallest first; hi = 0, mid = 1, lo = 2.
struct TermPair {
  int a, b;
};
constexpr TermPair kPairsBf16[] = {{2, 0}, {1, 0}, {0, 0}};
constexpr TermPair kPairsF32[] = {{0, 2}, {1, 1}, {0, 1}, {2, 0}, {1, 0}, {0, 0}};

// kTwoRows / kTwoCols: whether the second 16-row / 16-column half of the block holds data; a
// block of <= 16 rows (or columns) skips the products of its empty half.
template <bool kTwoRows, bool kTwoCols, int kBTerms>
void micro_block(int64_t steps, const uint16_t* Ap, const uint16_t* Bp, float* C, int64_t ldc, int rows, int cols,
                 bool load_c) {
  alignas(64) float buffer[256];
  load_c_tile<0>(C, ldc, rows, cols, load_c, buffer);
  if (kTwoCols) load_c_tile<1>(C, ldc, rows, cols, load_c, buffer);
  if (kTwoRows) load_c_tile<2>(C, ldc, rows, cols, load_c, buffer);
  if (kTwoRows && kTwoCols) load_c_tile<3>(C, ldc, rows, cols, load_c, buffer);
  const TermPair* pairs = kBTerms == 1 ? kPairsBf16 : kPairsF32;
  constexpr int kPairs = kBTerms == 1 ? 3 : 6;
  for (int64_t s = 0; s < steps; ++s) {
    const uint16_t* a = Ap + s * 3 * kAmxTermBlock;
    const uint16_t* b = Bp + s * kBTerms * kAmxTermBlock;
    int loaded_b = -1;
    for (int p = 0; p < kPairs; ++p) {
      if (pairs[p].b != loaded_b) {
        loaded_b = pairs[p].b;
        const uint16_t* bt = b + loaded_b * kAmxTermBlock;
        _tile_loadd(6, bt, 64);
        if (kTwoCols) _tile_loadd(7, bt + 512, 64);
      }
      // Each A tile is loaded right before its own products: a tile load waits for the products
      // still reading the register it overwrites, so loading both A tiles up front would stall
      // the second one behind the products of the first.
      const uint16_t* at = a + pairs[p].a * kAmxTermBlock;
      _tile_loadd(4, at, 64);
      _tile_dpbf16ps(0, 4, 6);
      if (kTwoCols) _tile_dpbf16ps(1, 4, 7);
      if (kTwoRows) {
        _tile_loadd(5, at + 512, 64);
        _tile_dpbf16ps(2, 5, 6);
        if (kTwoCols) _tile_dpbf16ps(3, 5, 7);
      }
    }
  }
  store_c_tile<0>(C, ldc, rows, cols, buffer);
  if (kTwoCols) store_c_tile<1>(C, ldc, rows, cols, buffer);
  if (kTwoRows) store_c_tile<2>(C, ldc, rows, cols, buffer);
  if (kTwoRows && kTwoCols) store_c_tile<3>(C, ldc, rows, cols, buffer);
}

template <int kBTerms>
void micro_terms(int64_t steps, const uint16_t* Ap, const uint16_t* Bp, float* C, int64_t ldc, int rows, int cols,
                 bool load_c) {
  const bool two_rows = rows > 16, two_cols = cols > 16;
  if (two_rows && two_cols) return micro_block<true, true, kBTerms>(steps, Ap, Bp, C, ldc, rows, cols, load_c);
  if (two_rows) return micro_block<true, false, kBTerms>(steps, Ap, Bp, C, ldc, rows, cols, load_c);
  if (two_cols) return micro_block<false, true, kBTerms>(steps, Ap, Bp, C, ldc, rows, cols, load_c);
  micro_block<false, false, kBTerms>(steps, Ap, Bp, C, ldc, rows, cols, load_c);
}

void micro(int64_t steps, const uint16_t* Ap, const uint16_t* Bp, int b_terms, float* C, int64_t ldc, int rows,
           int cols, bool load_c) {
  if (b_terms == 1) return micro_terms<1>(steps, Ap, Bp, C, ldc, rows, cols, load_c);
  micro_terms<3>(steps, Ap, Bp, C, ldc, rows, cols, load_c);
}

// Register-only tile products for `iterations` rounds (four independent accumulators, no memory
// traffic in the loop): the tile unit's peak, which the AMX GEMM is measured against. Returns
// the floating-point operations of the bf16 products performed.
double tile_loop(int64_t iterations) {
  alignas(64) uint16_t operand[512];
  for (int i = 0; i < 512; ++i) operand[i] = 0x3c00 + static_cast<uint16_t>(i % 7);  // ~2^-7: sums stay finite
  begin();
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  _tile_loadd(4, operand, 64);
  _tile_loadd(5, operand, 64);
  _tile_loadd(6, operand, 64);
  _tile_loadd(7, operand, 64);
  for (int64_t it = 0; it < iterations; ++it) {
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  alignas(64) float sink[256];
  _tile_stored(0, sink, 64);  // keeps the loop's results observable
  end();
  volatile float keep = sink[0];
  (void)keep;
  return 4.0 * static_cast<double>(iterations) * 16 * 16 * 32 * 2;
}

const AmxKernels kAmx = {pack_a, pack_b, micro, begin, end, tile_loop};

}  // namespace

const GemmKernels& amx_gemm_kernels() {
  static const GemmKernels kernels = [] {
    GemmKernels k = avx512_gemm_kernels();
    k.name = "amx";
    k.amx = &kAmx;
    return k;
  }();
  return kernels;
}

}  // namespace vargpt::cpu
