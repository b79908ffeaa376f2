#include "kv_cache.h"

#include <algorithm>

#include "../../core/error.h"

namespace vargpt {

KvCache::KvCache(Backend& backend, int layers, int64_t kv_dim, int max_positions, DType dtype)
    : backend_(backend), layers_(layers), kv_dim_(kv_dim), max_positions_(max_positions), dtype_(dtype) {
  VG_CHECK(dtype == DType::F32 || dtype == DType::BF16, "KvCache: ", dtype_name(dtype),
           " caches are not supported (f32 or bf16)");
  VG_CHECK(layers > 0 && kv_dim > 0 && max_positions > 0, "KvCache: ", layers, " layers, kv_dim ", kv_dim, ", ",
           max_positions, " positions");
}

void KvCache::truncate(int length) {
  VG_CHECK(length >= 0 && length <= length_, "KvCache::truncate(", length, ") with ", length_, " cached tokens");
  length_ = length;
}

void KvCache::advance(int count) {
  VG_CHECK(count >= 0 && length_ + count <= capacity_, "KvCache::advance(", count, ") past the reserved ", capacity_,
           " slots (", length_, " filled)");
  length_ += count;
}

void KvCache::reserve(int total) {
  VG_CHECK(total <= max_positions_, "the sequence needs ", total,
           " positions, more than the model's max_position_embeddings (", max_positions_, ")");
  if (total <= capacity_) return;
  // Grow geometrically (bounded by max_positions) so decoding does not reallocate every token.
  const int capacity = std::min(max_positions_, std::max(total, std::max(256, capacity_ * 2)));
  Tensor k = backend_.empty(dtype_, {layers_, capacity, kv_dim_});
  Tensor v = backend_.empty(dtype_, {layers_, capacity, kv_dim_});
  if (length_ > 0) {
    backend_.copy(k_.slice(1, 0, length_), k.slice(1, 0, length_));
    backend_.copy(v_.slice(1, 0, length_), v.slice(1, 0, length_));
  }
  k_ = std::move(k);
  v_ = std::move(v);
  capacity_ = capacity;
}

}  // namespace vargpt
