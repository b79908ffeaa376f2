// Token selection and noise: argmax, VAR's top-k/top-p multinomial sampler, Philox normals.
//
// sample() per row, as sample_with_top_k_top_p_ in VAR (spec §4.5) with counter-based draws:
//   1. l = logits / temperature.
//   2. top-k: thr = the k-th largest l; entries with l < thr are removed (ties at thr survive).
//   3. top-p: survivors sorted ascending (ties by index), cum = cumsum(softmax(sorted)); entries
//      with cum <= 1 - p are removed, never the largest one.
//   4. p = softmax over the survivors; the draw is the smallest vocabulary index i with
//      sum_{j <= i} p_j > u * sum_j p_j, u = philox_uniform01(seed, stream, row).
// Softmax and cumulative sums are evaluated in double, so the CUDA twin (which must do the same
// to agree) and the float64 test reference pick the same survivors except on exact f32 ties of
// the cumulative sum with 1 - p.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "../../core/rng.h"
#include "cpu_common.h"
#include "cpu_ops.h"

namespace vargpt::cpu {

void argmax(const Tensor& x, const Tensor& idx) {
  check_dtype("argmax", "x", x, DType::F32);
  check_dtype("argmax", "idx", idx, DType::I32);
  VG_CHECK(x.rank() == 2 && x.dim(1) > 0, "argmax: x ", x.describe(), " must be [N, V] with V > 0");
  VG_CHECK(idx.rank() == 1 && idx.dim(0) == x.dim(0), "argmax: idx ", idx.describe(), " must be i32[", x.dim(0), "]");
  check_dense_rows("argmax", "x", x);
  const Rows xr(x);
  const int64_t V = x.dim(1);
  int32_t* out = idx.data<int32_t>();
  const int64_t out_stride = idx.stride(0);
  parallel_for(xr.rows(), grain_for(V), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* row = xr.row<float>(r);
      int64_t best = 0;
      for (int64_t v = 1; v < V; ++v)
        if (row[v] > row[best]) best = v;  // strict: first maximum
      out[r * out_stride] = static_cast<int32_t>(best);
    }
  });
}

void sample(const Tensor& logits, const SamplingParams& p, const Tensor& idx, const Tensor* kept) {
  const char* op = "sample";
  check_dtype(op, "logits", logits, DType::F32);
  check_dtype(op, "idx", idx, DType::I32);
  if (kept != nullptr) check_dtype(op, "kept", *kept, DType::I32);
  const SampleDims dims = check_sample_args(op, logits, p, idx, kept);
  const int64_t N = dims.rows, V = dims.vocab;
  const Rows lr(logits);
  int32_t* out = idx.data<int32_t>();
  int32_t* kept_out = kept ? kept->data<int32_t>() : nullptr;
  const int64_t out_stride = idx.stride(0), kept_stride = kept ? kept->stride(0) : 0;
  const float inv_t = 1.0f / p.temperature;

  parallel_for(N, 1, [&](int64_t r0, int64_t r1) {
    std::vector<float> l(static_cast<size_t>(V)), scratch;
    std::vector<int32_t> order;
    std::vector<uint8_t> alive(static_cast<size_t>(V));
    for (int64_t r = r0; r < r1; ++r) {
      const float* row = lr.row<float>(r);
      for (int64_t v = 0; v < V; ++v) {
        // A NaN would break the orderings below; it means the model produced garbage.
        VG_CHECK(!std::isnan(row[v]), op, ": logits[", r, ", ", v, "] is NaN");
        l[v] = p.temperature == 1.0f ? row[v] : row[v] * inv_t;
      }
      std::fill(alive.begin(), alive.end(), uint8_t{1});
      // 1. top-k threshold by selection, O(V).
      if (p.top_k > 0 && p.top_k < V) {
        scratch.assign(l.begin(), l.end());
        std::nth_element(scratch.begin(), scratch.begin() + (p.top_k - 1), scratch.end(), std::greater<float>());
        const float thr = scratch[p.top_k - 1];
        for (int64_t v = 0; v < V; ++v) alive[v] = l[v] >= thr;
      }
      // 2. top-p over the survivors, ascending.
      if (p.top_p < 1.0f) {
        order.clear();
        for (int64_t v = 0; v < V; ++v)
          if (alive[v]) order.push_back(static_cast<int32_t>(v));
        std::sort(order.begin(), order.end(),
                  [&](int32_t a, int32_t b) { return l[a] < l[b] || (l[a] == l[b] && a < b); });
        const double top = l[order.back()];
        double total = 0.0;
        for (int32_t v : order) total += std::exp(static_cast<double>(l[v]) - top);
        const double cut = 1.0 - static_cast<double>(p.top_p);
        double cum = 0.0;
        for (size_t i = 0; i + 1 < order.size(); ++i) {
          cum += std::exp(static_cast<double>(l[order[i]]) - top) / total;
          if (cum <= cut) alive[order[i]] = 0;
          else break;  // cum only grows: every later entry survives
        }
      }
      // 3. softmax over the survivors and one inverse-CDF draw in vocabulary order.
      float top = -std::numeric_limits<float>::infinity();
      int64_t count = 0, last = 0;
      for (int64_t v = 0; v < V; ++v)
        if (alive[v]) {
          top = std::max(top, l[v]);
          ++count;
          last = v;
        }
      double total = 0.0;
      for (int64_t v = 0; v < V; ++v)
        if (alive[v]) total += std::exp(static_cast<double>(l[v]) - top);
      const double target = static_cast<double>(philox_uniform01(p.seed, p.stream, static_cast<uint64_t>(r))) * total;
      int64_t chosen = last;  // rounding can leave the target just above the final sum
      double cum = 0.0;
      for (int64_t v = 0; v < V; ++v) {
        if (!alive[v]) continue;
        cum += std::exp(static_cast<double>(l[v]) - top);
        if (cum > target) {
          chosen = v;
          break;
        }
      }
      out[r * out_stride] = static_cast<int32_t>(chosen);
      if (kept_out) kept_out[r * kept_stride] = static_cast<int32_t>(count);
    }
  });
}

void randn(const Tensor& out, uint64_t seed, uint64_t stream) {
  check_dtype("randn", "out", out, DType::F32);
  check_dense_rows("randn", "out", out);
  const Rows rows(out);
  const int64_t C = rows.cols();
  parallel_for(rows.rows(), grain_for(C * 8), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      float* row = rows.row<float>(r);
      for (int64_t c = 0; c < C; ++c) row[c] = philox_normal(seed, stream, static_cast<uint64_t>(r * C + c));
    }
  });
}

}  // namespace vargpt::cpu
