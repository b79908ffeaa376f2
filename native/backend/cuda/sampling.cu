// Token selection and noise: argmax, VAR's top-k/top-p multinomial sampler, Philox normals.
//
// sample() runs one block per row and follows backend.h's definition (the CPU twin sorts; a block
// cannot cheaply, so each sorted-order question becomes a search over a monotone count or sum):
//   1. top-k: the k-th largest logit is the largest key t with #{l >= t} >= k, found by bisection
//      over the 32-bit order-preserving keys of the floats (ties at the threshold survive).
//   2. top-p: the survivors in ascending (value, index) order form a prefix that is removed. With
//      c(v) = (key(l_v) << 32) | v, the removed set is {c(v) <= X} for the largest X whose
//      cumulative softmax S(X) = sum_{c(v) <= X} e_v / total is <= 1 - top_p, never the largest
//      survivor; X is found by bisection over 64-bit c.
//   3. the draw is the smallest index i whose cumulative sum over survivors (index order)
//      exceeds u * total, found by bisection over i.
// Softmax terms e_v = exp(l_v - top) and all sums are in double, as on the CPU, so the draws
// agree except where a cumulative sum ties its threshold to within rounding (the sums are added
// in tree order here, sequentially there). Sums of non-negative terms only grow when terms are
// added, rounding included, so each bisection is over a monotone function.
#include <climits>
#include <cmath>

#include "../../core/rng.h"
#include "cuda_ops.cuh"

