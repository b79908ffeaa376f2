// runOp table, dense algebra: linear, attention (the list of ops with their inputs and attrs is at the top of ops.cc).
#include "ops_bind.h"

namespace vargpt::binding {

void add_dense_binders(BinderTable& table) {
  const BinderTable ops = {
      {"linear",
       [](Backend& be, const OpCall& c) {
         Inputs in(be, c, 2, 4);
         Tensor x = in[0], w = in[1];
         const Tensor* bias = in.optional(2);
         const Tensor* y_init = in.optional(3);
         const Activation act = parse_activation(c.op, c.attrs.string("act", std::string("none")));
         const bool accumulate = c.attrs.boolean("accumulate", false);
         VG_CHECK(!accumulate || y_init != nullptr, c.op, ": accumulate needs the initial y as inputs[3]");
         VG_CHECK(x.rank() >= 1 && w.rank() == 2, c.op, ": x ", x.describe(), " must be [..., K] and w ",
                  w.describe(), " [N, K]");
         Shape s = x.shape();
         s.back() = w.dim(0);
         Tensor out = y_init ? copy_of(be, *y_init) : be.empty(DType::F32, s);
         const bool has_bias = bias != nullptr;
         Tensor b = has_bias ? *bias : Tensor();
         return BoundOp{[&be, x, w, b, has_bias, out, act, accumulate] {
                          be.linear(x, w, has_bias ? &b : nullptr, out, act, accumulate);
                        },
                        {out}};
       }},
      {"attention",
       [](Backend& be, const OpCall& c) {
         Inputs in(be, c, 3, 3);
         AttentionParams p;
         p.q_heads = c.attrs.int32("qHeads");
         p.kv_heads = c.attrs.int32("kvHeads");
         p.head_dim = c.attrs.int32("headDim");
         p.scale = static_cast<float>(c.attrs.number("scale"));
         p.mask = c.attrs.boolean("causal", false) ? AttentionMask::Causal : AttentionMask::None;
         if (c.attrs.has("segments")) p.segments = c.attrs.integers("segments");
         Tensor q = in[0], k = in[1], v = in[2];
         if (c.attrs.has("kvBegin") || c.attrs.has("kvEnd")) {
           const int64_t len = k.rank() >= 2 ? k.dim(-2) : 0;
           const int64_t b = c.attrs.integer("kvBegin", 0), e = c.attrs.integer("kvEnd", len);
           k = k.slice(-2, b, e);
           v = v.slice(-2, b, e);
         }
         Tensor out = be.empty(DType::F32, q.shape());
         return BoundOp{[&be, q, k, v, out, p] { be.attention(q, k, v, out, p); }, {out}};
       }},
  };
  table.insert(ops.begin(), ops.end());
}

}  // namespace vargpt::binding
