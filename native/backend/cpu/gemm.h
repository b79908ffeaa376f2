// The CPU GEMM: C[M, N] = act(A[M, K] · B^T + bias), or C += that. A and C are f32; B is read in
// its stored type (f32, bf16, f16) and widened in the kernels, so bf16 checkpoints stay bf16 in
// memory.
//
// Three strategies, one per regime:
// - small M (decode, M <= kSmallRows): "row dots". Each weight row is streamed once and dotted
//   with the few activation rows; the loop is bound by memory bandwidth, so weights are widened
//   in registers and never packed.
// - mid M (kMidRowsMin..kMidRowsMax, AVX-512 only): vectors along M, weights widened (not
//   transposed) and broadcast; below ~64 rows transposing B for the packed kernel costs as much
//   as the multiply itself.
// - larger M: BLIS-style packing. A is packed once into micro-panels of up to mr rows; each
//   thread packs a KC x NC block of B (widened to f32) that stays in its L2, and an mr x nr
//   register-blocked micro-kernel runs over it with broadcast-FMA. Packing B costs O(N K) per
//   M block and the micro-kernel O(M N K), so it pays off once M is in the tens (where mid_rows
//   is missing) or beyond kMidRowsMax.
//
// The instruction-set kernels (portable, AVX2, AVX-512) fill a GemmKernels table; the driver in
// gemm.cc is shared.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "../../core/dtype.h"
#include "../backend.h"

