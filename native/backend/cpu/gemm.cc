// GEMM driver (blocking, packing of A, threading, epilogue) and the choice of kernel path; the
// kernels live in gemm_portable.cc, gemm_avx2.cc, gemm_avx512.cc and gemm_amx.cc.
#include "gemm.h"

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "cpu_common.h"
#include "cpu_features.h"
#include "cpu_math.h"
#include "host_pool.h"

#if defined(VARGPT_HAVE_X86_KERNELS)
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#endif
#endif

namespace vargpt::cpu {

namespace {

// ---- epilogue: biases and activation over a finished tile of C (rows from m0), while it is
// still in cache.
void epilogue_tile(float* C, int64_t ldc, int64_t m0, int64_t rows, int64_t n0, int64_t cols,
                   const GemmEpilogue& ep) {
  for (int64_t i = 0; i < rows; ++i) {
    float* c = C + i * ldc + n0;
    if (ep.bias != nullptr) {
      const float* b = ep.bias + n0;
      for (int64_t j = 0; j < cols; ++j) c[j] += b[j];
    }
    if (ep.row_bias != nullptr) {
      const float b = ep.row_bias[m0 + i];
      for (int64_t j = 0; j < cols; ++j) c[j] += b;
    }
    if (ep.act != Activation::None) active_gemm_kernels().activation(ep.act, c, c, cols);
  }
}

#if defined(VARGPT_HAVE_X86_KERNELS)
// AMX needs the CPU (CPUID), the OS saving the tile state (XCR0) and, on Linux, a per-process
// permission for the 8 KB of tile data (arch_prctl ARCH_REQ_XCOMP_PERM, kernel 5.16+). Asked once.
std::string check_amx() {
  unsigned r[4];
  if (!x86_cpuid(7, 0, r)) return "the CPU reports no CPUID leaf 7";
  if ((r[3] & (1u << 24)) == 0 || (r[3] & (1u << 22)) == 0) return "the CPU has no AMX-TILE / AMX-BF16";
  if (!x86_supports("avx512bf16")) return "the CPU has AMX but not AVX512-BF16 (used to split operands)";
  if (!x86_xcr0_has(3u << 17)) return "the OS does not save the AMX tile state (XCR0)";
#if defined(__linux__)
  constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  if (syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) != 0)
    return std::string("Linux refused the AMX tile permission (arch_prctl: ") + std::strerror(errno) + ")";
  return "";
#else
  return "AMX is enabled on Linux only in this build";
#endif
}
#endif

bool has_avx2() {
#if defined(VARGPT_HAVE_X86_KERNELS)
  return x86_supports("avx2") && x86_supports("fma") && x86_supports("f16c");
#else
  return false;
#endif
}

bool has_avx512() {
#if defined(VARGPT_HAVE_X86_KERNELS)
  return has_avx2() && x86_supports("avx512f") && x86_supports("avx512bw") && x86_supports("avx512vl") &&
         x86_supports("avx512dq");
#else
  return false;
#endif
}

// The best path this CPU supports, no higher than `cap` ("" = no cap).
const GemmKernels& best_kernels(const std::string& cap) {
#if defined(VARGPT_HAVE_X86_KERNELS)
  if ((cap.empty() || cap == "amx") && has_avx512() && amx_unavailable_reason().empty()) return amx_gemm_kernels();
  if ((cap.empty() || cap == "amx" || cap == "avx512") && has_avx512()) return avx512_gemm_kernels();
  if ((cap.empty() || cap == "amx" || cap == "avx512" || cap == "avx2") && has_avx2()) return avx2_gemm_kernels();
#endif
  return portable_gemm_kernels();
}

std::atomic<const GemmKernels*>& current_kernels() {
  static std::atomic<const GemmKernels*> current{[] {
    const char* env = std::getenv("VARGPT_CPU_KERNELS");
    return &best_kernels(env ? env : "");
  }()};
  return current;
}

}  // namespace

const GemmKernels& active_gemm_kernels() { return *current_kernels().load(std::memory_order_relaxed); }

const std::string& amx_unavailable_reason() {
#if defined(VARGPT_HAVE_X86_KERNELS)
  static const std::string reason = check_amx();
#else
  static const std::string reason = "this build has no x86 kernels";
#endif
  return reason;
}

std::vector<std::string> available_gemm_kernels() {
  std::vector<std::string> paths;
  for (const char* name : {"amx", "avx512", "avx2", "portable"})
    if (best_kernels(name).name == std::string(name)) paths.emplace_back(name);
  return paths;
}

