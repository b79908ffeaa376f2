// Helpers shared by the CPU kernels: argument checks that name the op and tensors, row access
// for tensors whose rows are dense but spaced arbitrarily, and the thread-pool loop.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "../../core/aligned.h"
#include "../../core/error.h"
#include "../../core/tensor.h"
#include "../../core/thread_pool.h"
#include "../backend.h"
#include "../op_checks.h"

namespace vargpt::cpu {

// ---- argument checks (each throws vargpt::Error naming the op and the tensor)

inline void check_defined(const char* op, const char* name, const Tensor& t) {
  VG_CHECK(t.defined(), op, ": ", name, " is an undefined tensor");
  VG_CHECK(t.device() == DeviceKind::CPU, op, ": ", name, " ", t.describe(), " lives on ",
           device_kind_name(t.device()), ", not on the cpu backend");
}

inline void check_dtype(const char* op, const char* name, const Tensor& t, DType dtype) {
  check_defined(op, name, t);
  VG_CHECK(t.dtype() == dtype, op, ": ", name, " ", t.describe(), " must be ", dtype_name(dtype));
}

inline void check_float(const char* op, const char* name, const Tensor& t) {
  check_defined(op, name, t);
  VG_CHECK(dtype_is_float(t.dtype()), op, ": ", name, " ", t.describe(), " must be f32, bf16 or f16");
}

// Activations that may be kept in bf16 (linear's x, attention's q, k, v: backend.h).
inline void check_f32_or_bf16(const char* op, const char* name, const Tensor& t) {
  check_defined(op, name, t);
  VG_CHECK(t.dtype() == DType::F32 || t.dtype() == DType::BF16, op, ": ", name, " ", t.describe(),
           " must be f32 or bf16");
}

// check_dense_rows, check_contiguous, check_same_shape, check_rank, overlaps, check_no_alias and
// the per-op shape contracts: ../op_checks.h, shared with the CUDA backend.

// ---- rows of a tensor with a dense last axis: row r of the flattened leading axes -> pointer.
// Slices of preallocated caches have non-uniform leading strides; rows() handles any strides
// and takes the fast path when the leading axes collapse to one stride.
class Rows {
 public:
  Rows() = default;
  explicit Rows(const Tensor& t) {
    base_ = static_cast<char*>(t.raw());
    item_ = dtype_size(t.dtype());
    const int r = t.rank();
    cols_ = r == 0 ? 1 : t.shape()[r - 1];
    rows_ = 1;
    lead_ = 0;
    // Size-1 leading axes contribute nothing to an address (their stride is arbitrary): drop them.
    for (int i = 0; i + 1 < r; ++i) {
      rows_ *= t.shape()[i];
      if (t.shape()[i] == 1) continue;
      dims_[lead_] = t.shape()[i];
      strides_[lead_] = t.strides()[i];
      ++lead_;
    }
    // Uniform when each leading stride equals the next stride times the next size.
    uniform_ = true;
    row_stride_ = lead_ > 0 ? strides_[lead_ - 1] : cols_;
    for (int i = 0; i + 1 < lead_; ++i)
      if (strides_[i] != strides_[i + 1] * dims_[i + 1]) uniform_ = false;
  }
  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  bool uniform() const { return uniform_; }
  int64_t row_stride() const { return row_stride_; }  // elements, valid when uniform()

  template <typename T>
  T* row(int64_t r) const {
    if (uniform_) return reinterpret_cast<T*>(base_ + static_cast<size_t>(r * row_stride_) * item_);
    int64_t offset = 0;
    for (int i = lead_ - 1; i >= 0; --i) {
      const int64_t idx = r % dims_[i];
      r /= dims_[i];
      offset += idx * strides_[i];
    }
    return reinterpret_cast<T*>(base_ + static_cast<size_t>(offset) * item_);
  }

 private:
  char* base_ = nullptr;
  size_t item_ = 4;
  int64_t rows_ = 0, cols_ = 0;
  int lead_ = 0;
  int64_t dims_[8] = {}, strides_[8] = {};
  bool uniform_ = true;
  int64_t row_stride_ = 0;
};

// ---- threading

inline int num_threads() { return ThreadPool::global().size(); }

// Runs body(begin, end) over [0, count) on the global pool, chunks of at least `grain` items.
template <typename Body>
void parallel_for(int64_t count, int64_t grain, Body&& body) {
  ThreadPool::global().parallel_for(
      count, [&](int64_t begin, int64_t end, int) { body(begin, end); }, grain);
}

// Grain such that each chunk holds roughly `work_per_chunk` units when each item costs `item_cost`.
inline int64_t grain_for(int64_t item_cost, int64_t work_per_chunk = 32768) {
  return std::max<int64_t>(1, work_per_chunk / std::max<int64_t>(item_cost, 1));
}

// A 64-byte aligned scratch buffer that keeps its memory between uses (one per thread for packing).
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  ~AlignedBuffer() { aligned_free(data_); }
  // At least `count` floats; contents are not preserved across growth.
  float* floats(size_t count) {
    const size_t bytes = (count * sizeof(float) + 63) / 64 * 64;
    if (bytes > capacity_) {
      aligned_free(data_);
      data_ = aligned_malloc(64, bytes);
      if (data_ == nullptr) {
        capacity_ = 0;
        fail("out of host memory allocating a ", bytes, "-byte kernel scratch buffer");
      }
      capacity_ = bytes;
    }
    return static_cast<float*>(data_);
  }

 private:
  void* data_ = nullptr;
  size_t capacity_ = 0;
};

// Loads one element of a float tensor as f32.
inline float load_float(DType dtype, const void* base, int64_t i) {
  switch (dtype) {
    case DType::F32: return static_cast<const float*>(base)[i];
    case DType::BF16: return bf16_to_f32(static_cast<const uint16_t*>(base)[i]);
    case DType::F16: return f16_to_f32(static_cast<const uint16_t*>(base)[i]);
    default: return 0.0f;
  }
}

// A contiguous f32 copy of a small float vector (bias, norm weights), whatever its stored type.
std::vector<float> widen_vector(const char* op, const char* name, const Tensor& t, int64_t expected);

}  // namespace vargpt::cpu
