// Shared by the runOp table files (ops_bind*.cc): input access, output helpers and the table
// type. ops.h has the parsed call and the bound op; ops.cc lists every op.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "ops.h"

namespace vargpt::binding {

inline Activation parse_activation(const std::string& op, const std::string& name) {
  for (Activation a : {Activation::None, Activation::SiLU, Activation::GeluErf, Activation::GeluTanh,
                       Activation::QuickGelu, Activation::Tanh})
    if (name == activation_name(a)) return a;
  fail(op, ": unknown activation \"", name, "\" (none, silu, gelu, gelu_tanh, quick_gelu, tanh)");
}

// Input access with the op's name in every message; inputs are uploaded to the backend once.
class Inputs {
 public:
  Inputs(Backend& be, const OpCall& call, size_t min_count, size_t max_count) : op_(call.op) {
    VG_CHECK(call.inputs.size() >= min_count && call.inputs.size() <= max_count, op_, ": expected ",
             min_count == max_count ? std::to_string(min_count)
                                    : std::to_string(min_count) + " to " + std::to_string(max_count),
             " inputs, got ", call.inputs.size());
    for (const Tensor& t : call.inputs) tensors_.push_back(t.defined() ? be.upload(t) : Tensor());
  }
  const Tensor& operator[](size_t i) const {
    VG_CHECK(i < tensors_.size() && tensors_[i].defined(), op_, ": input ", i, " is required");
    return tensors_[i];
  }
  // Optional input: null, undefined or absent.
  const Tensor* optional(size_t i) const {
    return i < tensors_.size() && tensors_[i].defined() ? &tensors_[i] : nullptr;
  }

 private:
  std::string op_;
  std::vector<Tensor> tensors_;
};

inline Shape to_shape(const std::vector<int64_t>& dims, const std::string& op, const char* what) {
  for (int64_t d : dims) VG_CHECK(d >= 0, op, ": ", what, " has a negative dimension");
  shape_numel(dims);
  return Shape(dims.begin(), dims.end());
}

// An output holding a copy of an input (ops that work in place never touch JS memory).
inline Tensor copy_of(Backend& be, const Tensor& t) {
  Tensor out = be.empty(t.dtype(), t.shape());
  be.copy(t, out);
  return out;
}

// The output shape of a resize: x's leading axes, then attrs.size = [H, W].
inline Shape resized_shape(const OpCall& c, const Tensor& x) {
  const auto size = c.attrs.integers("size");
  VG_CHECK(size.size() == 2 && size[0] > 0 && size[1] > 0, c.op, ": size must be [H, W], positive");
  VG_CHECK(x.rank() == 3 || x.rank() == 4, c.op, ": x ", x.describe(), " must be [N?, C, H, W]");
  Shape s = x.shape();
  s[s.size() - 2] = size[0];
  s[s.size() - 1] = size[1];
  return s;
}

using Binder = std::function<BoundOp(Backend&, const OpCall&)>;
using BinderTable = std::map<std::string, Binder>;

// One per category file.
void add_memory_binders(BinderTable& table);
void add_dense_binders(BinderTable& table);
void add_norm_binders(BinderTable& table);
void add_elementwise_binders(BinderTable& table);
void add_image_binders(BinderTable& table);
void add_tokens_binders(BinderTable& table);

}  // namespace vargpt::binding
