// Host side of cuda_common.cuh: error formatting, argument checks, row maps, scratch tensors.
#include <algorithm>

#include "cuda_common.cuh"
#include "device_memory.cuh"

namespace vargpt::cuda {

std::string describe_cuda(cudaError_t status) {
  return std::string(cudaGetErrorName(status)) + ": " + cudaGetErrorString(status);
}

void fail_cuda(const char* op, const char* what, cudaError_t status) {
  fail(op, ": ", what, " failed (", describe_cuda(status), ")");
}

Tensor scratch(const Ctx& ctx, DType dtype, Shape shape, const char* op) {
  const size_t bytes = static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype);
  return Tensor(ctx.allocator->allocate(bytes, op), 0, dtype, std::move(shape));
}

void check_device(const Ctx& ctx, const char* op, const char* name, const Tensor& t) {
  VG_CHECK(t.defined(), op, ": ", name, " is an undefined tensor");
  VG_CHECK(t.device() == DeviceKind::CUDA, op, ": ", name, " ", t.describe(), " lives on ",
           device_kind_name(t.device()), ", not on cuda:", ctx.device, " (upload it first)");
  const auto* storage = dynamic_cast<const DeviceStorage*>(t.storage().get());
  VG_CHECK(storage != nullptr && storage->device_index() == ctx.device, op, ": ", name, " ", t.describe(),
           " lives on another CUDA device than cuda:", ctx.device);
}

void check_dtype(const Ctx& ctx, const char* op, const char* name, const Tensor& t, DType dtype) {
  check_device(ctx, op, name, t);
  VG_CHECK(t.dtype() == dtype, op, ": ", name, " ", t.describe(), " must be ", dtype_name(dtype));
}

void check_float(const Ctx& ctx, const char* op, const char* name, const Tensor& t) {
  check_device(ctx, op, name, t);
  VG_CHECK(dtype_is_float(t.dtype()), op, ": ", name, " ", t.describe(), " must be f32, bf16 or f16");
}

void check_f32_or_bf16(const Ctx& ctx, const char* op, const char* name, const Tensor& t) {
  check_device(ctx, op, name, t);
  VG_CHECK(t.dtype() == DType::F32 || t.dtype() == DType::BF16, op, ": ", name, " ", t.describe(),
           " must be f32 or bf16");
}

void check_vector(const Ctx& ctx, const char* op, const char* name, const Tensor& t, int64_t expected) {
  check_float(ctx, op, name, t);
  VG_CHECK(t.numel() == expected && t.rank() >= 1 && t.dim(-1) == expected, op, ": ", name, " ", t.describe(),
           " must have ", expected, " elements on one axis");
  VG_CHECK(expected <= 1 || t.stride(-1) == 1, op, ": ", name, " ", t.describe(), " must be dense");
}

RowMap row_map(const char* op, const char* name, const Tensor& t) {
  RowMap m;
  const int r = t.rank();
  VG_CHECK(r <= 32, op, ": ", name, " ", t.describe(), " has too many axes");
  m.cols = r == 0 ? 1 : t.shape()[r - 1];
  m.rows = 1;
  int64_t dims[32], strides[32];
  int lead = 0;
  for (int i = 0; i + 1 < r; ++i) {
    m.rows *= t.shape()[i];
    if (t.shape()[i] == 1) continue;  // size-1 axes add nothing to an address
    if (lead > 0 && strides[lead - 1] == t.strides()[i] * t.shape()[i]) {
      dims[lead - 1] *= t.shape()[i];  // collapses with the previous axis into one stride
      strides[lead - 1] = t.strides()[i];
      continue;
    }
    dims[lead] = t.shape()[i];
    strides[lead] = t.strides()[i];
    ++lead;
  }
  VG_CHECK(lead <= kMaxLead, op, ": ", name, " ", t.describe(), " has more than ", kMaxLead,
           " non-mergeable leading axes");
  m.lead = lead;
  for (int i = 0; i < lead; ++i) {
    m.dims[i] = dims[i];
    m.strides[i] = strides[i];
  }
  return m;
}

}  // namespace vargpt::cuda
