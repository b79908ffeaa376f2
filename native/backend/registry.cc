// Backend discovery: CPU features, the optional CUDA library, and create_backend().
#include <dlfcn.h>

#include <mutex>
#include <string>
#include <thread>

#include "../core/error.h"
#include "../core/thread_pool.h"
#include "backend.h"
#include "cpu/cpu_backend.h"
#include "cuda_loader.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#endif

namespace vargpt {

const char* activation_name(Activation act) {
  switch (act) {
    case Activation::None: return "none";
    case Activation::SiLU: return "silu";
    case Activation::GeluErf: return "gelu";
    case Activation::GeluTanh: return "gelu_tanh";
    case Activation::QuickGelu: return "quick_gelu";
    case Activation::Tanh: return "tanh";
  }
  return "?";
}

const char* rope_pairing_name(RopePairing pairing) {
  return pairing == RopePairing::RotateHalf ? "rotate_half" : "interleaved";
}

namespace {

std::string processor_name() {
#if defined(__x86_64__) || defined(_M_X64)
  unsigned regs[12] = {};
  unsigned max_ext = __get_cpuid_max(0x80000000u, nullptr);
  if (max_ext >= 0x80000004u) {
    for (unsigned i = 0; i < 3; ++i) __get_cpuid(0x80000002u + i, &regs[4 * i], &regs[4 * i + 1], &regs[4 * i + 2], &regs[4 * i + 3]);
    std::string name(reinterpret_cast<const char*>(regs), sizeof regs);
    name = name.substr(0, name.find('\0'));
    const size_t first = name.find_first_not_of(' ');
    return first == std::string::npos ? "" : name.substr(first);
  }
#endif
  return "";
}

std::string addon_directory() {
  Dl_info info;
  if (dladdr(reinterpret_cast<void*>(&addon_directory), &info) == 0 || info.dli_fname == nullptr) return ".";
  std::string path = info.dli_fname;
  const size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

CudaLibrary load_cuda_library() {
  CudaLibrary lib;
  if (const char* off = std::getenv("VARGPT_DISABLE_CUDA"); off && *off && std::string(off) != "0") {
    lib.error = "disabled by VARGPT_DISABLE_CUDA";
    return lib;
  }
  lib.path = addon_directory() + "/libvargpt_cuda.so";
  // The library stays loaded for the life of the process: backends created from it may outlive
  // any scope that could close it.
  void* handle = dlopen(lib.path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* why = dlerror();
    lib.error = std::string("this build has no CUDA backend (") + (why ? why : lib.path) +
                "); build it with `npm run build:cuda` on a machine with nvcc";
    return lib;
  }
  auto abi = reinterpret_cast<vargpt_cuda_abi_fn>(dlsym(handle, "vargpt_cuda_abi"));
  lib.query = reinterpret_cast<vargpt_cuda_query_fn>(dlsym(handle, "vargpt_cuda_query"));
  lib.create = reinterpret_cast<vargpt_cuda_create_fn>(dlsym(handle, "vargpt_cuda_create"));
  lib.probe = reinterpret_cast<vargpt_cuda_probe_fn>(dlsym(handle, "vargpt_cuda_probe"));
  if (abi == nullptr || lib.query == nullptr || lib.create == nullptr) {
    lib.error = lib.path + " is not a vargpt CUDA backend (missing entry points)";
    lib.query = nullptr;
    lib.create = nullptr;
    lib.probe = nullptr;
  } else if (abi() != VARGPT_CUDA_ABI_VERSION) {
    lib.error = lib.path + " was built for another version of vargpt (ABI " + std::to_string(abi()) + ", expected " +
                std::to_string(VARGPT_CUDA_ABI_VERSION) + "); rebuild with `npm run build:cuda`";
    lib.query = nullptr;
    lib.create = nullptr;
    lib.probe = nullptr;
  }
  return lib;
}

}  // namespace

const CudaLibrary& cuda_library() {
  static const CudaLibrary lib = load_cuda_library();
  return lib;
}

CpuInfo cpu_info() {
  CpuInfo info;
  info.threads = ThreadPool::global().size();
  info.model = processor_name();
  info.features = cpu_kernel_features();
  info.kernel_path = cpu_kernel_path();
  info.int8_kernel_path = cpu_int8_kernel_path();
  info.kernel_paths = cpu_kernel_paths();
  info.amx_unavailable = cpu_amx_unavailable_reason();
  return info;
}

CudaInfo cuda_info() {
  const CudaLibrary& lib = cuda_library();
  CudaInfo info;
  if (lib.query == nullptr) {
    info.reason = lib.error;
    return info;
  }
  lib.query(&info);
  return info;
}

std::vector<double> cuda_device_probe(Backend& backend, const std::string& name, const std::vector<double>& args) {
  const CudaLibrary& lib = cuda_library();
  VG_CHECK(backend.device() == DeviceKind::CUDA, name, ": ", backend.name(), " is not a CUDA backend");
  VG_CHECK(lib.probe != nullptr, name, ": the CUDA library ", lib.path,
           " has no probes (rebuild with `npm run build:cuda`)");
  double out[16];
  std::string error;
  const int n = lib.probe(&backend, name.c_str(), args.data(), static_cast<int>(args.size()), out, 16, &error);
  VG_CHECK(n >= 0, error);
  return std::vector<double>(out, out + n);
}

std::shared_ptr<Backend> create_backend(const std::string& device) {
  if (device == "cpu") return create_cpu_backend();
  if (device == "cuda" || device.rfind("cuda:", 0) == 0) {
    int index = 0;
    if (device.size() > 5) {
      const std::string digits = device.substr(5);
      VG_CHECK(!digits.empty() && digits.size() < 4 && digits.find_first_not_of("0123456789") == std::string::npos,
               "device \"", device, "\": expected cuda or cuda:N");
      index = std::stoi(digits);
    }
    const CudaLibrary& lib = cuda_library();
    VG_CHECK(lib.create != nullptr, "CUDA is unavailable: ", lib.error);
    std::string error;
    Backend* backend = lib.create(index, &error);
    VG_CHECK(backend != nullptr, "CUDA is unavailable: ", error);
    return std::shared_ptr<Backend>(backend);
  }
  fail("unknown device \"", device, "\" (expected cpu, cuda or cuda:N)");
}

}  // namespace vargpt
