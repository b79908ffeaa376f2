#include "weights.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>
#include <vector>

#include "../../core/error.h"
#include "../../core/quantize.h"

namespace vargpt {

WeightLoader::WeightLoader(std::shared_ptr<SafetensorsCheckpoint> checkpoint, Backend& backend, Progress progress,
                           CancelCheck cancelled)
    : checkpoint_(std::move(checkpoint)), backend_(backend), progress_(std::move(progress)), cancelled_(std::move(cancelled)) {
  for (const auto& name : checkpoint_->names()) {
    const TensorInfo& info = checkpoint_->info(name);
    total_ += info.end - info.begin;
  }
}

Shape WeightLoader::shape(const std::string& name) const {
  VG_CHECK(checkpoint_->has(name), checkpoint_->path(), ": checkpoint has no tensor ", name);
  return checkpoint_->info(name).shape;
}

int WeightLoader::dim(const std::string& name, int axis, int rank) const {
  const Shape s = shape(name);
  VG_CHECK(static_cast<int>(s.size()) == rank, checkpoint_->path(), ": ", name, " has rank ", s.size(), ", expected ", rank);
  VG_CHECK(s[axis] > 0 && s[axis] < (int64_t{1} << 30), checkpoint_->path(), ": ", name, " has a bad size ", s[axis]);
  return static_cast<int>(s[axis]);
}

int WeightLoader::count_indexed(const std::string& prefix) const {
  // Indexed module lists (layers.0., layers.1., ...) must be dense: count until the first gap.
  std::set<int> seen;
  for (const auto& name : checkpoint_->names_with_prefix(prefix)) {
    size_t end = prefix.size();
    while (end < name.size() && name[end] >= '0' && name[end] <= '9') ++end;
    if (end == prefix.size() || end >= name.size() || name[end] != '.' || end - prefix.size() > 6) continue;
    seen.insert(std::stoi(name.substr(prefix.size(), end - prefix.size())));
  }
  int count = 0;
  while (seen.count(count)) ++count;
  return count;
}

const TensorInfo& WeightLoader::checked(const std::string& name, const Shape& expected) {
  if (cancelled_ && cancelled_()) throw Cancelled();
  VG_CHECK(checkpoint_->has(name), checkpoint_->path(), ": checkpoint has no tensor ", name, " (expected shape ",
           shape_string(expected), ")");
  const TensorInfo& info = checkpoint_->info(name);
  VG_CHECK(info.shape == expected, checkpoint_->path(), ": tensor ", name, " has shape ", shape_string(info.shape),
           ", expected ", shape_string(expected));
  return info;
}

Tensor WeightLoader::weight_buffer(DType dtype, const Shape& shape) {
  // Slabs of 64 MiB: big enough to hold several of a small model's matrices on huge pages, small
  // enough that the unused end of the last one costs little (its untouched pages are never resident).
  constexpr size_t kSlab = size_t{64} << 20, kSmall = size_t{64} << 10, kAlign = 4096;
  const size_t bytes = static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype);
  if (bytes < kSmall || one_use_) return Tensor::empty_host(dtype, shape);
  const size_t start = (slab_used_ + kAlign - 1) / kAlign * kAlign;
  if (slab_ == nullptr || start + bytes > slab_->bytes()) {
    // A matrix larger than a slab gets a slab of its own, which is then full.
    slab_ = allocate_host(std::max(kSlab, bytes));
    slab_used_ = bytes;
    return Tensor(slab_, 0, dtype, shape);
  }
  slab_used_ = start + bytes;
  return Tensor(slab_, start, dtype, shape);
}

Tensor WeightLoader::resident(const std::string& name, const Tensor& stored) {
  if (map_weights_ || one_use_ || backend_.device() != DeviceKind::CPU) return stored;
  Tensor copy = weight_buffer(stored.dtype(), stored.shape());
  if (stored.nbytes() != 0) std::memcpy(copy.raw(), stored.raw(), stored.nbytes());
  release(name);  // copied: the mapped bytes are not read again
  return copy;
}

void WeightLoader::account(const TensorInfo& info) {
  loaded_ += info.end - info.begin;
  if (progress_) progress_(loaded_, total_);
}

