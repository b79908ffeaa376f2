// The Backend interface: every operator the models need, implemented once per device (cpu/,
// cuda/). Model code calls only these methods, never a kernel directly.
//
// Conventions shared by every implementation:
// - Float activations are f32. Weights passed to linear() and embedding() may be f32, bf16 or f16
//   and are read in their stored type. The ops that also take bf16 activations (read in their
//   stored type, results f32) are exactly: linear (x) and attention (q, k, v: a KV cache kept in
//   bf16). Every other op takes f32 activations.
// - Outputs are preallocated by the caller (so KV caches and step buffers are reused) and must
//   not alias inputs unless an op says it works in place.
// - "[B, L, C]" tensors need dense rows (stride 1 on the last axis); the other strides may be
//   anything, so a slice of a preallocated cache is a valid argument.
// - Leading dimensions are flattened where an op speaks of rows ("x [..., K]").
// - Every op validates shapes and dtypes and throws vargpt::Error naming the op and the tensors.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "../core/error.h"
#include "../core/tensor.h"

namespace vargpt {

// Element functions: silu(x) = x sigmoid(x); gelu (erf) = x/2 (1 + erf(x/sqrt 2)); gelu_tanh =
// x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))); quick_gelu = x sigmoid(1.702 x); tanh.
enum class Activation : uint8_t { None, SiLU, GeluErf, GeluTanh, QuickGelu, Tanh };
const char* activation_name(Activation act);

enum class AttentionMask : uint8_t {
  None,    // every query sees every key (ViT, VQ-VAE, VAR with its block-causal KV cache)
  Causal,  // query i of Lq sees keys [0, Lk - Lq + i]: the queries are the last Lq positions
           // (so Lk >= Lq is required)
};

enum class RopePairing : uint8_t { RotateHalf, Interleaved };
const char* rope_pairing_name(RopePairing pairing);

struct AttentionParams {
  int q_heads = 1;
  int kv_heads = 1;  // q_heads % kv_heads == 0 (GQA); query head h reads kv head h / (q_heads / kv_heads)
  int head_dim = 64;
  float scale = 0.125f;  // softmax(scale * q k^T)
  AttentionMask mask = AttentionMask::None;
  // Segments (cu_seqlens), empty = one segment. Otherwise self-attention over segments: Lq == Lk
  // = L, segments = {o_0, ..., o_S} with 0 = o_0 < o_1 < ... < o_S = L (host ints), and query i
  // of segment [o_s, o_s+1) sees only the keys of that segment (with Causal also only keys <= i).
  // The same offsets apply to every batch row. Qwen2-VL's ViT (several images in one call) and
  // Qwen2.5-VL's window attention.
  std::vector<int64_t> segments;
};

// Normalisation of norm_modulate.
enum class NormKind : uint8_t {
  LayerNorm,  // (x - mean) / sqrt(biased var + eps)
  RMSNorm,    // x / sqrt(mean(x^2) + eps)
};

// Element-wise operation of binary().
enum class BinaryOp : uint8_t { Add, Mul };

struct Conv2dParams {
  int stride = 1;
  int pad_top = 0, pad_bottom = 0, pad_left = 0, pad_right = 0;  // zero padding
};

struct SamplingParams {
  int top_k = 0;             // keep logits >= the k-th largest (ties kept); 0 disables
  float top_p = 1.0f;        // nucleus over the top-k survivors, semantics of VAR's sampler; 1 disables
  float temperature = 1.0f;  // logits are divided by it first
  uint64_t seed = 0;
  uint64_t stream = 0;  // row r draws philox_uniform01(seed, stream, r)
};

class Backend {
 public:
  virtual ~Backend() = default;

  virtual std::string name() const = 0;  // "cpu", "cuda:0"
  virtual DeviceKind device() const = 0;

  // ---- memory
  virtual Tensor empty(DType dtype, Shape shape) = 0;  // uninitialised
  // A tensor this backend can compute with. The CPU backend returns host tensors unchanged (mapped
  // weights are read in place); a device backend copies them to device memory.
  virtual Tensor upload(const Tensor& host) = 0;
  // A contiguous host copy.
  virtual Tensor to_host(const Tensor& tensor) = 0;
  // dst = src; same shape and dtype, any strides on either side.
  virtual void copy(const Tensor& src, const Tensor& dst) = 0;
  virtual void fill(const Tensor& dst, float value) = 0;  // f32 tensors
  // dst (f32, bf16 or f16) = src (f32, bf16 or f16), converting with round-to-nearest-even.
  virtual void cast(const Tensor& src, const Tensor& dst) = 0;
  // Waits for queued work (a no-op where ops are synchronous).
  virtual void synchronize() = 0;