namespace vargpt::cuda {

namespace {

constexpr int kSampleThreads = 512;

// Order-preserving key of a float (NaN excluded); -0 and +0 share a key, as they compare equal.
__device__ __forceinline__ uint32_t float_key(float f) {
  if (f == 0.0f) f = 0.0f;
  const uint32_t b = __float_as_uint(f);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

template <typename T, typename Op>
__device__ T block_reduce(T v, Op op, T identity) {
  __shared__ unsigned long long shared[32];
  T* slot = reinterpret_cast<T*>(shared);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  __syncthreads();
  if (lane == 0) slot[warp] = v;
  __syncthreads();
  T t = lane < warps ? slot[lane] : identity;
  for (int o = 16; o > 0; o >>= 1) t = op(t, __shfl_xor_sync(0xffffffffu, t, o));
  return t;
}

struct SumOp {
  template <typename T>
  __device__ T operator()(T a, T b) const { return a + b; }
};
struct MaxOp {
  template <typename T>
  __device__ T operator()(T a, T b) const { return a > b ? a : b; }
};

struct SampleArgs {
  const float* logits;
  RowMap rows;
  int V, top_k;
  float top_p, inv_t;
  bool scale;  // temperature != 1
  uint64_t seed, stream;
  double* e;  // [N, V] scratch: exp(l - top) of the top-k survivors
  int32_t* idx;
  int64_t idx_stride;
  int32_t* kept;
  int64_t kept_stride;
  unsigned long long* nan_at;  // first r * V + v holding a NaN
};

__global__ void __launch_bounds__(kSampleThreads) sample_kernel(SampleArgs a) {
  const int64_t r = blockIdx.x;
  const int V = a.V;
  const float* row = a.logits + a.rows.offset(r);
  double* e = a.e + r * V;
  auto logit = [&](int v) { return a.scale ? row[v] * a.inv_t : row[v]; };

  int nan_local = INT_MAX;
  for (int v = threadIdx.x; v < V; v += blockDim.x)
    if (isnan(row[v])) nan_local = min(nan_local, v);
  if (nan_local != INT_MAX) atomicMin(a.nan_at, static_cast<unsigned long long>(r * V + nan_local));

  // 1. top-k: threshold key (0 keeps everything).
  uint32_t k_key = 0;
  if (a.top_k > 0 && a.top_k < V) {
    uint64_t lo = 0, hi = 0xffffffffull;
    while (lo < hi) {
      const uint64_t mid = lo + (hi - lo + 1) / 2;
      int count = 0;
      for (int v = threadIdx.x; v < V; v += blockDim.x) count += float_key(logit(v)) >= mid;
      if (block_reduce(count, SumOp{}, 0) >= a.top_k) lo = mid;
      else hi = mid - 1;
    }
    k_key = static_cast<uint32_t>(lo);
  }
  auto alive_k = [&](int v) { return float_key(logit(v)) >= k_key; };

  float top = -INFINITY;
  for (int v = threadIdx.x; v < V; v += blockDim.x)
    if (alive_k(v)) top = fmaxf(top, logit(v));
  top = block_reduce(top, MaxOp{}, -INFINITY);
  for (int v = threadIdx.x; v < V; v += blockDim.x)
    e[v] = alive_k(v) ? exp(static_cast<double>(logit(v)) - static_cast<double>(top)) : 0.0;
  __syncthreads();  // e is written and read by different threads below

  // 2. top-p: remove survivors with c(v) <= X except the largest survivor c_max.
  auto composite = [&](int v) {
    return (static_cast<unsigned long long>(float_key(logit(v))) << 32) | static_cast<unsigned>(v);
  };
  bool top_p = a.top_p < 1.0f;
  unsigned long long X = 0, c_max = 0;
  if (top_p) {
    double local = 0.0;
    unsigned long long cm = 0;
    for (int v = threadIdx.x; v < V; v += blockDim.x)
      if (alive_k(v)) {
        local += e[v];
        cm = max(cm, composite(v));
      }
    const double total = block_reduce(local, SumOp{}, 0.0);
    c_max = block_reduce(cm, MaxOp{}, 0ull);
    const double cut = 1.0 - static_cast<double>(a.top_p);
    // S(0) = 0 <= cut: no finite float has key 0, so the bisection starts from a feasible X.
    unsigned long long lo = 0, hi = ~0ull;
    while (lo < hi) {
      const unsigned long long mid = lo + ((hi - lo) >> 1) + 1;
      double s = 0.0;
      for (int v = threadIdx.x; v < V; v += blockDim.x)
        if (alive_k(v) && composite(v) <= mid) s += e[v] / total;
      if (block_reduce(s, SumOp{}, 0.0) <= cut) lo = mid;
      else hi = mid - 1;
    }
    X = lo;
  }
  auto alive = [&](int v) {
    if (!alive_k(v)) return false;
    if (!top_p) return true;
    const unsigned long long c = composite(v);
    return c > X || c == c_max;
  };

  // 3. one inverse-CDF draw in vocabulary order over the survivors (the largest one survived,
  // so `top` and the e_v still hold).
  int count = 0, last = -1;
  double local = 0.0;
  for (int v = threadIdx.x; v < V; v += blockDim.x)
    if (alive(v)) {
      ++count;
      last = max(last, v);
      local += e[v];
    }
  count = block_reduce(count, SumOp{}, 0);
  last = block_reduce(last, MaxOp{}, -1);
  const double total = block_reduce(local, SumOp{}, 0.0);
  const double target = static_cast<double>(philox_uniform01(a.seed, a.stream, static_cast<uint64_t>(r))) * total;
  auto prefix = [&](int i) {
    double s = 0.0;
    for (int v = threadIdx.x; v <= i; v += blockDim.x)
      if (alive(v)) s += e[v];
    return block_reduce(s, SumOp{}, 0.0);
  };
  int chosen = last;  // rounding can leave the target just above the final sum
  if (prefix(V - 1) > target) {
    int lo = 0, hi = V - 1;
    while (lo < hi) {
      const int mid = lo + (hi - lo) / 2;
      if (prefix(mid) > target) hi = mid;
      else lo = mid + 1;
    }
    chosen = lo;
  }
  if (threadIdx.x == 0) {
    a.idx[r * a.idx_stride] = chosen < 0 ? 0 : chosen;
    if (a.kept != nullptr) a.kept[r * a.kept_stride] = count;
  }
}

// First maximum per row; NaNs never win (as `row[v] > row[best]` in the CPU twin, which also
// keeps index 0 when row[0] itself is NaN).
constexpr int kArgmaxThreads = 256;

__global__ void __launch_bounds__(kArgmaxThreads)
    argmax_kernel(const float* __restrict__ x, RowMap xr, int64_t V, int32_t* __restrict__ idx, int64_t idx_stride) {
  __shared__ float best_v[kArgmaxThreads];
  __shared__ int64_t best_i[kArgmaxThreads];
  constexpr int64_t kNone = INT64_MAX;
  for (int64_t r = blockIdx.x; r < xr.rows; r += gridDim.x) {
    const float* row = x + xr.offset(r);
    float bv = -INFINITY;
    int64_t bi = kNone;
    for (int64_t v = threadIdx.x; v < V; v += blockDim.x) {
      const float value = row[v];
      if (!isnan(value) && (bi == kNone || value > bv)) {
        bv = value;
        bi = v;
      }
    }
    __syncthreads();  // the previous row's result has been read
    best_v[threadIdx.x] = bv;
    best_i[threadIdx.x] = bi;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
      if (threadIdx.x < s) {
        const float ov = best_v[threadIdx.x + s];
        const int64_t oi = best_i[threadIdx.x + s];
        const int64_t mi = best_i[threadIdx.x];
        const bool take = oi != kNone && (mi == kNone || ov > best_v[threadIdx.x] ||
                                          (ov == best_v[threadIdx.x] && oi < mi));
        if (take) {
          best_v[threadIdx.x] = ov;
          best_i[threadIdx.x] = oi;
        }
      }
      __syncthreads();
    }
    if (threadIdx.x == 0)
      idx[r * idx_stride] = isnan(row[0]) || best_i[0] == kNone ? 0 : static_cast<int32_t>(best_i[0]);
  }
}

__global__ void randn_kernel(float* out, RowMap rows, uint64_t seed, uint64_t stream) {
  const int64_t C = rows.cols, count = rows.rows * C;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count; i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t r = i / C, c = i % C;
    out[rows.offset(r) + c] = philox_normal(seed, stream, static_cast<uint64_t>(i));
  }
}

}  // namespace

