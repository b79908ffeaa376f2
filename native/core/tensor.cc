#include "tensor.h"

#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include <sstream>

#include "aligned.h"
#include "error.h"

namespace vargpt {

const char* device_kind_name(DeviceKind kind) { return kind == DeviceKind::CUDA ? "cuda" : "cpu"; }

namespace {

class HostStorage final : public Storage {
 public:
  explicit HostStorage(size_t bytes) : Storage(nullptr, bytes, DeviceKind::CPU) {
    data_ = allocated() == 0 ? nullptr : allocate_large(allocated());
    if (allocated() != 0 && data_ == nullptr) fail("out of host memory allocating ", bytes, " bytes");
  }
  ~HostStorage() override { free_large(data_, allocated()); }

 private:
  // What allocate_large was asked for: whole cache lines (free_large needs the same count).
  size_t allocated() const { return (bytes() + 63) / 64 * 64; }
};

class BorrowedStorage final : public Storage {
 public:
  BorrowedStorage(void* data, size_t bytes, std::shared_ptr<const void> owner)
      : Storage(data, bytes, DeviceKind::CPU), owner_(std::move(owner)) {}

 private:
  std::shared_ptr<const void> owner_;
};

}  // namespace

std::shared_ptr<Storage> allocate_host(size_t bytes) { return std::make_shared<HostStorage>(bytes); }

std::shared_ptr<Storage> wrap_host(void* data, size_t bytes, std::shared_ptr<const void> owner) {
  return std::make_shared<BorrowedStorage>(data, bytes, std::move(owner));
}

std::string shape_string(const Shape& shape) {
  std::ostringstream out;
  out << '[';
  for (size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
  out << ']';
  return out.str();
}

int64_t shape_numel(const Shape& shape) {
  int64_t count = 1;
  for (int64_t d : shape) {
    VG_CHECK(d >= 0, "negative dimension in shape ", shape_string(shape));
    if (d != 0 && count > std::numeric_limits<int64_t>::max() / d) fail("shape ", shape_string(shape), " overflows int64");
    count *= d;
  }
  return count;
}

Shape contiguous_strides(const Shape& shape) {
  Shape strides(shape.size());
  int64_t stride = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    strides[i] = stride;
    stride *= shape[i];
  }
  return strides;
}

Tensor::Tensor(std::shared_ptr<Storage> storage, size_t offset, DType dtype, Shape shape)
    : storage_(std::move(storage)), offset_(offset), dtype_(dtype), shape_(std::move(shape)) {
  const int64_t count = shape_numel(shape_);
  const uint64_t bytes = static_cast<uint64_t>(count) * dtype_size(dtype_);
  VG_CHECK(storage_ != nullptr, "tensor ", shape_string(shape_), " has no storage");
  VG_CHECK(offset_ <= storage_->bytes() && bytes <= storage_->bytes() - offset_, "tensor ", dtype_name(dtype_),
           shape_string(shape_), " at byte ", offset_, " does not fit its storage of ", storage_->bytes(), " bytes");
  strides_ = contiguous_strides(shape_);
}

Tensor Tensor::empty_host(DType dtype, Shape shape) {
  const size_t bytes = static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype);
  return Tensor(allocate_host(bytes), 0, dtype, std::move(shape));
}

Tensor Tensor::from_host(DType dtype, Shape shape, const void* values) {
  Tensor t = empty_host(dtype, std::move(shape));
  if (t.nbytes()) std::memcpy(t.raw(), values, t.nbytes());
  return t;
}

int64_t Tensor::dim(int axis) const {
  const int r = rank();
  const int a = axis < 0 ? axis + r : axis;
  VG_CHECK(a >= 0 && a < r, "axis ", axis, " out of range for ", describe());
  return shape_[a];
}

int64_t Tensor::stride(int axis) const {
  const int r = rank();
  const int a = axis < 0 ? axis + r : axis;
  VG_CHECK(a >= 0 && a < r, "axis ", axis, " out of range for ", describe());
  return strides_[a];
}

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape_) n *= d;
  return n;
}

bool Tensor::is_contiguous() const {
  int64_t expected = 1;
  for (size_t i = shape_.size(); i-- > 0;) {
    if (shape_[i] != 1 && strides_[i] != expected) return false;
    expected *= shape_[i];
  }
  return true;
}

Tensor Tensor::view(Shape shape) const {
  VG_CHECK(is_contiguous(), "view of non-contiguous tensor ", describe());
  int infer = -1;
  int64_t known = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      VG_CHECK(infer < 0, "view: more than one -1 in ", shape_string(shape));
      infer = static_cast<int>(i);
    } else {
      VG_CHECK(shape[i] >= 0, "view: negative dimension in ", shape_string(shape));
      known *= shape[i];
    }
  }
  if (infer >= 0) {
    VG_CHECK(known != 0 && numel() % known == 0, "view: cannot infer ", shape_string(shape), " from ", describe());
    shape[infer] = numel() / known;
  }
  VG_CHECK(shape_numel(shape) == numel(), "view: ", shape_string(shape), " does not match ", describe());
  Tensor out = *this;
  out.shape_ = std::move(shape);
  out.strides_ = contiguous_strides(out.shape_);
  return out;
}

Tensor Tensor::slice(int axis, int64_t begin, int64_t end) const {
  const int a = axis < 0 ? axis + rank() : axis;
  VG_CHECK(a >= 0 && a < rank(), "slice axis ", axis, " out of range for ", describe());
  VG_CHECK(0 <= begin && begin <= end && end <= shape_[a], "slice [", begin, ", ", end, ") out of range on axis ", axis,
           " of ", describe());
  Tensor out = *this;
  out.offset_ += static_cast<size_t>(begin * strides_[a]) * dtype_size(dtype_);
  out.shape_[a] = end - begin;
  return out;
}

Tensor Tensor::select(int64_t index) const {
  VG_CHECK(rank() >= 1, "select on scalar tensor");
  Tensor out = slice(0, index, index + 1);
  out.shape_.erase(out.shape_.begin());
  out.strides_.erase(out.strides_.begin());
  return out;
}

Tensor Tensor::contiguous_copy() const {
  VG_CHECK(device() == DeviceKind::CPU, "contiguous_copy of a ", device_kind_name(device()), " tensor");
  Tensor out = empty_host(dtype_, shape_);
  const size_t item = dtype_size(dtype_);
  if (is_contiguous()) {
    std::memcpy(out.raw(), raw(), nbytes());
    return out;
  }
  const int64_t count = numel();
  std::vector<int64_t> index(shape_.size(), 0);
  auto* dst = static_cast<char*>(out.raw());
  const auto* base = static_cast<const char*>(raw());
  for (int64_t n = 0; n < count; ++n) {
    int64_t offset = 0;
    for (size_t i = 0; i < index.size(); ++i) offset += index[i] * strides_[i];
    std::memcpy(dst + n * item, base + offset * static_cast<int64_t>(item), item);
    for (size_t i = index.size(); i-- > 0;) {
      if (++index[i] < shape_[i]) break;
      index[i] = 0;
    }
  }
  return out;
}

std::string Tensor::describe() const { return std::string(dtype_name(dtype_)) + shape_string(shape_); }

}  // namespace vargpt
