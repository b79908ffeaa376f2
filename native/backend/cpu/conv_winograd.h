// Winograd F(4x4, 3x3) convolution for the stride-1 3x3 layers (the bulk of the VQ-VAE).
//
// Each 4x4 output tile is A^T [ (G g G^T) ⊙ (B^T d B) ] A over its 6x6 input tile d (Lavin &
// Gray's F(4x4, 3x3) matrices, points 0, ±1, ±2, ∞). Summed over the input channels, the 36
// element-wise products become 36 independent GEMMs U[ξ][O, C] · V[ξ][C, tiles], which run on the
// packed GEMM: 36 multiply-adds per 16 output pixels and channel pair instead of 144, 4x fewer.
// The transforms add O(C + O) work per tile and round at the level of a few ulp of the largest
// terms (the transform entries are small integers and 1/4, 1/6, 1/12, 1/24); the op tests check
// the result against the float64 direct sum with the direct convolution's tolerance.
//
// Tiles are processed in blocks of whole tile rows (about kWinogradBlockTiles tiles) in three
// phases per block: input transform (parallel over channels), the 36 GEMMs (parallel over ξ, each
// run serially on one thread so its operands stay in that core's L2), output transform with the
// bias (parallel over output channels).
#pragma once

#include <cstdint>

#include "../backend.h"

namespace vargpt::cpu {

// Geometry of one image plane and its 4x4 output tiles.
struct WinogradPlane {
  int64_t H = 0, W = 0;    // input
  int64_t Ho = 0, Wo = 0;  // output
  int64_t pad_top = 0, pad_left = 0;
  int64_t tiles_y = 0, tiles_x = 0;
};

// Where the input transform writes: value ξ of tile t (of one channel) goes to
// base[ξ * xi_stride + (t / nr) * panel_stride + t % nr], which is the packed B layout of the
// GEMM micro-kernel ([panel of nr tiles][channel][nr]) with the channel's offset in `base`.
struct WinogradPackedB {
  float* base = nullptr;
  int64_t xi_stride = 0, panel_stride = 0;
  int64_t nr = 0;
};

// The per-ISA transforms, for one channel and the tile rows [ty0, ty1); tile t of the block is
// (ty - ty0) * tiles_x + tx.
struct WinogradKernels {
  // (B^T d B)[ξ] of each tile's 6x6 input window d (zero outside the plane).
  void (*input)(const float* plane, const WinogradPlane& g, int64_t ty0, int64_t ty1, const WinogradPackedB& dst);
  // Output tiles A^T m A + bias into `plane` (cropped at Ho x Wo), from m[ξ * ld + t].
  void (*output)(const float* m, int64_t ld, const WinogradPlane& g, int64_t ty0, int64_t ty1, float bias,
                 float* plane);
  // U[ξ][o][c] (row-major, O x C per ξ) = (G g G^T)[ξ] of the f32 filters w [O, C, 3, 3], for the
  // output channels [o0, o1).
  void (*filters)(const float* w, int64_t O, int64_t C, int64_t o0, int64_t o1, float* U);
};

const WinogradKernels& portable_winograd_kernels();
#if defined(VARGPT_HAVE_X86_KERNELS)
const WinogradKernels& avx512_winograd_kernels();  // winograd_avx512.cc
#endif

// True when conv2d should take the Winograd path: stride 1, 3x3, enough channels and tiles for
// the transforms to pay off, and a scratch footprint within bounds.
bool winograd_applies(int64_t C, int64_t O, int64_t kh, int64_t kw, int stride, int64_t Ho, int64_t Wo);

// y[n] = conv(x[n], w) + bias for each of the N images; x [N, C, H, W], y [N, O, Ho, Wo] dense;
// w the f32/bf16/f16 [O, C, 3, 3] weights (contiguous), bias [O] or null.
void conv2d_winograd(const float* x, int64_t N, int64_t C, const WinogradPlane& g, DType w_dtype, const void* w,
                     int64_t O, const float* bias, float* y);

}  // namespace vargpt::cpu
