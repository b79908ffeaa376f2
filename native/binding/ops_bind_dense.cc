// runOp table, dense algebra: linear, attention (the list of ops with their inputs and attrs is at the top of ops.cc).
#include "ops_bind.h"

#include "../core/quantize.h"

namespace vargpt::binding {

namespace {

// The arguments linear_q8 and linear_q4 share: x and an optional bias on the backend, the float
// weight as the host tensor the op quantizes, the activation.
struct QuantizedOpArgs {
  Tensor x, bias, host_w;
  bool has_bias = false;
  Activation act = Activation::None;
  QuantizedOpArgs(Backend& be, const OpCall& c) {
    Inputs in(be, c, 2, 3);
    x = in[0];
    has_bias = in.optional(2) != nullptr;
    if (has_bias) bias = *in.optional(2);
    host_w = c.inputs[1];
    act = parse_activation(c.op, c.attrs.string("act", std::string("none")));
    VG_CHECK(x.rank() >= 1 && host_w.rank() == 2 && host_w.is_contiguous(), c.op, ": x ", x.describe(),
             " must be [..., K] and w ", host_w.describe(), " [N, K]");
  }
};

}  // namespace

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
      {"linear_q8",
       // w (f32, bf16 or f16, a host tensor) is quantized as the model loader does (core/quantize.h);
       // outputs y and, for the reference, q (as f32) and qparams [2, N].
       [](Backend& be, const OpCall& c) {
         const QuantizedOpArgs a(be, c);
         const Tensor& host_w = a.host_w;
         const int64_t N = host_w.dim(0), K = host_w.dim(1);
         Tensor q = Tensor::empty_host(DType::I8, {N, K});
         Tensor qparams = Tensor::empty_host(DType::F32, {2, N});
         quantize_q8_rows(host_w.dtype(), host_w.raw(), N, K, K, q.data<int8_t>(), qparams.data<float>(),
                          qparams.data<float>() + N);
         Tensor q_f32 = Tensor::empty_host(DType::F32, {N, K});
         for (int64_t i = 0; i < N * K; ++i) q_f32.data<float>()[i] = q.data<int8_t>()[i];
         Shape s = a.x.shape();
         s.back() = N;
         Tensor out = be.empty(DType::F32, s);
         const Tensor w_dev = be.upload(q), qp_dev = be.upload(qparams);
         return BoundOp{[&be, a, w_dev, qp_dev, out] {
                          be.linear_q8(a.x, w_dev, qp_dev, a.has_bias ? &a.bias : nullptr, out, a.act, false);
                        },
                        {out, be.upload(q_f32), be.upload(qparams)}};
       }},
      {"linear_q4",
       // As linear_q8, with w quantized to 4 bits in groups of 32; outputs y and, for the
       // reference, q [N, Kp] (as f32, the padding included) and the group scales [N, Kp / 32] (f32).
       [](Backend& be, const OpCall& c) {
         const QuantizedOpArgs a(be, c);
         const Tensor& host_w = a.host_w;
         const int64_t N = host_w.dim(0), K = host_w.dim(1), Kp = q4_padded(K), G = Kp / kQ4Group;
         Tensor packed = Tensor::empty_host(DType::U8, {N, Kp / 2});
         Tensor scales = Tensor::empty_host(DType::F16, {N, G});
         quantize_q4_rows(host_w.dtype(), host_w.raw(), N, K, K, packed.data<uint8_t>(), scales.data<uint16_t>());
         Tensor q_f32 = Tensor::empty_host(DType::F32, {N, Kp});
         Tensor d_f32 = Tensor::empty_host(DType::F32, {N, G});
         for (int64_t n = 0; n < N; ++n) {
           for (int64_t k = 0; k < Kp; ++k) {
             const uint8_t byte = packed.data<uint8_t>()[n * (Kp / 2) + k / 64 * 32 + k % 32];
             q_f32.data<float>()[n * Kp + k] = static_cast<float>((k % 64 < 32 ? byte & 0x0f : byte >> 4) - 8);
           }
           for (int64_t g = 0; g < G; ++g) d_f32.data<float>()[n * G + g] = f16_to_f32(scales.data<uint16_t>()[n * G + g]);
         }
         Shape s = a.x.shape();
         s.back() = N;
         Tensor out = be.empty(DType::F32, s);
         const Tensor w_dev = be.upload(packed), s_dev = be.upload(scales);
         return BoundOp{[&be, a, w_dev, s_dev, out] {
                          be.linear_q4(a.x, w_dev, s_dev, a.has_bias ? &a.bias : nullptr, out, a.act, false);
                        },
                        {out, be.upload(q_f32), be.upload(d_f32)}};
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
