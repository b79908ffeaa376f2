// runOp table, normalisation and modulation (the list of ops with their inputs and attrs is at the top of ops.cc).
#include "ops_bind.h"

namespace vargpt::binding {

void add_norm_binders(BinderTable& table) {
  const BinderTable ops = {
      {"rms_norm",
       [](Backend& be, const OpCall& c) {
         Inputs in(be, c, 2, 2);
         Tensor x = in[0], w = in[1];
         const float eps = static_cast<float>(c.attrs.number("eps"));
         Tensor out = be.empty(DType::F32, x.shape());
         return BoundOp{[&be, x, w, eps, out] { be.rms_norm(x, w, eps, out); }, {out}};
       }},
      {"layer_norm",
       [](Backend& be, const OpCall& c) {
         Inputs in(be, c, 1, 3);
         Tensor x = in[0];
         const Tensor* wp = in.optional(1);
         const Tensor* bp = in.optional(2);
         Tensor w = wp ? *wp : Tensor(), b = bp ? *bp : Tensor();
         const bool has_w = wp != nullptr, has_b = bp != nullptr;
         const float eps = static_cast<float>(c.attrs.number("eps"));
         Tensor out = be.empty(DType::F32, x.shape());
         return BoundOp{[&be, x, w, b, has_w, has_b, eps, out] {
                          be.layer_norm(x, has_w ? &w : nullptr, has_b ? &b : nullptr, eps, out);
                        },
                        {out}};
       }},
      {"norm_modulate",
       [](Backend& be, const OpCall& c) {
         Inputs in(be, c, 2, 5);
         Tensor x = in[0], scale = in[1];
         const Tensor* sp = in.optional(2);
         const Tensor* wp = in.optional(3);
         const Tensor* bp = in.optional(4);
         Tensor shift = sp ? *sp : Tensor(), w = wp ? *wp : Tensor(), b = bp ? *bp : Tensor();
         const std::string kind = c.attrs.string("norm");
         VG_CHECK(kind == "layer" || kind == "rms", c.op, ": norm \"", kind, "\" must be layer or rms");
         const NormKind norm = kind == "rms" ? NormKind::RMSNorm : NormKind::LayerNorm;
         const float eps = static_cast<float>(c.attrs.number("eps"));
         Tensor out = be.empty(DType::F32, x.shape());
         return BoundOp{[&be, x, norm, w, b, eps, scale, shift, out] {
                          be.norm_modulate(x, norm, w.defined() ? &w : nullptr, b.defined() ? &b : nullptr, eps,
                                           scale, shift.defined() ? &shift : nullptr, out);
                        },
                        {out}};
       }},
      {"gated_add",
       [](Backend& be, const OpCall& c) {
         Inputs in(be, c, 3, 3);
         Tensor out = copy_of(be, in[0]);
         Tensor y = in[1], gate = in[2];
         const Activation act = parse_activation(c.op, c.attrs.string("act", std::string("none")));
         return BoundOp{[&be, out, y, gate, act] { be.gated_add(out, y, gate, act); }, {out}};
       }},
      {"group_norm",
       [](Backend& be, const OpCall& c) {
         Inputs in(be, c, 3, 3);
         Tensor x = in[0], w = in[1], b = in[2];
         const int groups = c.attrs.int32("groups");
         const float eps = static_cast<float>(c.attrs.number("eps"));
         Tensor out = be.empty(DType::F32, x.shape());
         return BoundOp{[&be, x, groups, w, b, eps, out] { be.group_norm(x, groups, w, b, eps, out); }, {out}};
       }},
      {"l2_normalize_heads",
       [](Backend& be, const OpCall& c) {
         Inputs in(be, c, 1, 2);
         Tensor out = copy_of(be, in[0]);
         const Tensor* sp = in.optional(1);
         Tensor scale = sp ? *sp : Tensor();
         const bool has_scale = sp != nullptr;
         const int head_dim = c.attrs.int32("headDim");
         return BoundOp{[&be, out, scale, has_scale, head_dim] {
                          be.l2_normalize_heads(out, head_dim, has_scale ? &scale : nullptr);
                        },
                        {out}};
       }},
  };
  table.insert(ops.begin(), ops.end());
}

}  // namespace vargpt::binding
