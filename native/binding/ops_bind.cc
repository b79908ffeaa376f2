// The runOp table: for each op name, check the inputs, allocate the outputs on the backend and
// bind the Backend call (the list with inputs, attrs and outputs is at the top of ops.cc).
#include <cstring>
#include <functional>
#include <map>

#include "../backend/cpu/cpu_ops.h"
#include "../backend/cuda_loader.h"
#include "ops.h"

namespace vargpt::binding {

namespace {

Activation parse_activation(const std::string& op, const std::string& name) {
  for (Activation a :
       {Activation::None, Activation::SiLU, Activation::GeluErf, Activation::GeluTanh, Activation::QuickGelu})
    if (name == activation_name(a)) return a;
  fail(op, ": unknown activation \"", name, "\" (none, silu, gelu, gelu_tanh, quick_gelu)");
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

Shape to_shape(const std::vector<int64_t>& dims, const std::string& op, const char* what) {
  for (int64_t d : dims) VG_CHECK(d >= 0, op, ": ", what, " has a negative dimension");
  shape_numel(dims);
  return Shape(dims.begin(), dims.end());
}

// An output holding a copy of an input (ops that work in place never touch JS memory).
Tensor copy_of(Backend& be, const Tensor& t) {
  Tensor out = be.empty(t.dtype(), t.shape());
  be.copy(t, out);
  return out;
}

using Binder = std::function<BoundOp(Backend&, const OpCall&)>;

const std::map<std::string, Binder>& binders() {
  static const std::map<std::string, Binder> table = {
      {"copy",
       [](Backend& be, const OpCall& c) {
         Inputs in(be, c, 1, 1);
         Tensor src = in[0];
         if (c.attrs.has("slice")) {
           const auto s = c.attrs.integers("slice");
           VG_CHECK(s.size() == 3, c.op, ": slice must be [axis, begin, end]");
           src = src.slice(static_cast<int>(s[0]), s[1], s[2]);
         }
         if (!c.attrs.has("outShape")) {
           Tensor out = be.empty(src.dtype(), src.shape());
           return BoundOp{[&be, src, out] { be.copy(src, out); }, {out}};
         }
         Tensor zeros = Tensor::empty_host(src.dtype(), to_shape(c.attrs.integers("outShape"), c.op, "outShape"));
         std::memset(zeros.raw(), 0, zeros.nbytes());
         Tensor out = be.upload(zeros);
         Tensor dst = out;
         if (c.attrs.has("outSlice")) {
           const auto s = c.attrs.integers("outSlice");
           VG_CHECK(s.size() == 3, c.op, ": outSlice must be [axis, begin, end]");
           dst = dst.slice(static_cast<int>(s[0]), s[1], s[2]);
         }
         return BoundOp{[&be, src, dst] { be.copy(src, dst); }, {out}};
       }},
      {"fill",
       [](Backend& be, const OpCall& c) {
         Inputs in(be, c, 0, 0);
         Tensor out = be.empty(DType::F32, to_shape(c.attrs.integers("shape"), c.op, "shape"));
         const float value = static_cast<float>(c.attrs.number("value"));
         return BoundOp{[&be, out, value] { be.fill(out, value); }, {out}};
       }},
      {"cast",
       [](Backend& be, const OpCall& c) {
         Inputs in(be, c, 1, 1);
         const std::string name = c.attrs.string("dtype");
         DType dtype = DType::F32;
         if (name == "bf16") dtype = DType::BF16;
         else if (name == "f16") dtype = DType::F16;
         else VG_CHECK(name == "f32", c.op, ": dtype \"", name, "\" must be f32, bf16 or f16");
         Tensor out = be.empty(dtype, in[0].shape());
         Tensor x = in[0];
         return BoundOp{[&be, x, out] { be.cast(x, out); }, {out}};
       }},
      {"transpose",
       [](Backend& be, const OpCall& c) {
         Inputs in(be, c, 1, 1);
         Tensor x = in[0];
         VG_CHECK(x.rank() == 2 || x.rank() == 3, c.op, ": x ", x.describe(), " must be [R, C] or [B, R, C]");
         Shape s = x.shape();
         std::swap(s[s.size() - 1], s[s.size() - 2]);
         Tensor out = be.empty(x.dtype(), s);
         return BoundOp{[&be, x, out] { be.transpose(x, out); }, {out}};
       }},
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
      {"adaln_modulate",
       [](Backend& be, const OpCall& c) {
         Inputs in(be, c, 3, 3);
         Tensor x = in[0], scale = in[1], shift = in[2];
         const float eps = static_cast<float>(c.attrs.number("eps"));
         Tensor out = be.empty(DType::F32, x.shape());
         return BoundOp{[&be, x, scale, shift, eps, out] { be.adaln_modulate(x, scale, shift, eps, out); }, {out}};
       }},
      {"gated_add",
       [](Backend& be, const OpCall& c) {
         Inputs in(be, c, 3, 3);
         Tensor out = copy_of(be, in[0]);
         Tensor y = in[1], gate = in[2];
         return BoundOp{[&be, out, y, gate] { be.gated_add(out, y, gate); }, {out}};
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
      {"activation",
       [](Backend& be, const OpCall& c) {
         Inputs in(be, c, 1, 1);
         Tensor x = in[0];
         const Activation act = parse_activation(c.op, c.attrs.string("act"));
         Tensor out = be.empty(DType::F32, x.shape());
         return BoundOp{[&be, x, act, out] { be.activation(x, act, out); }, {out}};
       }},
      {"swiglu",
       [](Backend& be, const OpCall& c) {
         Inputs in(be, c, 2, 2);
         Tensor g = in[0], u = in[1];
         Tensor out = be.empty(DType::F32, g.shape());
         return BoundOp{[&be, g, u, out] { be.swiglu(g, u, out); }, {out}};
       }},
      {"add",
       [](Backend& be, const OpCall& c) {
         Inputs in(be, c, 2, 2);
         Tensor a = in[0], b = in[1];
         Tensor out = be.empty(DType::F32, a.shape());
         return BoundOp{[&be, a, b, out] { be.add(a, b, out); }, {out}};
       }},
      {"axpby",
       [](Backend& be, const OpCall& c) {
         Inputs in(be, c, 2, 2);
         Tensor a = in[0], b = in[1];
         const float alpha = static_cast<float>(c.attrs.number("alpha"));
         const float beta = static_cast<float>(c.attrs.number("beta"));
         Tensor out = be.empty(DType::F32, a.shape());
         return BoundOp{[&be, alpha, a, beta, b, out] { be.axpby(alpha, a, beta, b, out); }, {out}};
       }},
      {"rope",
       [](Backend& be, const OpCall& c) {
         Inputs in(be, c, 2, 2);
         Tensor out = copy_of(be, in[0]);
         Tensor table = in[1];
         const int head_dim = c.attrs.int32("headDim");
         const std::string pairing = c.attrs.string("pairing", std::string("rotate_half"));
         VG_CHECK(pairing == "rotate_half" || pairing == "interleaved", c.op, ": pairing \"", pairing,
                  "\" must be rotate_half or interleaved");
         const RopePairing p = pairing == "rotate_half" ? RopePairing::RotateHalf : RopePairing::Interleaved;
         return BoundOp{[&be, out, table, head_dim, p] { be.rope(out, table, head_dim, p); }, {out}};
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
      {"conv2d",
       [](Backend& be, const OpCall& c) {
         Inputs in(be, c, 2, 3);
         Tensor x = in[0], w = in[1];
         const Tensor* bp = in.optional(2);
         Tensor b = bp ? *bp : Tensor();
         const bool has_b = bp != nullptr;
         Conv2dParams p;
         p.stride = c.attrs.int32("stride", 1);
         if (c.attrs.has("padding")) {
           std::vector<int64_t> pad = c.attrs.integer_or_list("padding");
           VG_CHECK(pad.size() == 1 || pad.size() == 4, c.op, ": padding must be n or [top, bottom, left, right]");
           if (pad.size() == 1) pad = {pad[0], pad[0], pad[0], pad[0]};
           for (int64_t v : pad) VG_CHECK(v >= 0 && v < 65536, c.op, ": padding ", v, " is out of range");
           p.pad_top = static_cast<int>(pad[0]);
           p.pad_bottom = static_cast<int>(pad[1]);
           p.pad_left = static_cast<int>(pad[2]);
           p.pad_right = static_cast<int>(pad[3]);
         }
         VG_CHECK((x.rank() == 3 || x.rank() == 4) && w.rank() == 4, c.op, ": x ", x.describe(),
                  " must be [N?, C, H, W] and weight ", w.describe(), " [O, C, kh, kw]");
         VG_CHECK(p.stride >= 1, c.op, ": stride ", p.stride, " must be at least 1");
         const int64_t H = x.dim(-2) + p.pad_top + p.pad_bottom, W = x.dim(-1) + p.pad_left + p.pad_right;
         VG_CHECK(H >= w.dim(2) && W >= w.dim(3), c.op, ": kernel ", w.dim(2), "x", w.dim(3),
                  " is larger than the padded input of x ", x.describe());
         Shape s = x.shape();
         s[s.size() - 3] = w.dim(0);
         s[s.size() - 2] = (H - w.dim(2)) / p.stride + 1;
         s[s.size() - 1] = (W - w.dim(3)) / p.stride + 1;
         Tensor out = be.empty(DType::F32, s);
         return BoundOp{[&be, x, w, b, has_b, p, out] { be.conv2d(x, w, has_b ? &b : nullptr, p, out); }, {out}};
       }},
      {"upsample_nearest2x",
       [](Backend& be, const OpCall& c) {
         Inputs in(be, c, 1, 1);
         Tensor x = in[0];
         VG_CHECK(x.rank() == 3 || x.rank() == 4, c.op, ": x ", x.describe(), " must be [N?, C, H, W]");
         Shape s = x.shape();
         s[s.size() - 2] *= 2;
         s[s.size() - 1] *= 2;
         Tensor out = be.empty(DType::F32, s);
         return BoundOp{[&be, x, out] { be.upsample_nearest2x(x, out); }, {out}};
       }},
      {"resize_bicubic",
       [](Backend& be, const OpCall& c) {
         Inputs in(be, c, 1, 1);
         Tensor x = in[0];
         const auto size = c.attrs.integers("size");
         VG_CHECK(size.size() == 2 && size[0] > 0 && size[1] > 0, c.op, ": size must be [H, W], positive");
         VG_CHECK(x.rank() == 3 || x.rank() == 4, c.op, ": x ", x.describe(), " must be [N?, C, H, W]");
         Shape s = x.shape();
         s[s.size() - 2] = size[0];
         s[s.size() - 1] = size[1];
         Tensor out = be.empty(DType::F32, s);
         return BoundOp{[&be, x, out] { be.resize_bicubic(x, out); }, {out}};
       }},
      {"resize_area",
       [](Backend& be, const OpCall& c) {
         Inputs in(be, c, 1, 1);
         Tensor x = in[0];
         const auto size = c.attrs.integers("size");
         VG_CHECK(size.size() == 2 && size[0] > 0 && size[1] > 0, c.op, ": size must be [H, W], positive");
         VG_CHECK(x.rank() == 3 || x.rank() == 4, c.op, ": x ", x.describe(), " must be [N?, C, H, W]");
         Shape s = x.shape();
         s[s.size() - 2] = size[0];
         s[s.size() - 1] = size[1];
         Tensor out = be.empty(DType::F32, s);
         return BoundOp{[&be, x, out] { be.resize_area(x, out); }, {out}};
       }},
      {"embedding",
       [](Backend& be, const OpCall& c) {
         Inputs in(be, c, 2, 2);
         Tensor ids = in[0], table = in[1];
         VG_CHECK(ids.rank() == 1 && table.rank() == 2, c.op, ": ids ", ids.describe(), " must be [N] and table ",
                  table.describe(), " [V, C]");
         Tensor out = be.empty(DType::F32, {ids.dim(0), table.dim(1)});
         return BoundOp{[&be, ids, table, out] { be.embedding(ids, table, out); }, {out}};
       }},
      {"vq_nearest",
       [](Backend& be, const OpCall& c) {
         Inputs in(be, c, 2, 2);
         Tensor z = in[0], codebook = in[1];
         VG_CHECK(z.rank() == 2, c.op, ": z ", z.describe(), " must be [N, C]");
         Tensor out = be.empty(DType::I32, {z.dim(0)});
         return BoundOp{[&be, z, codebook, out] { be.vq_nearest(z, codebook, out); }, {out}};
       }},
      {"argmax",
       [](Backend& be, const OpCall& c) {
         Inputs in(be, c, 1, 1);
         Tensor x = in[0];
         VG_CHECK(x.rank() == 2, c.op, ": x ", x.describe(), " must be [N, V]");
         Tensor out = be.empty(DType::I32, {x.dim(0)});
         return BoundOp{[&be, x, out] { be.argmax(x, out); }, {out}};
       }},
      {"sample",
       [](Backend& be, const OpCall& c) {
         Inputs in(be, c, 1, 1);
         Tensor logits = in[0];
         VG_CHECK(logits.rank() == 2, c.op, ": logits ", logits.describe(), " must be [N, V]");
         SamplingParams p;
         p.top_k = c.attrs.int32("topK", 0);
         p.top_p = static_cast<float>(c.attrs.number("topP", 1.0));
         p.temperature = static_cast<float>(c.attrs.number("temperature", 1.0));
         VG_CHECK(c.attrs.has("seed"), c.op, ": attribute seed is required");
         p.seed = c.attrs.u64("seed", 0);
         p.stream = c.attrs.u64("stream", 0);
         Tensor idx = be.empty(DType::I32, {logits.dim(0)});
         Tensor kept = be.empty(DType::I32, {logits.dim(0)});
         return BoundOp{[&be, logits, p, idx, kept] { be.sample(logits, p, idx, &kept); }, {idx, kept}};
       }},
      {"randn",
       [](Backend& be, const OpCall& c) {
         Inputs in(be, c, 0, 0);
         Tensor out = be.empty(DType::F32, to_shape(c.attrs.integers("shape"), c.op, "shape"));
         VG_CHECK(c.attrs.has("seed"), c.op, ": attribute seed is required");
         const uint64_t seed = c.attrs.u64("seed", 0), stream = c.attrs.u64("stream", 0);
         return BoundOp{[&be, out, seed, stream] { be.randn(out, seed, stream); }, {out}};
       }},
      {"peak_flops",
       [](Backend& be, const OpCall& c) {
         Inputs in(be, c, 0, 0);
         const double seconds = c.attrs.number("seconds", 1.0);
         // A host tensor on every device: the figure is computed on the host (to_host copies it).
         Tensor out = Tensor::empty_host(DType::F32, {1});
         if (be.device() == DeviceKind::CUDA) {
           const std::string kind = c.attrs.string("kind", std::string("mma_bf16"));
           VG_CHECK(kind == "mma_bf16" || kind == "fma_f32", c.op, ": kind \"", kind, "\" must be mma_bf16 or fma_f32");
           const std::string probe = kind == "mma_bf16" ? "peak_mma_bf16" : "peak_fma_f32";
           return BoundOp{[&be, out, seconds, probe] {
                            out.data<float>()[0] = static_cast<float>(cuda_device_probe(be, probe, {seconds})[0] * 1e3);
                          },
                          {out}};
         }
         VG_CHECK(be.device() == DeviceKind::CPU, c.op, ": not measured on ", be.name());
         const std::string kind = c.attrs.string("kind", std::string("fma_f32"));
         VG_CHECK(kind == "fma_f32" || kind == "amx_bf16", c.op, ": kind \"", kind, "\" must be fma_f32 or amx_bf16 on cpu");
         const bool tiles = kind == "amx_bf16";
         return BoundOp{[out, seconds, tiles] {
                          out.data<float>()[0] = static_cast<float>(cpu::peak_gflops(seconds, tiles));
                        },
                        {out}};
       }},
      {"read_bandwidth",
       [](Backend& be, const OpCall& c) {
         Inputs in(be, c, 0, 0);
         const int64_t bytes = c.attrs.integer("bytes", int64_t{1} << 30);
         const int iterations = c.attrs.int32("iterations", 5);
         Tensor out = Tensor::empty_host(DType::F32, {1});
         if (be.device() == DeviceKind::CUDA)
           return BoundOp{[&be, out, bytes, iterations] {
                            const std::vector<double> args{static_cast<double>(bytes), static_cast<double>(iterations)};
                            out.data<float>()[0] = static_cast<float>(cuda_device_probe(be, "read_bandwidth", args)[0]);
                          },
                          {out}};
         VG_CHECK(be.device() == DeviceKind::CPU, c.op, ": not measured on ", be.name());
         return BoundOp{[out, bytes, iterations] {
                          out.data<float>()[0] = static_cast<float>(cpu::read_bandwidth_gbs(bytes, iterations));
                        },
                        {out}};
       }},
      {"device_memory",
       [](Backend& be, const OpCall& c) {
         Inputs in(be, c, 0, 0);
         VG_CHECK(be.device() == DeviceKind::CUDA, c.op, ": only reported by CUDA devices");
         Tensor out = Tensor::empty_host(DType::I64, {5});
         return BoundOp{[&be, out] {
                          const std::vector<double> v = cuda_device_probe(be, "memory", {});
                          for (size_t i = 0; i < 5; ++i)
                            out.data<int64_t>()[i] = i < v.size() ? static_cast<int64_t>(v[i]) : 0;
                        },
                        {out}};
       }},
  };
  return table;
}

}  // namespace

BoundOp bind_op(Backend& be, const OpCall& call) {
  const auto& table = binders();
  auto it = table.find(call.op);
  if (it == table.end()) {
    std::string names;
    for (const auto& [name, binder] : table) names += (names.empty() ? "" : ", ") + name;
    fail("runOp: unknown op \"", call.op, "\" (known: ", names, ")");
  }
  BoundOp bound = it->second(be, call);
  call.attrs.check_all_used();
  return bound;
}

}  // namespace vargpt::binding
