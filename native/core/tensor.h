// A tensor is a typed, shaped, strided view over a Storage. Storage owns memory of one kind:
// aligned host heap, a region of a memory-mapped checkpoint, or device memory of a backend.
// Views share their storage through shared_ptr, so a weight viewed from a mapped file keeps the
// mapping alive for as long as any tensor uses it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dtype.h"

namespace vargpt {

enum class DeviceKind : uint8_t { CPU, CUDA };
const char* device_kind_name(DeviceKind kind);

class Storage {
 public:
  Storage(void* data, size_t bytes, DeviceKind device) : data_(data), bytes_(bytes), device_(device) {}
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  virtual ~Storage() = default;

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  DeviceKind device() const { return device_; }

 protected:
  void* data_;
  size_t bytes_;
  DeviceKind device_;
};

// 64-byte aligned host memory (cache line and AVX-512 friendly). Contents are uninitialised.
std::shared_ptr<Storage> allocate_host(size_t bytes);
// Host memory owned by someone else; `owner` is kept alive while the storage lives.
std::shared_ptr<Storage> wrap_host(void* data, size_t bytes, std::shared_ptr<const void> owner);

using Shape = std::vector<int64_t>;
std::string shape_string(const Shape& shape);
// Product of the dimensions; throws on negative dimensions or int64 overflow.
int64_t shape_numel(const Shape& shape);

class Tensor {
 public:
  Tensor() = default;
  // A contiguous tensor at byte `offset` of `storage`. Throws if it does not fit.
  Tensor(std::shared_ptr<Storage> storage, size_t offset, DType dtype, Shape shape);

  static Tensor empty_host(DType dtype, Shape shape);
  // Copies `count` host values into a new contiguous host tensor.
  static Tensor from_host(DType dtype, Shape shape, const void* values);

  bool defined() const { return storage_ != nullptr; }
  DType dtype() const { return dtype_; }
  DeviceKind device() const { return storage_ ? storage_->device() : DeviceKind::CPU; }
  const Shape& shape() const { return shape_; }
  const Shape& strides() const { return strides_; }  // in elements
  int rank() const { return static_cast<int>(shape_.size()); }
  int64_t dim(int axis) const;  // negative axes count from the end
  int64_t stride(int axis) const;
  int64_t numel() const;
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype_); }
  bool is_contiguous() const;
  // Rows of the last dimension are dense (stride 1) though rows may be spaced: most ops need only this.
  bool has_dense_rows() const { return shape_.empty() || strides_.back() == 1; }

  void* raw() const { return static_cast<char*>(storage_->data()) + offset_; }
  template <typename T>
  T* data() const {
    return static_cast<T*>(raw());
  }
  const std::shared_ptr<Storage>& storage() const { return storage_; }
  size_t offset() const { return offset_; }

  // Same data, new shape; needs a contiguous tensor. One dimension may be -1.
  Tensor view(Shape shape) const;
  // Elements [begin, end) along `axis`, sharing storage.
  Tensor slice(int axis, int64_t begin, int64_t end) const;
  // Index `index` of the first dimension, which is dropped.
  Tensor select(int64_t index) const;
  // A contiguous copy on the host (this tensor must live on the host).
  Tensor contiguous_copy() const;

  // "bf16[32064, 4096]"
  std::string describe() const;

 private:
  std::shared_ptr<Storage> storage_;
  size_t offset_ = 0;
  DType dtype_ = DType::F32;
  Shape shape_;
  Shape strides_;
};

Shape contiguous_strides(const Shape& shape);

}  // namespace vargpt