  // ---- dense algebra
  // y[M, N] = act(x[M, K] · w[N, K]^T + bias[N]), or y += that when accumulate (residual add).
  // x may be f32 or bf16 (read as stored); w and bias f32, bf16 or f16; y f32.
  virtual void linear(const Tensor& x, const Tensor& w, const Tensor* bias, const Tensor& y,
                      Activation act = Activation::None, bool accumulate = false) = 0;
  // linear() with int8 weights w [N, K] (i8, symmetric per output channel) and qparams [2, N] f32
  // (row 0: the channel scales, row 1: each row's sum of q, exact): x f32, its rows quantized to
  // int8 on the fly (core/quantize.h: quantize_q8_row), integer dot products (cpu/gemm_q8.h,
  // cuda/gemm_quant.cu).
  virtual void linear_q8(const Tensor& x, const Tensor& w, const Tensor& qparams, const Tensor* bias,
                         const Tensor& y, Activation act = Activation::None, bool accumulate = false) = 0;
  // linear() with 4-bit weights: w [N, Kp / 2] u8 (two per byte) and scales [N, Kp / 32] f16, one
  // per group of 32 (core/quantize.h: quantize_q4_rows); x as for linear_q8.
  virtual void linear_q4(const Tensor& x, const Tensor& w, const Tensor& scales, const Tensor* bias,
                         const Tensor& y, Activation act = Activation::None, bool accumulate = false) = 0;
  // Multi-head attention with online softmax (memory linear in Lk).
  // q [B, Lq, Hq*D], k and v [B, Lk, Hkv*D], out [B, Lq, Hq*D] (or all without B). q, k and v
  // may each be f32 or bf16 (read as stored, e.g. a bf16 KV cache); out is f32. With
  // params.segments, see AttentionParams.
  virtual void attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                         const AttentionParams& params) = 0;

  // ---- normalisation and modulation (x, y [..., C])
  virtual void rms_norm(const Tensor& x, const Tensor& weight, float eps, const Tensor& y) = 0;
  // weight and bias may be null (no affine).
  virtual void layer_norm(const Tensor& x, const Tensor* weight, const Tensor* bias, float eps,
                          const Tensor& y) = 0;
  // Norm + modulate: y = norm(x) [* weight + bias] * (1 + scale[b]) [+ shift[b]]. x, y f32
  // [B, L, C] (or [L, C], B = 1); scale and shift f32 [B, C] (or [C] when B = 1); weight and bias
  // [C] in any float type. weight, bias and shift may each be null (absent). y may be x itself
  // (the same view), not a partly overlapping one. Infinity: LayerNorm, no affine, scale and
  // shift; Lumina-Next: RMSNorm with weight, scale only.
  virtual void norm_modulate(const Tensor& x, NormKind norm, const Tensor* weight, const Tensor* bias, float eps,
                             const Tensor& scale, const Tensor* shift, const Tensor& y) = 0;
  // Gated residual: x[b] += y[b] * g(gate[b]) with g = gate_act (None: identity; Tanh for
  // Lumina-Next); x, y f32 [B, L, C] (or [L, C]); gate f32 [B, C] (or [C] when B = 1). In place
  // on x; y may not overlap x.
  virtual void gated_add(const Tensor& x, const Tensor& y, const Tensor& gate,
                         Activation gate_act = Activation::None) = 0;
  // x, y [N, C, H, W] (or [C, H, W]); weight, bias [C].
  virtual void group_norm(const Tensor& x, int groups, const Tensor& weight, const Tensor& bias, float eps,
                          const Tensor& y) = 0;

