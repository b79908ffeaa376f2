// runOp table, tokens, codebooks, sampling and the machine probes (the list of ops with their inputs and attrs is at the top of ops.cc).
#include "../backend/cpu/cpu_ops.h"
#include "../backend/cuda_loader.h"
#include "ops_bind.h"

namespace vargpt::binding {

void add_tokens_binders(BinderTable& table) {
  const BinderTable ops = {
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
  table.insert(ops.begin(), ops.end());
}

}  // namespace vargpt::binding