void set_gemm_kernels(const std::string& name) {
  VG_CHECK(name == "amx" || name == "avx512" || name == "avx2" || name == "portable", "cpu kernels \"", name,
           "\": expected amx, avx512, avx2 or portable");
  const GemmKernels& chosen = best_kernels(name);
  VG_CHECK(chosen.name == name, "cpu kernels \"", name, "\" are not available on this CPU or build (best: ",
           best_kernels("").name, name == "amx" ? "; " + amx_unavailable_reason() : std::string(), ")");
  current_kernels().store(&chosen);
}

namespace {

void gemm_row_dots(const GemmKernels& kern, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda,
                   const GemmB& B, float* C, int64_t ldc, const GemmEpilogue& ep) {
  // Chunks of weight rows big enough to amortise the pool hand-off and the row split, small
  // enough to balance; inside a chunk, sub-blocks of kSubRows weight rows (a few hundred KB at
  // most) are read from memory once and from L2 by each group of activation rows.
  constexpr int64_t kSubRows = 16;
  const int64_t grain = std::max<int64_t>(kSubRows, std::min<int64_t>(256, N / (num_threads() * 8) + 1));
  const bool split = B.dtype == DType::BF16;
  const int64_t ldx = row_dots_stride(K);
  static thread_local AlignedBuffer scratch_buffer;
  parallel_for(N, grain, [&](int64_t n0, int64_t n1) {
    float* xs = split ? scratch_buffer.floats(static_cast<size_t>(M * ldx)) : nullptr;
    if (split) kern.split_rows(static_cast<int>(M), K, A, lda, xs);
    for (int64_t s0 = n0; s0 < n1; s0 += kSubRows) {
      const int64_t s1 = std::min(n1, s0 + kSubRows);
      for (int64_t m0 = 0; m0 < M; m0 += kRowGroup) {
        const int rows = static_cast<int>(std::min(kRowGroup, M - m0));
        kern.row_dots(rows, K, A + m0 * lda, lda, split ? xs + m0 * ldx : nullptr, B, s0, s1, C + m0 * ldc, ldc,
                      ep.accumulate);
      }
    }
    epilogue_tile(C, ldc, 0, M, n0, n1 - n0, ep);
  });
}

void gemm_mid_rows(const GemmKernels& kern, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda,
                   const GemmB& B, float* C, int64_t ldc, const GemmEpilogue& ep) {
  // Chunks of weight rows per thread; each chunk re-packs A^T (M K floats, cheap next to the
  // M K chunk FMAs) so threads share nothing.
  static thread_local AlignedBuffer scratch_buffer;
  const int64_t grain = std::max<int64_t>(64, N / (num_threads() * 8) + 1);
  parallel_for(N, grain, [&](int64_t n0, int64_t n1) {
    float* scratch = scratch_buffer.floats(static_cast<size_t>(mid_rows_scratch(M, K)));
    kern.mid_rows(M, K, A, lda, B, n0, n1, C, ldc, ep.accumulate, scratch);
    epilogue_tile(C, ldc, 0, M, n0, n1 - n0, ep);
  });
}

void gemm_packed(const GemmKernels& kern, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda,
                 const GemmB& B, float* C, int64_t ldc, const GemmEpilogue& ep) {
  const int threads = num_threads();
  const int nr = kern.nr;

  // Row panels of at most mr rows, balanced so that M = 16 becomes 8 + 8 rather than 14 + 2.
  const int64_t panels = (M + kern.mr - 1) / kern.mr;
  std::vector<int64_t> panel_row(panels + 1);
  for (int64_t p = 0; p <= panels; ++p) panel_row[p] = p * M / panels;

  // Pack all of A once, K block by K block: block k0 starts at k0 * M and holds each panel p
  // (rows [panel_row[p], panel_row[p+1])) as [kc][rows] at offset panel_row[p] * kc. The panels
  // one K block needs are then contiguous, which the L2 prefetchers and the TLB both like.
  const int64_t kc_block = kGemmKC;
  // From the calling backend's block cache (host_pool.h): a fresh allocation of this size would
  // cost a page fault and a zeroed page every 4 KB on every call.
  ScratchBuffer a_pack;
  float* const Ap = a_pack.floats(static_cast<size_t>(M * K));
  auto a_panel = [&](int64_t k0, int64_t p) { return Ap + k0 * M + panel_row[p] * std::min(kc_block, K - k0); };
  parallel_for(panels, 1, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t r0 = panel_row[p], rows = panel_row[p + 1] - r0;
      for (int64_t k0 = 0; k0 < K; k0 += kc_block) {
        const int64_t kc = std::min(kc_block, K - k0);
        kern.pack_a(A + r0 * lda + k0, lda, static_cast<int>(rows), kc, 1.0f, a_panel(k0, p));
      }
    }
  });

  // N blocks sized so each thread's packed B block (KC x NC floats) sits in its L2, and counted
  // in multiples of the thread count so the last round is not half idle.
  int64_t n_blocks = std::max<int64_t>((N + 511) / 512, 1);
  n_blocks = (n_blocks + threads - 1) / threads * threads;
  int64_t nc = (N + n_blocks - 1) / n_blocks;
  nc = (nc + nr - 1) / nr * nr;
  n_blocks = (N + nc - 1) / nc;
  // Narrow outputs (few N blocks) are split along M as well so every thread has work.
  int64_t m_blocks = 1;
  if (n_blocks < 2 * threads) m_blocks = std::min<int64_t>(panels, (2 * threads + n_blocks - 1) / n_blocks);

  constexpr int64_t kGroupPanels = 8;
  static thread_local AlignedBuffer b_pack;
  parallel_for(n_blocks * m_blocks, 1, [&](int64_t item0, int64_t item1) {
    for (int64_t item = item0; item < item1; ++item) {
      const int64_t nb = item / m_blocks, mb = item % m_blocks;
      const int64_t n0 = nb * nc, ncols = std::min(nc, N - n0);
      const int64_t p_begin = mb * panels / m_blocks, p_end = (mb + 1) * panels / m_blocks;
      const int64_t n_panels = (ncols + nr - 1) / nr;
      float* Bp = b_pack.floats(static_cast<size_t>(n_panels * nr * kc_block));
      for (int64_t k0 = 0; k0 < K; k0 += kc_block) {
        const int64_t kc = std::min(kc_block, K - k0);
        const bool last = k0 + kc >= K;
        kern.pack_b(B, n0, ncols, k0, kc, Bp, nr);
        // A panels in groups of kGroupPanels (~115 KB of A), B micro-panel outer, A panels inner:
        // the KC x nr micro-panel of B stays in L1 while the group's A panels stream from L2, and
        // the thread's L2 holds its B block plus one A group (two threads sharing an L2 fit).
        for (int64_t g_begin = p_begin; g_begin < p_end; g_begin += kGroupPanels) {
          const int64_t g_end = std::min(p_end, g_begin + kGroupPanels);
          for (int64_t j = 0; j < n_panels; ++j) {
            const int n_valid = static_cast<int>(std::min<int64_t>(nr, ncols - j * nr));
            const float* b = Bp + j * kc * nr;
            for (int64_t p = g_begin; p < g_end; ++p) {
              const int64_t r0 = panel_row[p], rows = panel_row[p + 1] - r0;
              float* c = C + r0 * ldc + n0 + j * nr;
              // The C tile of the next call is read only after its k loop; ask for it now, while
              // this call computes, so its misses (C is far larger than the caches) overlap.
              if (p + 1 < g_end) {
                const float* next = C + panel_row[p + 1] * ldc + n0 + j * nr;
                for (int64_t i = 0; i < panel_row[p + 2] - panel_row[p + 1]; ++i)
                  for (int64_t off = 0; off < nr; off += 16) __builtin_prefetch(next + i * ldc + off, 1);
              }
              kern.micro(static_cast<int>(rows), kc, a_panel(k0, p), b, c, ldc, n_valid,
                         k0 > 0 || ep.accumulate);
              if (last) epilogue_tile(C + r0 * ldc, ldc, r0, rows, n0 + j * nr, n_valid, ep);
            }
          }
        }
      }
    }
  });
}

