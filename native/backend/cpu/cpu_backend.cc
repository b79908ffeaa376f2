// CpuBackend: the Backend interface over host memory. Ops run synchronously on the calling thread
// plus the global thread pool; each forwards to the kernel family in its own file (cpu_ops.h),
// which validates its arguments.
#include "cpu_backend.h"

#include <cstdlib>

#include "cpu_common.h"
#include "cpu_features.h"
#include "cpu_ops.h"
#include "gemm.h"
#include "gemm_q8.h"
#include "host_pool.h"

namespace vargpt {

namespace {

// Cap of the backend's cache of freed large blocks (host_pool.h): VARGPT_HOST_CACHE_MB, default
// 512 (a 256x256 VQ-VAE decode cycles through ~300 MB of blocks of 1 MB and more); 0 turns it off.
size_t host_cache_bytes() {
  static const size_t bytes = [] {
    const char* env = std::getenv("VARGPT_HOST_CACHE_MB");
    char* end = nullptr;
    const unsigned long long mb = env != nullptr ? std::strtoull(env, &end, 10) : 512;
    const bool valid = env == nullptr || (end != env && *end == '\0' && mb <= (1ull << 24));
    return static_cast<size_t>(valid ? mb : 512) << 20;
  }();
  return bytes;
}

class CpuBackend final : public Backend {
 public:
  CpuBackend() : blocks_(std::make_shared<cpu::HostBlockPool>(size_t{1} << 20, host_cache_bytes())) {}
  ~CpuBackend() override { blocks_->close(); }

  std::string name() const override { return "cpu"; }
  DeviceKind device() const override { return DeviceKind::CPU; }

  Tensor empty(DType dtype, Shape shape) override {
    const size_t bytes = static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype);
    return Tensor(blocks_->allocate(bytes), 0, dtype, std::move(shape));
  }
  Tensor upload(const Tensor& host) override {
    cpu::check_defined("upload", "host", host);
    return host;  // host memory is this backend's memory: mapped weights are used in place
  }
  Tensor to_host(const Tensor& tensor) override {
    cpu::check_defined("to_host", "tensor", tensor);
    return tensor.contiguous_copy();
  }
  void copy(const Tensor& src, const Tensor& dst) override { cpu::copy(src, dst); }
  void fill(const Tensor& dst, float value) override { cpu::fill(dst, value); }
  void cast(const Tensor& src, const Tensor& dst) override { cpu::cast(src, dst); }
  void synchronize() override {}

  void linear(const Tensor& x, const Tensor& w, const Tensor* bias, const Tensor& y, Activation act,
              bool accumulate) override {
    cpu::ScratchScope scratch(blocks_.get());  // the GEMM's packed A
    cpu::linear(x, w, bias, y, act, accumulate);
  }
  void linear_q8(const Tensor& x, const Tensor& w, const Tensor& qparams, const Tensor* bias, const Tensor& y,
                 Activation act, bool accumulate) override {
    cpu::linear_q8(x, w, qparams, bias, y, act, accumulate);
  }
  void linear_q4(const Tensor& x, const Tensor& w, const Tensor& scales, const Tensor* bias, const Tensor& y,
                 Activation act, bool accumulate) override {
    cpu::linear_q4(x, w, scales, bias, y, act, accumulate);
  }
  void attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                 const AttentionParams& params) override {
    cpu::attention(q, k, v, out, params);
  }

  void rms_norm(const Tensor& x, const Tensor& weight, float eps, const Tensor& y) override {
    cpu::rms_norm(x, weight, eps, y);
  }
  void layer_norm(const Tensor& x, const Tensor* weight, const Tensor* bias, float eps, const Tensor& y) override {
    cpu::layer_norm(x, weight, bias, eps, y);
  }
  void norm_modulate(const Tensor& x, NormKind norm, const Tensor* weight, const Tensor* bias, float eps,
                     const Tensor& scale, const Tensor* shift, const Tensor& y) override {
    cpu::norm_modulate(x, norm, weight, bias, eps, scale, shift, y);
  }
  void gated_add(const Tensor& x, const Tensor& y, const Tensor& gate, Activation gate_act) override {
    cpu::gated_add(x, y, gate, gate_act);
  }
  void group_norm(const Tensor& x, int groups, const Tensor& weight, const Tensor& bias, float eps,
                  const Tensor& y) override {
    cpu::group_norm(x, groups, weight, bias, eps, y);
  }