Tensor WeightLoader::matrix(const std::string& name, const Shape& expected) {
  const TensorInfo& info = checked(name, expected);
  VG_CHECK(dtype_is_float(info.dtype), checkpoint_->path(), ": tensor ", name, " has dtype ", dtype_name(info.dtype),
           ", expected f32, bf16 or f16");
  Tensor out = backend_.upload(resident(name, checkpoint_->get(name)));
  account(info);
  return out;
}

MatrixWeight WeightLoader::prequantized(const std::string& name, const Shape& expected) {
  const std::string& path = checkpoint_->path();
  VG_CHECK(expected.size() == 2, "quantizable: ", name, " must be a matrix");
  const int64_t N = expected[0], K = expected[1];
  const bool int8 = checkpoint_->info(name).dtype == DType::I8;
  const LinearPrecision stored = int8 ? LinearPrecision::Int8 : LinearPrecision::Q4;
  VG_CHECK(linear_precision_ == LinearPrecision::Stored || linear_precision_ == stored, path, ": tensor ", name,
           " is stored as ", linear_precision_name(stored), " (a checkpoint written by vargpt quantize); load it with "
           "weights 'auto' or '", linear_precision_name(stored), "'");
  if (int8) {
    const TensorInfo& info = checked(name, {N, K});
    const std::string scale_name = name + ".q8_scale";
    const TensorInfo& scale_info = checked(scale_name, {N});
    VG_CHECK(scale_info.dtype == DType::F32, path, ": tensor ", scale_name, " has dtype ", dtype_name(scale_info.dtype),
             ", expected f32");
    const Tensor q = checkpoint_->get(name);
    const Tensor scale = checkpoint_->get(scale_name);
    // The kernel's row sums, and the checks a corrupt file fails: no -128, finite scales >= 0.
    Tensor qparams = Tensor::empty_host(DType::F32, {2, N});
    float* out = qparams.data<float>();
    for (int64_t n = 0; n < N; ++n) {
      const float sc = scale.data<float>()[n];
      VG_CHECK(std::isfinite(sc) && sc >= 0, path, ": tensor ", scale_name, "[", n, "] = ", sc,
               " is not a scale (finite, >= 0)");
      const int8_t* row = q.data<int8_t>() + n * K;
      int64_t total = 0;
      for (int64_t k = 0; k < K; ++k) {
        VG_CHECK(row[k] != -128, path, ": tensor ", name, "[", n, ", ", k, "] = -128 is outside the int8 range [-127, 127]");
        total += row[k];
      }
      out[n] = sc;
      out[N + n] = static_cast<float>(total);
    }
    MatrixWeight w{backend_.upload(resident(name, q)), backend_.upload(qparams)};
    account(info);
    account(scale_info);
    return w;
  }
  const int64_t Kp = q4_padded(K);
  const TensorInfo& info = checked(name, {N, Kp / 2});
  const std::string scale_name = name + ".q4_scale";
  const TensorInfo& scale_info = checked(scale_name, {N, Kp / kQ4Group});
  VG_CHECK(scale_info.dtype == DType::F16, path, ": tensor ", scale_name, " has dtype ", dtype_name(scale_info.dtype),
           ", expected f16");
  const Tensor scales = checkpoint_->get(scale_name);
  for (int64_t i = 0; i < N * (Kp / kQ4Group); ++i) {
    const float d = f16_to_f32(scales.data<uint16_t>()[i]);
    VG_CHECK(std::isfinite(d) && d >= 0, path, ": tensor ", scale_name, " holds ", d, " at ", i,
             ", not a scale (finite, >= 0)");
  }
  MatrixWeight w{backend_.upload(resident(name, checkpoint_->get(name))), backend_.upload(resident(scale_name, scales))};
  account(info);
  account(scale_info);
  return w;
}

