// CudaBackend (see cuda_backend.cuh). Ops may be called from several threads (the addon runs
// them on libuv workers), so each takes the backend's lock and makes its device current on the
// calling thread before queueing work.
#include "cuda_backend.cuh"

#include <cstdio>
#include <cstring>
#include <mutex>

#include "cuda_ops.cuh"
#include "device_memory.cuh"

namespace vargpt::cuda {

namespace {

class CudaBackend final : public Backend {
 public:
  CudaBackend(int device, cudaStream_t stream, int multiprocessors)
      : allocator_(std::make_shared<DeviceAllocator>(device)) {
    ctx_.device = device;
    ctx_.stream = stream;
    ctx_.multiprocessors = multiprocessors;
    ctx_.allocator = allocator_.get();
  }
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;
  ~CudaBackend() override {
    // Queued work may still use memory that the tensors' owners free after us: let it finish.
    if (cudaSetDevice(ctx_.device) == cudaSuccess) {
      const cudaError_t status = cudaStreamSynchronize(ctx_.stream);
      if (status != cudaSuccess && status != cudaErrorCudartUnloading)
        std::fprintf(stderr, "vargpt: cuda:%d: waiting for queued work failed (%s)\n", ctx_.device,
                     describe_cuda(status).c_str());
      cudaStreamDestroy(ctx_.stream);
    }
  }

  std::string name() const override { return "cuda:" + std::to_string(ctx_.device); }
  DeviceKind device() const override { return DeviceKind::CUDA; }

  Tensor empty(DType dtype, Shape shape) override {
    Guard g(*this, "empty");
    const size_t bytes = static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype);
    return Tensor(allocator_->allocate(bytes, "empty"), 0, dtype, std::move(shape));
  }

  Tensor upload(const Tensor& host) override {
    VG_CHECK(host.defined(), "upload: host is an undefined tensor");
    if (host.device() == DeviceKind::CUDA) {
      check_device(ctx_, "upload", "host", host);
      return host;
    }
    Guard g(*this, "upload");
    const Tensor src = host.is_contiguous() ? host : host.contiguous_copy();
    Tensor out(allocator_->allocate(src.nbytes(), "upload"), 0, src.dtype(), src.shape());
    if (src.nbytes() == 0) return out;
    VG_CUDA("upload", cudaMemcpyAsync(out.raw(), src.raw(), src.nbytes(), cudaMemcpyHostToDevice, ctx_.stream));
    // The source is pageable memory that the caller may free on return: wait until it is read.
    VG_CUDA("upload", cudaStreamSynchronize(ctx_.stream));
    return out;
  }

  Tensor to_host(const Tensor& tensor) override {
    VG_CHECK(tensor.defined(), "to_host: tensor is an undefined tensor");
    if (tensor.device() == DeviceKind::CPU) return tensor.contiguous_copy();
    Guard g(*this, "to_host");
    check_device(ctx_, "to_host", "tensor", tensor);
    const Tensor src = contiguous(ctx_, tensor, "to_host");
    Tensor out = Tensor::empty_host(src.dtype(), src.shape());
    if (out.nbytes() != 0)
      VG_CUDA("to_host", cudaMemcpyAsync(out.raw(), src.raw(), out.nbytes(), cudaMemcpyDeviceToHost, ctx_.stream));
    VG_CUDA("to_host", cudaStreamSynchronize(ctx_.stream));
    return out;
  }

  void copy(const Tensor& src, const Tensor& dst) override { run("copy", [&] { cuda::copy(ctx_, src, dst); }); }
  void fill(const Tensor& dst, float value) override { run("fill", [&] { cuda::fill(ctx_, dst, value); }); }
  void cast(const Tensor& src, const Tensor& dst) override { run("cast", [&] { cuda::cast(ctx_, src, dst); }); }
  void synchronize() override {
    Guard g(*this, "synchronize");
    VG_CUDA("synchronize", cudaStreamSynchronize(ctx_.stream));
  }