// The packed strategy on AMX tiles. Same shape as gemm_packed: A is split and packed once (all
// of it, K block by K block, so the panels one K block needs are contiguous), then each thread
// takes blocks of NC columns, packs the block's B panels for one K block (512 KB of bf16 terms,
// in L2) and runs the 32 x 32 micro-kernel for each row block across them, so a row block's
// packed A (32 x KC x 3 terms, 192 KB) is re-read from L2 by every panel while its C tiles are
// loaded and stored once per K block. KC = 1024 / NC = 256 (128 for f32 weights, whose B has
// three terms) were the fastest of KC 128-4096 x NC 128-512 measured on the bench shapes: C
// traffic shrinks with KC, and beyond ~1 MB of B block the L2 stops holding it.
void gemm_amx(const GemmKernels& kern, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const GemmB& B,
              float* C, int64_t ldc, const GemmEpilogue& ep) {
  const AmxKernels& amx = *kern.amx;
  // A short K (the tiny and small models' 64-1024) takes one block of just the steps it needs.
  const int64_t kc_block = std::min<int64_t>(1024, (K + kAmxStepK - 1) / kAmxStepK * kAmxStepK);
  const int64_t block_steps = kc_block / kAmxStepK;
  const int64_t nc_cols = B.dtype == DType::BF16 ? 256 : 128;  // f32 weights pack three terms
  const int b_terms = B.dtype == DType::BF16 ? 1 : 3;
  const int64_t m_blocks = (M + kAmxRows - 1) / kAmxRows;
  const int64_t k_blocks = (K + kc_block - 1) / kc_block;
  auto steps_of = [&](int64_t kb) { return (std::min(kc_block, K - kb * kc_block) + kAmxStepK - 1) / kAmxStepK; };
  // Block (kb, mb) of packed A: K block kb holds every row block's steps back to back.
  const int64_t a_block = 3 * kAmxTermBlock;  // per step of one row block
  auto a_panel = [&](int64_t kb, int64_t mb) {
    return kb * m_blocks * block_steps * a_block + mb * steps_of(kb) * a_block;
  };
  ScratchBuffer a_pack;  // the calling backend's block cache, as in gemm_packed
  uint16_t* const Ap =
      reinterpret_cast<uint16_t*>(a_pack.floats(static_cast<size_t>(k_blocks * m_blocks * block_steps * a_block / 2)));
  parallel_for(m_blocks * k_blocks, 1, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t kb = i / m_blocks, mb = i % m_blocks;
      const int rows = static_cast<int>(std::min<int64_t>(kAmxRows, M - mb * kAmxRows));
      amx.pack_a(A + mb * kAmxRows * lda + kb * kc_block, lda, rows, std::min(kc_block, K - kb * kc_block),
                 Ap + a_panel(kb, mb));
    }
  });

  // N blocks of whole panels, a multiple of the thread count; narrow outputs split along M too.
  const int threads = num_threads();
  const int64_t n_panels_total = (N + kAmxCols - 1) / kAmxCols;
  int64_t n_blocks = std::max<int64_t>(1, std::min<int64_t>(n_panels_total, (N + nc_cols - 1) / nc_cols));
  n_blocks = std::min(n_panels_total, (n_blocks + threads - 1) / threads * threads);
  const int64_t panels_per_block = (n_panels_total + n_blocks - 1) / n_blocks;
  n_blocks = (n_panels_total + panels_per_block - 1) / panels_per_block;
  int64_t m_splits = 1;
  if (n_blocks < 2 * threads) m_splits = std::min<int64_t>(m_blocks, (2 * threads + n_blocks - 1) / n_blocks);

  static thread_local AlignedBuffer b_pack;
  parallel_for(n_blocks * m_splits, 1, [&](int64_t item0, int64_t item1) {
    const int64_t panel_size = block_steps * b_terms * kAmxTermBlock;
    uint16_t* Bp = reinterpret_cast<uint16_t*>(b_pack.floats(static_cast<size_t>(panels_per_block * panel_size / 2)));
    struct TileGuard {  // releases the tiles however the block ends
      const AmxKernels& amx;
      explicit TileGuard(const AmxKernels& k) : amx(k) { amx.begin(); }
      ~TileGuard() { amx.end(); }
    } guard(amx);
    for (int64_t item = item0; item < item1; ++item) {
      const int64_t nb = item / m_splits, ms = item % m_splits;
      const int64_t p_begin = nb * panels_per_block, p_end = std::min(n_panels_total, p_begin + panels_per_block);
      const int64_t mb_begin = ms * m_blocks / m_splits, mb_end = (ms + 1) * m_blocks / m_splits;
      for (int64_t kb = 0; kb < k_blocks; ++kb) {
        const int64_t k0 = kb * kc_block, kc = std::min(kc_block, K - k0), steps = steps_of(kb);
        const bool last = kb + 1 == k_blocks;
        for (int64_t p = p_begin; p < p_end; ++p) {
          const int64_t n0 = p * kAmxCols;
          const int cols = static_cast<int>(std::min<int64_t>(kAmxCols, N - n0));
          amx.pack_b(B, n0, cols, k0, kc, Bp + (p - p_begin) * panel_size);
        }
        for (int64_t mb = mb_begin; mb < mb_end; ++mb) {
          const int64_t r0 = mb * kAmxRows;
          const int rows = static_cast<int>(std::min<int64_t>(kAmxRows, M - r0));
          for (int64_t p = p_begin; p < p_end; ++p) {
            const int64_t n0 = p * kAmxCols;
            const int cols = static_cast<int>(std::min<int64_t>(kAmxCols, N - n0));
            amx.micro(steps, Ap + a_panel(kb, mb), Bp + (p - p_begin) * panel_size, b_terms, C + r0 * ldc + n0, ldc,
                      rows, cols, kb > 0 || ep.accumulate);
          }
          if (last) {
            const int64_t n0 = p_begin * kAmxCols, cols = std::min(N, p_end * kAmxCols) - n0;
            epilogue_tile(C + r0 * ldc, ldc, r0, rows, n0, cols, ep);
          }
        }
      }
    }
  });
}

}  // namespace