  void activation(const Tensor& x, Activation act, const Tensor& y) override { cpu::activation(x, act, y); }
  void glu(const Tensor& gate, const Tensor& up, Activation act, const Tensor& y) override {
    cpu::glu(gate, up, act, y);
  }
  void add(const Tensor& a, const Tensor& b, const Tensor& y) override { cpu::add(a, b, y); }
  void binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& y) override { cpu::binary(op, a, b, y); }
  void axpby(float alpha, const Tensor& a, float beta, const Tensor& b, const Tensor& y) override {
    cpu::axpby(alpha, a, beta, b, y);
  }

  void rope(const Tensor& x, const Tensor& table, int head_dim, RopePairing pairing) override {
    cpu::rope(x, table, head_dim, pairing);
  }
  void l2_normalize_heads(const Tensor& x, int head_dim, const Tensor* head_scale) override {
    cpu::l2_normalize_heads(x, head_dim, head_scale);
  }

  void conv2d(const Tensor& x, const Tensor& weight, const Tensor* bias, const Conv2dParams& params,
              const Tensor& y) override {
    cpu::ScratchScope scratch(blocks_.get());  // the Winograd transforms, im2col GEMMs
    cpu::conv2d(x, weight, bias, params, y);
  }
  void upsample_nearest2x(const Tensor& x, const Tensor& y) override { cpu::upsample_nearest2x(x, y); }
  void resize_bicubic(const Tensor& x, const Tensor& y) override { cpu::resize_bicubic(x, y); }
  void resize_area(const Tensor& x, const Tensor& y) override { cpu::resize_area(x, y); }
  void resize_bilinear(const Tensor& x, const Tensor& y) override { cpu::resize_bilinear(x, y); }
  void transpose(const Tensor& x, const Tensor& y) override { cpu::transpose(x, y); }

  void mean(const Tensor& x, int axis, const Tensor& y) override { cpu::mean(x, axis, y); }

  void embedding(const Tensor& ids, const Tensor& table, const Tensor& out) override {
    cpu::embedding(ids, table, out);
  }
  void vq_nearest(const Tensor& z, const Tensor& codebook, const Tensor& idx) override {
    cpu::ScratchScope scratch(blocks_.get());  // the distance GEMM
    cpu::vq_nearest(z, codebook, idx);
  }

  void argmax(const Tensor& x, const Tensor& idx) override { cpu::argmax(x, idx); }
  void sample(const Tensor& logits, const SamplingParams& params, const Tensor& idx, const Tensor* kept) override {
    cpu::sample(logits, params, idx, kept);
  }
  void randn(const Tensor& out, uint64_t seed, uint64_t stream) override { cpu::randn(out, seed, stream); }

 private:
  std::shared_ptr<cpu::HostBlockPool> blocks_;
};

}  // namespace

std::shared_ptr<Backend> create_cpu_backend() { return std::make_shared<CpuBackend>(); }

std::vector<std::string> cpu_kernel_features() {
  std::vector<std::string> features;
#if defined(__x86_64__) || defined(_M_X64)
  // Only the features some kernel in this build can use.
  for (const char* name :
       {"avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512bf16", "avx512vnni"})
    if (cpu::x86_supports(name)) features.emplace_back(name);
  // AMX as the CPU reports it; whether this process may use it is kernelPaths / amx.
  unsigned regs[4];
  if (cpu::x86_cpuid(7, 0, regs) && (regs[3] & (1u << 24)) != 0 && (regs[3] & (1u << 22)) != 0)
    features.emplace_back("amx-bf16");
#elif defined(__aarch64__) || defined(_M_ARM64)
  features.emplace_back("neon");
#endif
  return features;
}

std::string cpu_kernel_path() { return cpu::active_gemm_kernels().name; }

std::string cpu_int8_kernel_path() { return cpu::active_q8_kernel(); }

std::vector<std::string> cpu_kernel_paths() { return cpu::available_gemm_kernels(); }

std::string cpu_amx_unavailable_reason() { return cpu::amx_unavailable_reason(); }

void set_cpu_kernel_path(const std::string& path) { cpu::set_gemm_kernels(path); }

}  // namespace vargpt
