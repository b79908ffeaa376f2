// Data movement: copy and cast between any strides, fill, and blocked transpose.
#include <cstring>

#include "cpu_common.h"
#include "cpu_ops.h"

namespace vargpt::cpu {

std::vector<float> widen_vector(const char* op, const char* name, const Tensor& t, int64_t expected) {
  check_float(op, name, t);
  VG_CHECK(t.numel() == expected && t.rank() >= 1 && t.dim(-1) == expected, op, ": ", name, " ", t.describe(),
           " must have ", expected, " elements on one axis");
  std::vector<float> out(static_cast<size_t>(expected));
  const int64_t stride = t.stride(-1);
  for (int64_t i = 0; i < expected; ++i) out[i] = load_float(t.dtype(), t.raw(), i * stride);
  return out;
}

namespace {

// Walks two same-shaped strided tensors as rows of their last axis; body(a_offset, b_offset,
// length, a_stride, b_stride) in elements. Rows are spread over the thread pool.
template <typename Body>
void for_each_row_pair(const Tensor& a, const Tensor& b, Body&& body) {
  const int rank = a.rank();
  const int64_t inner = rank == 0 ? 1 : a.shape()[rank - 1];
  const int64_t a_inner = rank == 0 ? 1 : a.strides()[rank - 1];
  const int64_t b_inner = rank == 0 ? 1 : b.strides()[rank - 1];
  int64_t rows = 1;
  for (int i = 0; i + 1 < rank; ++i) rows *= a.shape()[i];
  if (inner == 0 || rows == 0) return;
  parallel_for(rows, grain_for(inner), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      int64_t rest = r, a_off = 0, b_off = 0;
      for (int i = rank - 2; i >= 0; --i) {
        const int64_t idx = rest % a.shape()[i];
        rest /= a.shape()[i];
        a_off += idx * a.strides()[i];
        b_off += idx * b.strides()[i];
      }
      body(a_off, b_off, inner, a_inner, b_inner);
    }
  });
}

}  // namespace

void copy(const Tensor& src, const Tensor& dst) {
  check_defined("copy", "src", src);
  check_defined("copy", "dst", dst);
  check_same_shape("copy", "src", src, "dst", dst);
  VG_CHECK(src.dtype() == dst.dtype(), "copy: src ", src.describe(), " and dst ", dst.describe(),
           " differ in dtype (use cast)");
  if (src.numel() == 0) return;
  check_no_alias("copy", "src", src, "dst", dst);
  const size_t item = dtype_size(src.dtype());
  if (src.is_contiguous() && dst.is_contiguous()) {
    auto* d = static_cast<char*>(dst.raw());
    const auto* s = static_cast<const char*>(src.raw());
    const int64_t bytes = static_cast<int64_t>(src.nbytes());
    parallel_for(bytes, 1 << 20, [&](int64_t b0, int64_t b1) { std::memcpy(d + b0, s + b0, b1 - b0); });
    return;
  }
  auto* d = static_cast<char*>(dst.raw());
  const auto* s = static_cast<const char*>(src.raw());
  for_each_row_pair(src, dst, [&](int64_t so, int64_t dof, int64_t n, int64_t ss, int64_t ds) {
    if (ss == 1 && ds == 1) {
      std::memcpy(d + dof * item, s + so * item, static_cast<size_t>(n) * item);
      return;
    }
    for (int64_t i = 0; i < n; ++i) std::memcpy(d + (dof + i * ds) * item, s + (so + i * ss) * item, item);
  });
}

void fill(const Tensor& dst, float value) {
  check_dtype("fill", "dst", dst, DType::F32);
  if (dst.numel() == 0) return;
  auto* d = dst.data<float>();
  for_each_row_pair(dst, dst, [&](int64_t off, int64_t, int64_t n, int64_t stride, int64_t) {
    for (int64_t i = 0; i < n; ++i) d[off + i * stride] = value;
  });
}

void cast(const Tensor& src, const Tensor& dst) {
  check_float("cast", "src", src);
  check_float("cast", "dst", dst);
  check_same_shape("cast", "src", src, "dst", dst);
  if (src.numel() == 0) return;
  if (src.dtype() == dst.dtype()) return copy(src, dst);
  check_no_alias("cast", "src", src, "dst", dst);
  const DType st = src.dtype(), dt = dst.dtype();
  const size_t s_item = dtype_size(st), d_item = dtype_size(dt);
  const auto* s = static_cast<const char*>(src.raw());
  auto* d = static_cast<char*>(dst.raw());
  for_each_row_pair(src, dst, [&](int64_t so, int64_t dof, int64_t n, int64_t ss, int64_t ds) {
    // Through an f32 staging block so the converters in core/dtype run over dense runs.
    constexpr int64_t kBlock = 1024;
    float stage[kBlock];
    for (int64_t i0 = 0; i0 < n; i0 += kBlock) {
      const int64_t len = std::min(kBlock, n - i0);
      if (ss == 1) {
        convert_to_f32(st, s + (so + i0) * s_item, stage, static_cast<size_t>(len));
      } else {
        for (int64_t i = 0; i < len; ++i) stage[i] = load_float(st, s, so + (i0 + i) * ss);
      }
      if (ds == 1) {
        convert_from_f32(dt, stage, d + (dof + i0) * d_item, static_cast<size_t>(len));
      } else {
        for (int64_t i = 0; i < len; ++i)
          convert_from_f32(dt, stage + i, d + (dof + (i0 + i) * ds) * d_item, 1);
      }
    }
  });
}

void transpose(const Tensor& x, const Tensor& y) {
  check_defined("transpose", "x", x);
  check_defined("transpose", "y", y);
  const TransposeDims dims = check_transpose_args("transpose", x, y);
  const int64_t B = dims.batch, R = dims.rows, C = dims.cols;
  if (x.numel() == 0) return;
  const size_t item = dtype_size(x.dtype());
  const auto* s = static_cast<const char*>(x.raw());
  auto* d = static_cast<char*>(y.raw());
  // 32 x 32 tiles: both the reads and the writes touch whole cache lines.
  constexpr int64_t kTile = 32;
  const int64_t tr = (R + kTile - 1) / kTile, tc = (C + kTile - 1) / kTile;
  parallel_for(B * tr * tc, 4, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t b = t / (tr * tc), r0 = (t / tc) % tr * kTile, c0 = t % tc * kTile;
      const char* sb = s + static_cast<size_t>(b * R * C) * item;
      char* db = d + static_cast<size_t>(b * R * C) * item;
      const int64_t r1 = std::min(R, r0 + kTile), c1 = std::min(C, c0 + kTile);
      if (item == 4) {
        const auto* sf = reinterpret_cast<const uint32_t*>(sb);
        auto* df = reinterpret_cast<uint32_t*>(db);
        for (int64_t c = c0; c < c1; ++c)
          for (int64_t r = r0; r < r1; ++r) df[c * R + r] = sf[r * C + c];
      } else {
        for (int64_t c = c0; c < c1; ++c)
          for (int64_t r = r0; r < r1; ++r) std::memcpy(db + (c * R + r) * item, sb + (r * C + c) * item, item);
      }
    }
  });
}

}  // namespace vargpt::cpu