void gemm(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const GemmB& B, float* C, int64_t ldc,
          const GemmEpilogue& ep) {
  if (M <= 0 || N <= 0) return;
  if (ep.accumulate && ep.act != Activation::None) {
    // C += act(...): the activation needs the complete sum, so compute it apart and add.
    std::vector<float> tmp(static_cast<size_t>(M * N));
    gemm(M, N, K, A, lda, B, tmp.data(), N, GemmEpilogue{ep.bias, ep.row_bias, ep.act, false});
    parallel_for(M, grain_for(N), [&](int64_t m0, int64_t m1) {
      for (int64_t m = m0; m < m1; ++m)
        for (int64_t n = 0; n < N; ++n) C[m * ldc + n] += tmp[m * N + n];
    });
    return;
  }
  if (K == 0) {
    for (int64_t m = 0; m < M; ++m) {
      float* c = C + m * ldc;
      if (!ep.accumulate) std::fill(c, c + N, 0.0f);
    }
    epilogue_tile(C, ldc, 0, M, 0, N, ep);
    return;
  }
  const GemmKernels& kern = active_gemm_kernels();
  if (M <= kSmallRows && !B.k_major) return gemm_row_dots(kern, M, N, K, A, lda, B, C, ldc, ep);
  if (kern.amx != nullptr && !B.k_major &&
      (B.dtype == DType::BF16 || (B.dtype == DType::F32 && M >= kAmxF32MinRows && K >= kAmxF32MinDepth)))
    return gemm_amx(kern, M, N, K, A, lda, B, C, ldc, ep);
  if (M <= kMidRowsMax && !B.k_major && kern.mid_rows != nullptr)
    return gemm_mid_rows(kern, M, N, K, A, lda, B, C, ldc, ep);
  gemm_packed(kern, M, N, K, A, lda, B, C, ldc, ep);
}

