// Backend discovery: CPU features, the optional CUDA library, and create_backend().
#if !defined(_WIN32)
#include <dlfcn.h>
#endif

#include <mutex>
#include <string>
#include <thread>

#include "../core/error.h"
#include "../core/thread_pool.h"
#include "../core/win32.h"
#include "backend.h"
#include "cpu/cpu_backend.h"
#include "cpu/cpu_features.h"
#include "cuda_loader.h"

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

// The shared library the CUDA backend is built into, beside the addon.
#if defined(_WIN32)
constexpr char kCudaLibraryName[] = "vargpt_cuda.dll";

std::string addon_directory() {
  HMODULE module = nullptr;
  if (!::GetModuleHandleExW(GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS | GET_MODULE_HANDLE_EX_FLAG_UNCHANGED_REFCOUNT,
                            reinterpret_cast<LPCWSTR>(&addon_directory), &module))
    return ".";
  std::wstring path(32768, L'\0');
  const DWORD length = ::GetModuleFileNameW(module, path.data(), static_cast<DWORD>(path.size()));
  if (length == 0 || length >= path.size()) return ".";
  path.resize(length);
  const size_t slash = path.find_last_of(L"\\/");
  return slash == std::wstring::npos ? "." : wide_to_utf8(path.substr(0, slash));
}

// LOAD_WITH_ALTERED_SEARCH_PATH: the DLLs the library needs (the CUDA runtime) are looked for
// beside it first.
void* open_library(const std::string& path, std::string* error) {
  HMODULE handle = ::LoadLibraryExW(utf8_to_wide(path).c_str(), nullptr, LOAD_WITH_ALTERED_SEARCH_PATH);
  if (handle == nullptr) *error = path + ": " + system_message(::GetLastError());
  return reinterpret_cast<void*>(handle);
}

void* find_symbol(void* library, const char* name) {
  return reinterpret_cast<void*>(::GetProcAddress(reinterpret_cast<HMODULE>(library), name));
}
#else
constexpr char kCudaLibraryName[] = "libvargpt_cuda.so";

std::string addon_directory() {
  Dl_info info;
  if (dladdr(reinterpret_cast<void*>(&addon_directory), &info) == 0 || info.dli_fname == nullptr) return ".";
  std::string path = info.dli_fname;
  const size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

void* open_library(const std::string& path, std::string* error) {
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* why = dlerror();
    *error = why ? why : path;
  }
  return handle;
}

void* find_symbol(void* library, const char* name) { return dlsym(library, name); }
#endif

// The package folder: the addon lives two levels down (build/Release, prebuilds/<platform>).
std::string package_directory(const std::string& addon_dir) {
  std::string dir = addon_dir;
  for (int up = 0; up < 2; ++up) {
    const size_t slash = dir.find_last_of("/\\");
    if (slash == std::string::npos || slash == 0) return addon_dir + "/../..";
    dir.resize(slash);
  }
  return dir;
}

// A command that builds the CUDA backend from wherever the package is, a checkout or
// node_modules (cmake-js, a devDependency, is not needed there).
std::string build_cuda_command() {
  return "node \"" + package_directory(addon_directory()) + "/scripts/build-cuda.mjs\"";
}

CudaLibrary load_cuda_library() {
  CudaLibrary lib;
  if (const char* off = std::getenv("VARGPT_DISABLE_CUDA"); off && *off && std::string(off) != "0") {
    lib.error = "disabled by VARGPT_DISABLE_CUDA";
    return lib;
  }
  lib.path = addon_directory() + "/" + kCudaLibraryName;
  // The library stays loaded for the life of the process: backends created from it may outlive
  // any scope that could close it.
  std::string why;
  void* handle = open_library(lib.path, &why);
  if (handle == nullptr) {
    lib.error = "this build has no CUDA backend (" + why + "); on a machine with nvcc and cmake, build it with `" +
                build_cuda_command() + "`";
    return lib;
  }
  auto abi = reinterpret_cast<vargpt_cuda_abi_fn>(find_symbol(handle, "vargpt_cuda_abi"));
  lib.query = reinterpret_cast<vargpt_cuda_query_fn>(find_symbol(handle, "vargpt_cuda_query"));
  lib.create = reinterpret_cast<vargpt_cuda_create_fn>(find_symbol(handle, "vargpt_cuda_create"));
  lib.probe = reinterpret_cast<vargpt_cuda_probe_fn>(find_symbol(handle, "vargpt_cuda_probe"));
  if (abi == nullptr || lib.query == nullptr || lib.create == nullptr) {
    lib.error = lib.path + " is not a vargpt CUDA backend (missing entry points)";
    lib.query = nullptr;
    lib.create = nullptr;
    lib.probe = nullptr;
  } else if (abi() != VARGPT_CUDA_ABI_VERSION) {
    lib.error = lib.path + " was built for another version of vargpt (ABI " + std::to_string(abi()) + ", expected " +
                std::to_string(VARGPT_CUDA_ABI_VERSION) + "); rebuild with `" + build_cuda_command() + "`";
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
  info.model = cpu::x86_processor_name();
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
           " has no probes (rebuild with `", build_cuda_command(), "`)");
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