  void linear(const Tensor& x, const Tensor& w, const Tensor* bias, const Tensor& y, Activation act,
              bool accumulate) override {
    run("linear", [&] { cuda::linear(ctx_, x, w, bias, y, act, accumulate); });
  }
  void linear_q8(const Tensor& x, const Tensor& w, const Tensor& qparams, const Tensor* bias, const Tensor& y,
                 Activation act, bool accumulate) override {
    run("linear_q8", [&] { cuda::linear_q8(ctx_, x, w, qparams, bias, y, act, accumulate); });
  }
  void linear_q4(const Tensor& x, const Tensor& w, const Tensor& scales, const Tensor* bias, const Tensor& y,
                 Activation act, bool accumulate) override {
    run("linear_q4", [&] { cuda::linear_q4(ctx_, x, w, scales, bias, y, act, accumulate); });
  }
  void attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                 const AttentionParams& params) override {
    run("attention", [&] { cuda::attention(ctx_, q, k, v, out, params); });
  }

  void rms_norm(const Tensor& x, const Tensor& weight, float eps, const Tensor& y) override {
    run("rms_norm", [&] { cuda::rms_norm(ctx_, x, weight, eps, y); });
  }
  void layer_norm(const Tensor& x, const Tensor* weight, const Tensor* bias, float eps, const Tensor& y) override {
    run("layer_norm", [&] { cuda::layer_norm(ctx_, x, weight, bias, eps, y); });
  }
  void norm_modulate(const Tensor& x, NormKind norm, const Tensor* weight, const Tensor* bias, float eps,
                     const Tensor& scale, const Tensor* shift, const Tensor& y) override {
    run("norm_modulate", [&] { cuda::norm_modulate(ctx_, x, norm, weight, bias, eps, scale, shift, y); });
  }
  void gated_add(const Tensor& x, const Tensor& y, const Tensor& gate, Activation gate_act) override {
    run("gated_add", [&] { cuda::gated_add(ctx_, x, y, gate, gate_act); });
  }
  void group_norm(const Tensor& x, int groups, const Tensor& weight, const Tensor& bias, float eps,
                  const Tensor& y) override {
    run("group_norm", [&] { cuda::group_norm(ctx_, x, groups, weight, bias, eps, y); });
  }