void argmax(const Ctx& ctx, const Tensor& x, const Tensor& idx) {
  check_dtype(ctx, "argmax", "x", x, DType::F32);
  check_dtype(ctx, "argmax", "idx", idx, DType::I32);
  VG_CHECK(x.rank() == 2 && x.dim(1) > 0, "argmax: x ", x.describe(), " must be [N, V] with V > 0");
  VG_CHECK(idx.rank() == 1 && idx.dim(0) == x.dim(0), "argmax: idx ", idx.describe(), " must be i32[", x.dim(0), "]");
  check_dense_rows("argmax", "x", x);
  const RowMap xr = row_map("argmax", "x", x);
  if (xr.rows == 0) return;
  const unsigned blocks = static_cast<unsigned>(xr.rows > (1 << 20) ? (1 << 20) : xr.rows);
  argmax_kernel<<<blocks, kArgmaxThreads, 0, ctx.stream>>>(x.data<float>(), xr, x.dim(1), idx.data<int32_t>(),
                                                           idx.stride(0));
  VG_CUDA_LAUNCHED("argmax", "argmax_kernel");
}

void sample(const Ctx& ctx, const Tensor& logits, const SamplingParams& p, const Tensor& idx, const Tensor* kept) {
  const char* op = "sample";
  check_dtype(ctx, op, "logits", logits, DType::F32);
  check_dtype(ctx, op, "idx", idx, DType::I32);
  if (kept != nullptr) check_dtype(ctx, op, "kept", *kept, DType::I32);
  const SampleDims dims = check_sample_args(op, logits, p, idx, kept);
  const int64_t N = dims.rows, V = dims.vocab;
  if (N == 0) return;
  VG_CHECK(V < (int64_t{1} << 30) && N <= INT_MAX, op, ": logits ", logits.describe(), " are too large");
  Tensor e = scratch(ctx, DType::F32, {N, 2 * V}, op);  // N x V doubles
  Tensor flag = scratch(ctx, DType::I64, {1}, op);
  VG_CUDA(op, cudaMemsetAsync(flag.raw(), 0xff, sizeof(unsigned long long), ctx.stream));
  SampleArgs a;
  a.logits = logits.data<float>();
  a.rows = row_map(op, "logits", logits);
  a.V = static_cast<int>(V);
  a.top_k = p.top_k;
  a.top_p = p.top_p;
  a.inv_t = 1.0f / p.temperature;
  a.scale = p.temperature != 1.0f;
  a.seed = p.seed;
  a.stream = p.stream;
  a.e = static_cast<double*>(e.raw());
  a.idx = idx.data<int32_t>();
  a.idx_stride = idx.stride(0);
  a.kept = kept ? kept->data<int32_t>() : nullptr;
  a.kept_stride = kept ? kept->stride(0) : 0;
  a.nan_at = static_cast<unsigned long long*>(flag.raw());
  sample_kernel<<<static_cast<unsigned>(N), kSampleThreads, 0, ctx.stream>>>(a);
  VG_CUDA_LAUNCHED(op, "sample_kernel");
  // A NaN means the model produced garbage: report it as the CPU twin does (this waits for the
  // kernel; the caller reads the sampled ids right after anyway).
  unsigned long long nan_at = 0;
  VG_CUDA(op, cudaMemcpyAsync(&nan_at, flag.raw(), sizeof nan_at, cudaMemcpyDeviceToHost, ctx.stream));
  VG_CUDA(op, cudaStreamSynchronize(ctx.stream));
  if (nan_at != ~0ull) fail(op, ": logits[", nan_at / V, ", ", nan_at % V, "] is NaN");
}

void randn(const Ctx& ctx, const Tensor& out, uint64_t seed, uint64_t stream) {
  check_dtype(ctx, "randn", "out", out, DType::F32);
  check_dense_rows("randn", "out", out);
  const RowMap rows = row_map("randn", "out", out);
  const int64_t count = rows.rows * rows.cols;
  if (count == 0) return;
  randn_kernel<<<grid_for(count), kThreads, 0, ctx.stream>>>(out.data<float>(), rows, seed, stream);
  VG_CUDA_LAUNCHED("randn", "randn_kernel");
}

}  // namespace vargpt::cuda
