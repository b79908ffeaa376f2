// Winograd F(4x4, 3x3) convolution: the driver (blocking, filter transform, the 36 GEMMs) and
// the portable scalar transforms. See conv_winograd.h.
#include "conv_winograd.h"

#include <cstring>
#include <vector>

#include "cpu_common.h"
#include "gemm.h"
#include "host_pool.h"

namespace vargpt::cpu {

namespace {

// Tiles per block: the block's V (36 C x tiles) and M (36 O x tiles) stay in the shared L3 while
// each ξ's slice (C x tiles and O x tiles, a few hundred KB) fits one core's L2 for its GEMM, and
// 256 columns keep the GEMM's N well above its 32-wide micro-panels.
constexpr int64_t kWinogradBlockTiles = 256;
// Below these the direct (im2col) path is as fast: few tiles cannot amortise the 36-fold filter
// transform, few channels leave the GEMMs too thin.
constexpr int64_t kMinTiles = 64;
constexpr int64_t kMinChannels = 16;
// Scratch bound (U twice + V + M, floats): 640 -> 320 filters at 32x32 need ~17 M; 640 -> 640
// (~32 M) stays on the direct path.
constexpr int64_t kMaxScratchFloats = int64_t{24} << 20;

// ---- scalar transforms (the portable path, and the reference the SIMD ones follow)

// (B^T x) for one 6-vector: the rows of B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0;
// 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1].
inline void bt6(const float* d, int64_t s, float* o, int64_t os) {
  const float d0 = d[0], d1 = d[s], d2 = d[2 * s], d3 = d[3 * s], d4 = d[4 * s], d5 = d[5 * s];
  o[0] = 4.0f * d0 - 5.0f * d2 + d4;
  o[os] = -4.0f * (d1 + d2) + (d3 + d4);
  o[2 * os] = 4.0f * (d1 - d2) + (d4 - d3);
  o[3 * os] = 2.0f * (d3 - d1) + (d4 - d2);
  o[4 * os] = 2.0f * (d1 - d3) + (d4 - d2);
  o[5 * os] = 4.0f * d1 - 5.0f * d3 + d5;
}

// (A^T x) for one 6-vector: A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1].
inline void at6(const float* m, int64_t s, float* o, int64_t os) {
  const float m0 = m[0], m1 = m[s], m2 = m[2 * s], m3 = m[3 * s], m4 = m[4 * s], m5 = m[5 * s];
  const float p12 = m1 + m2, d12 = m1 - m2, p34 = m3 + m4, d34 = m3 - m4;
  o[0] = m0 + p12 + p34;
  o[os] = d12 + 2.0f * d34;
  o[2 * os] = p12 + 4.0f * p34;
  o[3 * os] = d12 + 8.0f * d34 + m5;
}

void input_scalar(const float* plane, const WinogradPlane& g, int64_t ty0, int64_t ty1, const WinogradPackedB& dst) {
  float d[36], t[36], r[36];
  for (int64_t ty = ty0; ty < ty1; ++ty)
    for (int64_t tx = 0; tx < g.tiles_x; ++tx) {
      const int64_t y0 = 4 * ty - g.pad_top, x0 = 4 * tx - g.pad_left;
      for (int i = 0; i < 6; ++i)
        for (int j = 0; j < 6; ++j) {
          const int64_t y = y0 + i, x = x0 + j;
          d[i * 6 + j] = y >= 0 && y < g.H && x >= 0 && x < g.W ? plane[y * g.W + x] : 0.0f;
        }
      for (int j = 0; j < 6; ++j) bt6(d + j, 6, t + j, 6);  // columns: B^T d
      for (int i = 0; i < 6; ++i) bt6(t + i * 6, 1, r + i * 6, 1);  // rows: (B^T d) B
      const int64_t col = (ty - ty0) * g.tiles_x + tx;
      float* out = dst.base + col / dst.nr * dst.panel_stride + col % dst.nr;
      for (int xi = 0; xi < 36; ++xi) out[xi * dst.xi_stride] = r[xi];
    }
}

void output_scalar(const float* m, int64_t ld, const WinogradPlane& g, int64_t ty0, int64_t ty1, float bias,
                   float* plane) {
  float a[36], t[24], y[16];
  for (int64_t ty = ty0; ty < ty1; ++ty)
    for (int64_t tx = 0; tx < g.tiles_x; ++tx) {
      const int64_t col = (ty - ty0) * g.tiles_x + tx;
      for (int xi = 0; xi < 36; ++xi) a[xi] = m[xi * ld + col];
      for (int j = 0; j < 6; ++j) at6(a + j, 6, t + j, 6);     // columns: A^T m -> 4 x 6
      for (int i = 0; i < 4; ++i) at6(t + i * 6, 1, y + i * 4, 1);  // rows -> 4 x 4
      for (int i = 0; i < 4; ++i) {
        const int64_t oy = 4 * ty + i;
        if (oy >= g.Ho) break;
        for (int j = 0; j < 4; ++j) {
          const int64_t ox = 4 * tx + j;
          if (ox < g.Wo) plane[oy * g.Wo + ox] = y[i * 4 + j] + bias;
        }
      }
    }
}

// (G x) for one 3-vector: G = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6;
// 1/24 -1/12 1/6; 0 0 1].
inline void g3(const float* x, int64_t s, float* o, int64_t os) {
  const float x0 = x[0], x1 = x[s], x2 = x[2 * s];
  const float p02 = x0 + x2, q02 = x0 + 4.0f * x2;
  o[0] = 0.25f * x0;
  o[os] = -(p02 + x1) * (1.0f / 6.0f);
  o[2 * os] = -(p02 - x1) * (1.0f / 6.0f);
  o[3 * os] = (q02 + 2.0f * x1) * (1.0f / 24.0f);
  o[4 * os] = (q02 - 2.0f * x1) * (1.0f / 24.0f);
  o[5 * os] = x2;
}

void filters_scalar(const float* w, int64_t O, int64_t C, int64_t o0, int64_t o1, float* U) {
  float t[18], r[36];
  for (int64_t o = o0; o < o1; ++o)
    for (int64_t c = 0; c < C; ++c) {
      const float* gk = w + (o * C + c) * 9;
      for (int j = 0; j < 3; ++j) g3(gk + j, 3, t + j, 3);  // G g: 6 x 3
      for (int a = 0; a < 6; ++a) g3(t + a * 3, 1, r + a * 6, 1);  // (G g) G^T: 6 x 6
      for (int xi = 0; xi < 36; ++xi) U[xi * O * C + o * C + c] = r[xi];
    }
}

const WinogradKernels kPortableWinograd = {input_scalar, output_scalar, filters_scalar};

const WinogradKernels& active_winograd_kernels() {
#if defined(VARGPT_HAVE_X86_KERNELS)
  if (std::strcmp(active_gemm_kernels().name, "avx512") == 0 || std::strcmp(active_gemm_kernels().name, "amx") == 0)
    return avx512_winograd_kernels();
#endif
  return kPortableWinograd;
}

}  // namespace

const WinogradKernels& portable_winograd_kernels() { return kPortableWinograd; }

bool winograd_applies(int64_t C, int64_t O, int64_t kh, int64_t kw, int stride, int64_t Ho, int64_t Wo) {
  if (kh != 3 || kw != 3 || stride != 1 || C < kMinChannels || O < kMinChannels) return false;
  const int64_t tiles = ((Ho + 3) / 4) * ((Wo + 3) / 4);
  if (tiles < kMinTiles) return false;
  const int64_t block = std::min(tiles, kWinogradBlockTiles + (Wo + 3) / 4);
  // Transformed and packed filters, the block's V (padded to whole panels) and M.
  return 36 * (2 * O * C + (C + O) * (block + 32)) <= kMaxScratchFloats;
}

void conv2d_winograd(const float* x, int64_t N, int64_t C, const WinogradPlane& g, DType w_dtype, const void* w,
                     int64_t O, const float* bias, float* y) {
  const GemmKernels& kern = active_gemm_kernels();
  const WinogradKernels& wk = active_winograd_kernels();
  const int64_t nr = kern.nr;
  // Blocks of whole tile rows, about kWinogradBlockTiles tiles each.
  const int64_t rows_per_block = std::max<int64_t>(1, (kWinogradBlockTiles + g.tiles_x / 2) / g.tiles_x);
  const int64_t max_tiles = std::min(rows_per_block, g.tiles_y) * g.tiles_x;
  const int64_t max_panels = (max_tiles + nr - 1) / nr;
  // From the calling backend's block cache (host_pool.h), like the GEMM's packing buffers: a fresh
  // tens-of-MB allocation per layer would pay its page faults every time.
  ScratchBuffer w_buffer, u_buffer, a_buffer, v_buffer, m_buffer;
  const float* wf = static_cast<const float*>(w);
  if (w_dtype != DType::F32) {
    float* widened = w_buffer.floats(static_cast<size_t>(O * C * 9));
    convert_to_f32(w_dtype, w, widened, static_cast<size_t>(O * C * 9));
    wf = widened;
  }
  float* U = u_buffer.floats(static_cast<size_t>(36 * O * C));
  float* Ap = a_buffer.floats(static_cast<size_t>(36 * O * C));
  float* V = v_buffer.floats(static_cast<size_t>(36 * max_panels * C * nr));
  float* M = m_buffer.floats(static_cast<size_t>(36 * O * max_tiles));

  // Filters: transformed once per call, then packed as the micro-kernel's A panels, per ξ and K
  // block as gemm_packed lays them out (block k0 at k0 * O, panel p at panel_row[p] * kc).
  parallel_for(O, 1, [&](int64_t o0, int64_t o1) { wk.filters(wf, O, C, o0, o1, U); });
  const int64_t panels = (O + kern.mr - 1) / kern.mr;
  std::vector<int64_t> panel_row(panels + 1);
  for (int64_t p = 0; p <= panels; ++p) panel_row[p] = p * O / panels;
  parallel_for(36, 1, [&](int64_t x0, int64_t x1) {
    for (int64_t xi = x0; xi < x1; ++xi)
      for (int64_t p = 0; p < panels; ++p)
        for (int64_t k0 = 0; k0 < C; k0 += kGemmKC) {
          const int64_t kc = std::min(kGemmKC, C - k0), r0 = panel_row[p];
          kern.pack_a(U + xi * O * C + r0 * C + k0, C, static_cast<int>(panel_row[p + 1] - r0), kc, 1.0f,
                      Ap + xi * O * C + k0 * O + r0 * kc);
        }
  });

  for (int64_t n = 0; n < N; ++n) {
    const float* xn = x + n * C * g.H * g.W;
    float* yn = y + n * O * g.Ho * g.Wo;
    for (int64_t ty0 = 0; ty0 < g.tiles_y; ty0 += rows_per_block) {
      const int64_t ty1 = std::min(g.tiles_y, ty0 + rows_per_block);
      const int64_t T = (ty1 - ty0) * g.tiles_x, nb = (T + nr - 1) / nr;
      // V[ξ] is the packed B operand: [panel of nr tiles][channel][nr]. The last panel's columns
      // past T are only ever multiplied into discarded output columns; zero them so leftover
      // scratch values (possibly subnormal or NaN) cannot slow the FMAs down.
      const WinogradPackedB vb{V, nb * C * nr, C * nr, nr};
      if (T % nr != 0)
        for (int64_t xi = 0; xi < 36; ++xi)
          std::fill(V + xi * vb.xi_stride + (nb - 1) * vb.panel_stride, V + (xi + 1) * vb.xi_stride, 0.0f);
      parallel_for(C, 1, [&](int64_t c0, int64_t c1) {
        for (int64_t c = c0; c < c1; ++c) {
          WinogradPackedB dst = vb;
          dst.base = V + c * nr;
          wk.input(xn + c * g.H * g.W, g, ty0, ty1, dst);
        }
      });
      // One ξ per item, each a GEMM M[ξ][O, T] = U[ξ][O, C] · V[ξ][C, T] run by one thread so its
      // operands (U[ξ] and V[ξ], a few hundred KB) stay in that core's L2. Loop order as in
      // gemm_packed: the K x nr B micro-panel stays in L1 while the A panels stream from L2.
      parallel_for(36, 1, [&](int64_t x0, int64_t x1) {
        for (int64_t xi = x0; xi < x1; ++xi) {
          const float* Ax = Ap + xi * O * C;
          const float* Vx = V + xi * vb.xi_stride;
          float* Mx = M + xi * O * T;
          for (int64_t k0 = 0; k0 < C; k0 += kGemmKC) {
            const int64_t kc = std::min(kGemmKC, C - k0);
            for (int64_t j = 0; j < nb; ++j) {
              const int n_valid = static_cast<int>(std::min(nr, T - j * nr));
              const float* b = Vx + j * vb.panel_stride + k0 * nr;
              for (int64_t p = 0; p < panels; ++p) {
                const int64_t r0 = panel_row[p];
                kern.micro(static_cast<int>(panel_row[p + 1] - r0), kc, Ax + k0 * O + r0 * kc, b, Mx + r0 * T + j * nr,
                           T, n_valid, k0 > 0);
              }
            }
          }
        }
      });
      parallel_for(O, 1, [&](int64_t o0, int64_t o1) {
        for (int64_t o = o0; o < o1; ++o)
          wk.output(M + o * T, O * T, g, ty0, ty1, bias ? bias[o] : 0.0f, yn + o * g.Ho * g.Wo);
      });
    }
  }
}

}  // namespace vargpt::cpu