  void activation(const Tensor& x, Activation act, const Tensor& y) override {
    run("activation", [&] { cuda::activation(ctx_, x, act, y); });
  }
  void glu(const Tensor& gate, const Tensor& up, Activation act, const Tensor& y) override {
    run("glu", [&] { cuda::glu(ctx_, gate, up, act, y); });
  }
  void add(const Tensor& a, const Tensor& b, const Tensor& y) override {
    run("add", [&] { cuda::add(ctx_, a, b, y); });
  }
  void binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& y) override {
    run("binary", [&] { cuda::binary(ctx_, op, a, b, y); });
  }
  void axpby(float alpha, const Tensor& a, float beta, const Tensor& b, const Tensor& y) override {
    run("axpby", [&] { cuda::axpby(ctx_, alpha, a, beta, b, y); });
  }

  void rope(const Tensor& x, const Tensor& table, int head_dim, RopePairing pairing) override {
    run("rope", [&] { cuda::rope(ctx_, x, table, head_dim, pairing); });
  }
  void l2_normalize_heads(const Tensor& x, int head_dim, const Tensor* head_scale) override {
    run("l2_normalize_heads", [&] { cuda::l2_normalize_heads(ctx_, x, head_dim, head_scale); });
  }

  void conv2d(const Tensor& x, const Tensor& weight, const Tensor* bias, const Conv2dParams& params,
              const Tensor& y) override {
    run("conv2d", [&] { cuda::conv2d(ctx_, x, weight, bias, params, y); });
  }
  void upsample_nearest2x(const Tensor& x, const Tensor& y) override {
    run("upsample_nearest2x", [&] { cuda::upsample_nearest2x(ctx_, x, y); });
  }
  void resize_bicubic(const Tensor& x, const Tensor& y) override {
    run("resize_bicubic", [&] { cuda::resize_bicubic(ctx_, x, y); });
  }
  void resize_area(const Tensor& x, const Tensor& y) override {
    run("resize_area", [&] { cuda::resize_area(ctx_, x, y); });
  }
  void resize_bilinear(const Tensor& x, const Tensor& y) override {
    run("resize_bilinear", [&] { cuda::resize_bilinear(ctx_, x, y); });
  }
  void transpose(const Tensor& x, const Tensor& y) override {
    run("transpose", [&] { cuda::transpose(ctx_, x, y); });
  }

  void mean(const Tensor& x, int axis, const Tensor& y) override {
    run("mean", [&] { cuda::mean(ctx_, x, axis, y); });
  }

  void embedding(const Tensor& ids, const Tensor& table, const Tensor& out) override {
    run("embedding", [&] { cuda::embedding(ctx_, ids, table, out); });
  }
  void vq_nearest(const Tensor& z, const Tensor& codebook, const Tensor& idx) override {
    run("vq_nearest", [&] { cuda::vq_nearest(ctx_, z, codebook, idx); });
  }

  void argmax(const Tensor& x, const Tensor& idx) override { run("argmax", [&] { cuda::argmax(ctx_, x, idx); }); }
  void sample(const Tensor& logits, const SamplingParams& params, const Tensor& idx, const Tensor* kept) override {
    run("sample", [&] { cuda::sample(ctx_, logits, params, idx, kept); });
  }
  void randn(const Tensor& out, uint64_t seed, uint64_t stream) override {
    run("randn", [&] { cuda::randn(ctx_, out, seed, stream); });
  }

  std::vector<double> probe(const std::string& name, const std::vector<double>& args) {
    Guard g(*this, "probe");
    auto arg = [&](size_t i, double fallback) { return i < args.size() ? args[i] : fallback; };
    if (name == "peak_mma_bf16") return {peak_tflops_mma_bf16(ctx_, arg(0, 1.0))};
    if (name == "peak_fma_f32") return {peak_tflops_fma_f32(ctx_, arg(0, 1.0))};
    if (name == "read_bandwidth")
      return {read_bandwidth_gbs(ctx_, static_cast<int64_t>(arg(0, 1 << 30)), static_cast<int>(arg(1, 5)))};
    if (name == "memory") {
      const MemoryStats s = allocator_->stats();
      size_t free_bytes = 0, total_bytes = 0;
      VG_CUDA("probe memory", cudaMemGetInfo(&free_bytes, &total_bytes));
      return {static_cast<double>(s.in_use), static_cast<double>(s.cached), static_cast<double>(s.peak),
              static_cast<double>(free_bytes), static_cast<double>(total_bytes)};
    }
    fail("cuda probe: unknown probe \"", name, "\" (peak_mma_bf16, peak_fma_f32, read_bandwidth, memory)");
  }

 private:
  // The backend's lock plus its device made current on this thread.
  class Guard {
   public:
    Guard(CudaBackend& be, const char* op) : lock_(be.mutex_) { VG_CUDA(op, cudaSetDevice(be.ctx_.device)); }

   private:
    std::lock_guard<std::mutex> lock_;
  };

  template <typename Body>
  void run(const char* op, Body&& body) {
    Guard g(*this, op);
    body();
  }

  std::shared_ptr<DeviceAllocator> allocator_;
  Ctx ctx_;
  std::mutex mutex_;
};

}  // namespace

std::unique_ptr<Backend> create_cuda_backend(int device) {
  const char* op = "create cuda backend";
  int count = 0;
  VG_CUDA(op, cudaGetDeviceCount(&count));
  VG_CHECK(device >= 0 && device < count, "no CUDA device ", device, " (found ", count, ")");
  cudaDeviceProp prop;
  VG_CUDA(op, cudaGetDeviceProperties(&prop, device));
  VG_CHECK(prop.major >= 8, prop.name, " has compute capability ", prop.major, ".", prop.minor,
           "; the CUDA backend needs 8.0 or newer");
  VG_CUDA(op, cudaSetDevice(device));
  cudaStream_t stream = nullptr;
  VG_CUDA(op, cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  try {
    return std::make_unique<CudaBackend>(device, stream, prop.multiProcessorCount);
  } catch (...) {
    cudaStreamDestroy(stream);
    throw;
  }
}

std::vector<double> cuda_probe(Backend& backend, const std::string& name, const std::vector<double>& args) {
  auto* be = dynamic_cast<CudaBackend*>(&backend);
  VG_CHECK(be != nullptr, "cuda probe: backend ", backend.name(), " is not a CUDA backend of this library");
  return be->probe(name, args);
}

}  // namespace vargpt::cuda