MatrixWeight WeightLoader::quantizable(const std::string& name, const Shape& expected) {
  if (checkpoint_->has(name)) {
    const DType stored = checkpoint_->info(name).dtype;
    if (stored == DType::I8 || stored == DType::U8) return prequantized(name, expected);
  }
  if (linear_precision_ == LinearPrecision::Stored) return MatrixWeight{matrix(name, expected), Tensor()};
  const TensorInfo& info = checked(name, expected);
  VG_CHECK(dtype_is_float(info.dtype), checkpoint_->path(), ": tensor ", name, " has dtype ", dtype_name(info.dtype),
           ", expected f32, bf16 or f16");
  VG_CHECK(expected.size() == 2, "quantizable: ", name, " must be a matrix");
  const Tensor stored = checkpoint_->get(name);
  const int64_t N = expected[0], K = expected[1];
  if (linear_precision_ == LinearPrecision::F32 || linear_precision_ == LinearPrecision::BF16) {
    const DType target = linear_precision_ == LinearPrecision::F32 ? DType::F32 : DType::BF16;
    if (info.dtype == target) return MatrixWeight{matrix(name, expected), Tensor()};
    // Converted element by element (to bf16 rounding to nearest even, as torch's .to(bfloat16)).
    Tensor converted = weight_buffer(target, {N, K});
    const size_t count = static_cast<size_t>(N * K);
    if (target == DType::F32) {
      convert_to_f32(stored.dtype(), stored.raw(), converted.data<float>(), count);
    } else {
      std::vector<float> row(static_cast<size_t>(K));
      for (int64_t n = 0; n < N; ++n) {
        convert_to_f32(stored.dtype(), static_cast<const uint8_t*>(stored.raw()) + n * K * dtype_size(stored.dtype()),
                       row.data(), row.size());
        uint16_t* out = converted.data<uint16_t>() + n * K;
        for (int64_t k = 0; k < K; ++k) out[k] = f32_to_bf16(row[static_cast<size_t>(k)]);
      }
    }
    MatrixWeight out{backend_.upload(converted), Tensor()};
    release(name);  // converted: the stored bytes are not read again
    account(info);
    return out;
  }
  if (linear_precision_ == LinearPrecision::Q4) {
    const int64_t Kp = q4_padded(K);
    Tensor packed = weight_buffer(DType::U8, {N, Kp / 2});
    Tensor scales = weight_buffer(DType::F16, {N, Kp / kQ4Group});
    try {
      quantize_q4_rows(stored.dtype(), stored.raw(), N, K, K, packed.data<uint8_t>(), scales.data<uint16_t>());
    } catch (const Error& e) {
      fail(checkpoint_->path(), ": tensor ", name, ": ", e.what());
    }
    MatrixWeight out{backend_.upload(packed), backend_.upload(scales)};
    release(name);  // quantized: the float bytes are not read again
    account(info);
    return out;
  }
  Tensor q = weight_buffer(DType::I8, {N, K});
  Tensor qparams = weight_buffer(DType::F32, {2, N});
  try {
    quantize_q8_rows(stored.dtype(), stored.raw(), N, K, K, q.data<int8_t>(), qparams.data<float>(),
                     qparams.data<float>() + N);
  } catch (const Error& e) {
    fail(checkpoint_->path(), ": tensor ", name, ": ", e.what());
  }
  MatrixWeight out{backend_.upload(q), backend_.upload(qparams)};
  release(name);  // quantized: the float bytes are not read again
  account(info);
  return out;
}

MatrixLinear WeightLoader::quantizable_linear(const std::string& prefix, int64_t out, int64_t in, bool bias) {
  MatrixLinear l;
  l.w = quantizable(prefix + ".weight", {out, in});
  if (bias) l.b = f32(prefix + ".bias", {out});
  return l;
}

Tensor WeightLoader::host_f32(const std::string& name, const Shape& expected) {
  const TensorInfo& info = checked(name, expected);
  VG_CHECK(dtype_is_float(info.dtype), checkpoint_->path(), ": tensor ", name, " has dtype ", dtype_name(info.dtype),
           ", expected f32, bf16 or f16");
  Tensor stored = checkpoint_->get(name);
  if (stored.dtype() == DType::F32) return stored;
  Tensor out = Tensor::empty_host(DType::F32, stored.shape());
  convert_to_f32(stored.dtype(), stored.raw(), out.data<float>(), static_cast<size_t>(stored.numel()));
  return out;
}

Tensor WeightLoader::f32(const std::string& name, const Shape& expected) {
  Tensor host = host_f32(name, expected);
  // An f32 checkpoint's tensor comes back mapped, in place; widened ones are copies already.
  if (checkpoint_->info(name).dtype == DType::F32) host = resident(name, host);
  Tensor out = backend_.upload(host);
  account(checkpoint_->info(name));
  return out;
}