namespace vargpt::cpu {

// B(n, k) = data[n * ld + k] (a Linear weight [N, K]) or, when k_major, data[k * ld + n].
struct GemmB {
  const void* data = nullptr;
  DType dtype = DType::F32;
  int64_t ld = 0;
  bool k_major = false;
};

struct GemmEpilogue {
  const float* bias = nullptr;      // [N] or null: added to every row (Linear)
  const float* row_bias = nullptr;  // [M] or null: added to every column (conv: one per channel)
  Activation act = Activation::None;
  bool accumulate = false;  // C += act(A B^T + bias)
};

void gemm(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const GemmB& B, float* C, int64_t ldc,
          const GemmEpilogue& epilogue);

// Activation rows one row_dots call handles (its register block is kRowGroup x 4 weight rows).
constexpr int64_t kRowGroup = 4;
// Rows up to which the row-dot strategy is used for [N, K] weights: each weight sub-block is
// streamed from memory once and re-read from L2 by every group of kRowGroup rows, which beats
// packing B while M is small.
constexpr int64_t kSmallRows = 8;
// K block of the packed strategy: a KC x nr micro-panel of B plus an mr x KC panel of A stay in L1.
constexpr int64_t kGemmKC = 256;

struct AmxKernels;

struct GemmKernels {
  const char* name;  // "amx", "avx512", "avx2", "portable"
  int mr;            // rows of the micro-kernel (any count 1..mr is supported)
  int nr;            // columns of the micro-kernel; packed B panels are nr wide
  // C[0..rows, 0..n_valid) = (load_c ? C : 0) + sum_k Ap[k * rows + i] * Bp[k * nr + j].
  void (*micro)(int rows, int64_t kc, const float* Ap, const float* Bp, float* C, int64_t ldc, int n_valid,
                bool load_c);
  // Packs B(n0 + j, k0 + k) for j < n_count, k < kc into panels Bp[panel][k][nr], zero-padding
  // the last panel's columns beyond n_count.
  void (*pack_b)(const GemmB& B, int64_t n0, int64_t n_count, int64_t k0, int64_t kc, float* Bp, int nr);
  // Packs rows x kc of a row-major f32 matrix (row stride ld) into a micro-panel dst[k][rows],
  // times `scale` (rows <= mr).
  void (*pack_a)(const float* src, int64_t ld, int rows, int64_t kc, float scale, float* dst);
  // Re-arranges `rows` activation rows for row_dots over bf16 weights into xs (row stride
  // row_dots_stride(K), 64-byte aligned); done once per row and reused for every weight row.
  void (*split_rows)(int rows, int64_t K, const float* A, int64_t lda, float* xs);
  // C[m, n] = (load_c ? C[m, n] : 0) + sum_k A[m, k] B(n, k) for m < rows (<= kRowGroup),
  // n in [n0, n1); B is [N, K] (not k_major). For bf16 weights the kernel reads the rows from
  // xs (split_rows of the same rows), otherwise from A.
  void (*row_dots)(int rows, int64_t K, const float* A, int64_t lda, const float* xs, const GemmB& B, int64_t n0,
                   int64_t n1, float* C, int64_t ldc, bool load_c);
  // Optional (null where a path has none): C[0..M, n0..n1) (+)= A B^T for kMidRowsMin <= M <=
  // kMidRowsMax with B [N, K] (not k_major). Vectors run along M and weights are broadcast, so
  // B is only widened, never transposed: the packing that dominates at these M disappears.
  // `scratch` holds mid_rows_scratch(M, K) floats, 64-byte aligned.
  void (*mid_rows)(int64_t M, int64_t K, const float* A, int64_t lda, const GemmB& B, int64_t n0, int64_t n1,
                   float* C, int64_t ldc, bool load_c, float* scratch);
  // x[i] = exp(x[i] - shift) in place (exp_approx of cpu_math.h, vectorised); returns the sum.
  // Attention's softmax runs on it.
  float (*exp_shift_sum)(float* x, int64_t n, float shift);
  // max(x[0..n)), n >= 1.
  float (*max_of)(const float* x, int64_t n);
  // Sum of n floats (n a multiple of 64, 64-byte aligned) read as four interleaved streams, the
  // way row_dots reads weights: the read-bandwidth probe's inner loop.
  float (*stream_sum)(const float* x, int64_t n);
  // Register-only FMA chains (independent accumulators, no memory traffic) for `iterations`
  // rounds; returns the floating-point operations performed (2 per FMA lane).
  double (*fma_loop)(int64_t iterations);
  // y[i] = act(x[i]) over a dense run (y may be x): the formulas of cpu_math.h on the path's
  // vectors (the exact-erf GELU stays on libm's scalar erf). The GEMM epilogue and the
  // element-wise ops run on it.
  void (*activation)(Activation act, const float* x, float* y, int64_t n);
  // y[i] = silu(gate[i]) * up[i] (y may be gate or up).
  void (*swiglu)(const float* gate, const float* up, float* y, int64_t n);
  // Sum of a[i] * b[i] (decode attention's scores).
  float (*dot)(const float* a, const float* b, int64_t n);
  // y[i] += alpha * x[i] (decode attention's value sums).
  void (*axpy)(float alpha, const float* x, float* y, int64_t n);
  // x[i] *= alpha (attention's rescaling of partial outputs).
  void (*scale)(float alpha, float* x, int64_t n);
  // Tile kernels for the packed strategy (the "amx" path only, else null).
  const AmxKernels* amx;
};

// ---- AMX: the packed strategy on bf16 tile multiplies (gemm_amx.cc says how f32 operands are
// split into bf16 terms so the result keeps f32 accuracy). Blocks are kAmxRows x kAmxCols of C;
// K advances kAmxStepK at a time, and each packed (step, term) holds two 16 x 32 tiles.
constexpr int kAmxRows = 32;
constexpr int kAmxCols = 32;
constexpr int64_t kAmxStepK = 32;
constexpr int64_t kAmxTermBlock = 1024;  // bf16 values per packed (step, term): 2 KB
// f32 weights are split into three terms on every call (six tile products per step): below
// this many rows the splitting costs more than the tiles save, and below this depth (the
// VQ codebook's 32) the C tiles' loads and stores outweigh the few products between them; the
// AVX-512 kernels run there. bf16 weights take the AMX path from kSmallRows + 1 rows on.
constexpr int64_t kAmxF32MinRows = 128;
constexpr int64_t kAmxF32MinDepth = 128;

struct AmxKernels {
  // Splits A rows x kc (rows <= kAmxRows) into its three bf16 terms, as
  // dst[step][term][kAmxRows][kAmxStepK], zero-padded.
  void (*pack_a)(const float* A, int64_t lda, int rows, int64_t kc, uint16_t* dst);
  // Packs B(n0 + j, k0 + k), j < cols (<= kAmxCols), k < kc, of an [N, K] bf16 or f32 B in the
  // tiles' pair order: dst[step][term][2][kAmxStepK / 2][16][2], zero-padded; bf16 weights are
  // one term, f32 weights three.
  void (*pack_b)(const GemmB& B, int64_t n0, int cols, int64_t k0, int64_t kc, uint16_t* dst);
  // C[0..rows, 0..cols) = (load_c ? C : 0) + the `steps` packed steps of A times those of B.
  void (*micro)(int64_t steps, const uint16_t* Ap, const uint16_t* Bp, int b_terms, float* C, int64_t ldc, int rows,
                int cols, bool load_c);
  // Loads the tile configuration on the calling thread / releases the tiles.
  void (*begin)();
  void (*end)();
  // Register-only tile products for `iterations` rounds; returns the flops (the tile peak probe).
  double (*tile_loop)(int64_t iterations);
};

// Why this process cannot use AMX ("" when it can): CPU, OS state or the Linux tile permission.
const std::string& amx_unavailable_reason();

// M range of the mid_rows kernels (above it, packing B pays for itself).
constexpr int64_t kMidRowsMin = kSmallRows + 1;
constexpr int64_t kMidRowsMax = 64;
// A^T packed in vectors of 16 rows ([K][16 * ceil(M / 16)]) plus one widened weight block.
inline int64_t mid_rows_scratch(int64_t M, int64_t K) { return K * ((M + 15) / 16 * 16) + 16 * 256; }

// Row stride of the row-dot scratch: K rounded up to the widest bf16 block (32 values).
inline int64_t row_dots_stride(int64_t K) { return (K + 31) / 32 * 32; }

const GemmKernels& portable_gemm_kernels();
#if defined(VARGPT_HAVE_X86_KERNELS)
const GemmKernels& avx2_gemm_kernels();    // gemm_avx2.cc, needs avx2 + fma + f16c
const GemmKernels& avx512_gemm_kernels();  // gemm_avx512.cc, needs avx512f/bw/vl/dq
const GemmKernels& amx_gemm_kernels();     // gemm_amx.cc: avx512 plus AMX-BF16 (amx_unavailable_reason)
#endif

// The kernels in use: the best this CPU supports, chosen once at first use;
// VARGPT_CPU_KERNELS=portable|avx2|avx512|amx caps the choice.
const GemmKernels& active_gemm_kernels();
// The paths this CPU and build can run, best first.
std::vector<std::string> available_gemm_kernels();
// Switches every later GEMM to the named path ("amx", "avx512", "avx2", "portable"), so tests and
// benchmarks can exercise each path in one process. Throws if this CPU or build lacks it. Not
// meant to change while ops run.
void set_gemm_kernels(const std::string& name);

// Register-only FMA loop (or, with `tiles`, the AMX tile-product loop) on every thread for
// `seconds`: returns the achieved GFLOP/s. It measures the ceiling the GEMM is compared with
// (bench/cpu.mjs).
double measure_peak_gflops(double seconds, bool tiles = false);

}  // namespace vargpt::cpu