  // ---- element-wise
  virtual void activation(const Tensor& x, Activation act, const Tensor& y) = 0;  // may run in place
  // GLU: y = act(gate) * up (SiLU: SwiGLU; GeluTanh / GeluErf: GEGLU); gate, up, y f32 of one
  // shape with dense rows; y may be gate or up itself (the same view).
  virtual void glu(const Tensor& gate, const Tensor& up, Activation act, const Tensor& y) = 0;
  // y = a + b where b's shape is a suffix of a's (b repeats over a's leading axes). May run in place on a.
  virtual void add(const Tensor& a, const Tensor& b, const Tensor& y) = 0;
  // y = a (+ or *) b with NumPy broadcasting: shapes are aligned at their last axes (the shorter
  // one padded with leading 1s), each axis pair must be equal or contain a 1, and y's shape must
  // be exactly the broadcast shape; rank at most 8. a, b, y f32 with any strides. y may be a or
  // b itself (the same view, so of the full shape), otherwise it may not overlap them.
  virtual void binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& y) = 0;
  // y = alpha * a + beta * b, same shapes. May run in place.
  virtual void axpby(float alpha, const Tensor& a, float beta, const Tensor& b, const Tensor& y) = 0;

  // ---- positions
  // Rotary position embedding in place on x [L, H*D] (or [B, L, H*D]) from a host-computed table:
  // table f32 [L, D] holds, for row l, cos(angle_j) at column j and sin(angle_j) at column D/2 + j
  // (j < D/2); every head and batch of row l uses row l. The model builds the angles (1D RoPE,
  // M-RoPE sections, 2D grids), so one op serves every family. `pairing` says which elements
  // angle j rotates: RotateHalf (j, j + D/2) as Llama and Qwen; Interleaved (2j, 2j + 1), the
  // complex-number view of Infinity and Lumina. Rotation: (a, b) -> (a cos - b sin, b cos + a sin).
  virtual void rope(const Tensor& x, const Tensor& table, int head_dim, RopePairing pairing) = 0;
  // In place on x [..., H*D]: each head vector / max(||v||, 1e-12) (F.normalize), then times
  // head_scale[h] (f32 [H]) if given.
  virtual void l2_normalize_heads(const Tensor& x, int head_dim, const Tensor* head_scale) = 0;

  // ---- images, layout [C, H, W] or [N, C, H, W]
  // weight [O, C, kh, kw], bias [O] or null.
  virtual void conv2d(const Tensor& x, const Tensor& weight, const Tensor* bias, const Conv2dParams& params,
                      const Tensor& y) = 0;
  virtual void upsample_nearest2x(const Tensor& x, const Tensor& y) = 0;
  // PyTorch F.interpolate(mode="bicubic", align_corners=False), A = -0.75, output unclamped.
  virtual void resize_bicubic(const Tensor& x, const Tensor& y) = 0;
  // PyTorch F.interpolate(mode="area") = adaptive average pooling.
  virtual void resize_area(const Tensor& x, const Tensor& y) = 0;
  // PyTorch F.interpolate(mode="bilinear", align_corners=False, antialias=False): half-pixel
  // centres, source coordinate (in/out) (d + 0.5) - 0.5 clamped below at 0, up or down.
  virtual void resize_bilinear(const Tensor& x, const Tensor& y) = 0;
  // y[C, R] = x[R, C]^T (or batched [B, R, C] -> [B, C, R]).
  virtual void transpose(const Tensor& x, const Tensor& y) = 0;

  // ---- reductions
  // y = mean of x over `axis` (negative counts from the end), x f32 of rank 1 to 4, contiguous;
  // y f32 contiguous, of x's shape with that axis removed or kept as 1 (keepdim). Summed in
  // double, so y is the f32 rounding of the exact mean to within a few ulp.
  virtual void mean(const Tensor& x, int axis, const Tensor& y) = 0;

  // ---- tokens and codebooks
  // out[n] = table[ids[n]] widened to f32; ids i32 [N], table [V, C]; an id outside [0, V) throws.
  virtual void embedding(const Tensor& ids, const Tensor& table, const Tensor& out) = 0;
  // idx[n] = argmin_v ||z[n] - codebook[v]||^2 (first on ties); z [N, C], codebook [V, C], idx i32 [N].
  virtual void vq_nearest(const Tensor& z, const Tensor& codebook, const Tensor& idx) = 0;

  // ---- sampling
  virtual void argmax(const Tensor& x, const Tensor& idx) = 0;  // x [N, V] -> i32 [N], first maximum
  // Top-k, then top-p, then one multinomial draw per row; logits [N, V] are not modified.
  // kept (i32 [N], optional) receives how many entries survived the filters.
  // Exactly, per row r: l = logits[r] / temperature (f32); top-k keeps l >= the k-th largest l;
  // top-p sorts the survivors ascending (ties by index), removes those whose cumulative softmax
  // is <= 1 - top_p, never the largest; the draw is the smallest index i whose cumulative
  // softmax over the survivors, summed in index order, exceeds u = philox_uniform01(seed,
  // stream, r). Softmaxes and cumulative sums are evaluated in double, so backends agree on the
  // draw except where a cumulative sum ties with its threshold to within rounding. NaN logits
  // throw.
  virtual void sample(const Tensor& logits, const SamplingParams& params, const Tensor& idx,
                      const Tensor* kept) = 0;
  // out (f32) = standard normal numbers philox_normal(seed, stream, i), i = flat index.
  virtual void randn(const Tensor& out, uint64_t seed, uint64_t stream) = 0;
};

struct CpuInfo {
  int threads = 1;
  std::string model;                 // processor name
  std::vector<std::string> features;  // SIMD features the kernels use: "avx2", "fma", "avx512f", ...
  std::string kernel_path;           // the dispatched GEMM path
  std::string int8_kernel_path;      // the int8 GEMM's kernel (int8 weights)
  std::vector<std::string> kernel_paths;  // every GEMM path this CPU and build can run, best first
  std::string amx_unavailable;       // why the AMX path cannot run ("" when it can)
};

struct CudaDeviceInfo {
  int index = 0;
  std::string name;
  int compute_major = 0, compute_minor = 0;
  uint64_t total_memory = 0, free_memory = 0;
  int multiprocessors = 0;
};

struct CudaInfo {
  bool available = false;
  std::string reason;  // why not, when !available
  int driver_version = 0, runtime_version = 0;
  std::vector<CudaDeviceInfo> devices;
};

CpuInfo cpu_info();
CudaInfo cuda_info();

// "cpu", "cuda" (device 0) or "cuda:N". Throws with the reason when the device cannot be used.
std::shared_ptr<Backend> create_backend(const std::string& device);

}  // namespace vargpt