std::vector<int64_t> WeightLoader::host_ints(const std::string& name, const Shape& expected) {
  const TensorInfo& info = checked(name, expected);
  Tensor stored = checkpoint_->get(name);
  std::vector<int64_t> values(static_cast<size_t>(stored.numel()));
  if (info.dtype == DType::I64) {
    std::memcpy(values.data(), stored.raw(), values.size() * sizeof(int64_t));
  } else if (info.dtype == DType::I32) {
    for (size_t i = 0; i < values.size(); ++i) values[i] = stored.data<int32_t>()[i];
  } else {
    fail(checkpoint_->path(), ": tensor ", name, " has dtype ", dtype_name(info.dtype), ", expected i64 or i32");
  }
  account(info);
  return values;
}

LinearWeights WeightLoader::linear(const std::string& prefix, int64_t out, int64_t in, bool bias) {
  LinearWeights l;
  l.w = matrix(prefix + ".weight", {out, in});
  if (bias) l.b = f32(prefix + ".bias", {out});
  return l;
}

Tensor WeightLoader::apply_once(const std::string& prefix, const Tensor& x, int64_t out, int64_t in) {
  Tensor y = backend_.empty(DType::F32, {x.dim(0), out});
  {
    struct OneUse {
      bool& flag;
      const bool outer;
      explicit OneUse(bool& f) : flag(f), outer(f) { flag = true; }
      ~OneUse() { flag = outer; }
    } scope(one_use_);
    const MatrixLinear layer = quantizable_linear(prefix, out, in, true);
    vargpt::linear(backend_, x, layer, y);  // the free function, not the loader's linear()
  }
  release(prefix + ".weight");
  return y;
}

ConvWeights WeightLoader::conv(const std::string& prefix, int64_t out, int64_t in, int64_t k, bool bias) {
  ConvWeights c;
  c.w = f32(prefix + ".weight", {out, in, k, k});
  if (bias) c.b = f32(prefix + ".bias", {out});
  return c;
}

NormWeights WeightLoader::norm(const std::string& prefix, int64_t channels, bool bias) {
  NormWeights n;
  n.w = f32(prefix + ".weight", {channels});
  if (bias) n.b = f32(prefix + ".bias", {channels});
  return n;
}

void WeightLoader::release(const std::string& name) {
  checkpoint_->release_pages(name);
  released_.push_back(name);
}

void WeightLoader::finish() {
  // Reading a tensor maps, besides its own pages, the neighbouring pages still in the page cache
  // (the kernel's fault-around, 64 KB windows), so the edge pages of a tensor released earlier can
  // be mapped again by a later read of the tensor next to it. Releasing every released tensor once
  // more, now that nothing else is read, leaves none of them mapped.
  for (const std::string& name : released_) checkpoint_->release_pages(name);
  released_.clear();
  released_.shrink_to_fit();
  loaded_ = total_;
  if (progress_) progress_(loaded_, total_);
}

void linear(Backend& b, const Tensor& x, const MatrixWeight& w, const Tensor* bias, const Tensor& y, Activation act,
            bool accumulate) {
  if (w.int8())
    b.linear_q8(x, w.w, w.qparams, bias, y, act, accumulate);
  else if (w.q4())
    b.linear_q4(x, w.w, w.qparams, bias, y, act, accumulate);
  else
    b.linear(x, w.w, bias, y, act, accumulate);
}

void linear(Backend& b, const Tensor& x, const MatrixLinear& l, const Tensor& y, Activation act, bool accumulate) {
  linear(b, x, l.w, l.b.defined() ? &l.b : nullptr, y, act, accumulate);
}

const char* matrix_weight_precision(const MatrixWeight& w) {
  if (w.int8()) return "int8";
  if (w.q4()) return "q4";
  return dtype_name(w.w.dtype());
}

const char* linear_precision_name(LinearPrecision precision) {
  switch (precision) {
    case LinearPrecision::F32: return "f32";
    case LinearPrecision::BF16: return "bf16";
    case LinearPrecision::Int8: return "int8";
    case LinearPrecision::Q4: return "q4";
    case LinearPrecision::Stored: break;
  }
  return "stored";
}

}  // namespace vargpt