double measure_peak_gflops(double seconds, bool tiles) {
  const GemmKernels& kern = active_gemm_kernels();
  VG_CHECK(!tiles || kern.amx != nullptr, "peak_flops: kind amx_bf16 needs the amx GEMM path (active: ", kern.name,
           ")");
  // One tile-loop call is 2^10 rounds of four tile products (~67 MFLOP), one FMA-loop call 2^14
  // rounds: both a few tens of microseconds, fine-grained enough to stop on time.
  auto work = [&] { return tiles ? kern.amx->tile_loop(1 << 10) : kern.fma_loop(1 << 14); };
  const int threads = num_threads();
  std::vector<double> flops(threads, 0.0);
  std::atomic<int> started{0};
  using Clock = std::chrono::steady_clock;
  Clock::time_point begin, end;
  std::atomic<bool> timing{false};
  // One item per thread. Each waits (at most a second) until all have started, so that one thread
  // picking up two items in a row cannot halve the figure; the time runs from the last start.
  ThreadPool::global().parallel_for(
      threads,
      [&](int64_t t0, int64_t t1, int) {
        for (int64_t t = t0; t < t1; ++t) {
          const auto arrived = Clock::now();
          if (started.fetch_add(1) + 1 == threads) {
            begin = Clock::now();
            end = begin + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
            timing.store(true);
          }
          while (!timing.load() && Clock::now() - arrived < std::chrono::seconds(1)) {
          }
          if (!timing.load()) return;
          double done = 0;
          while (Clock::now() < end) done += work();
          flops[t] = done;
        }
      },
      1);
  VG_CHECK(timing.load(), "peak_flops: the thread pool did not start ", threads, " threads together");
  const double elapsed = std::chrono::duration<double>(Clock::now() - begin).count();
  double total = 0;
  for (double f : flops) total += f;
  return total / elapsed * 1e-9;
}

}  // namespace vargpt::cpu
