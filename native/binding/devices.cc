// devices(): what each backend can offer on this machine, or why it cannot.
#include "../backend/backend.h"
#include "async.h"
#include "binding.h"

#if defined(__GLIBC__)
#include <dlfcn.h>
#include <malloc.h>
#endif

namespace vargpt::binding {

namespace {
Napi::Value devices(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);

  const CpuInfo cpu = cpu_info();
  Napi::Object cpu_js = Napi::Object::New(env);
  cpu_js.Set("threads", cpu.threads);
  cpu_js.Set("model", cpu.model);
  Napi::Array features = Napi::Array::New(env, cpu.features.size());
  for (size_t i = 0; i < cpu.features.size(); ++i) features.Set(i, cpu.features[i]);
  cpu_js.Set("features", features);
  cpu_js.Set("kernels", cpu.kernel_path);
  cpu_js.Set("int8Kernels", cpu.int8_kernel_path);
  Napi::Array paths = Napi::Array::New(env, cpu.kernel_paths.size());
  for (size_t i = 0; i < cpu.kernel_paths.size(); ++i) paths.Set(i, cpu.kernel_paths[i]);
  cpu_js.Set("kernelPaths", paths);
  if (!cpu.amx_unavailable.empty()) cpu_js.Set("amxUnavailable", cpu.amx_unavailable);
  out.Set("cpu", cpu_js);

  const CudaInfo cuda = cuda_info();
  Napi::Object cuda_js = Napi::Object::New(env);
  cuda_js.Set("available", cuda.available);
  if (!cuda.available) cuda_js.Set("reason", cuda.reason);
  if (cuda.driver_version) cuda_js.Set("driverVersion", cuda.driver_version);
  if (cuda.runtime_version) cuda_js.Set("runtimeVersion", cuda.runtime_version);
  Napi::Array gpus = Napi::Array::New(env, cuda.devices.size());
  for (size_t i = 0; i < cuda.devices.size(); ++i) {
    const CudaDeviceInfo& d = cuda.devices[i];
    Napi::Object g = Napi::Object::New(env);
    g.Set("index", d.index);
    g.Set("name", d.name);
    g.Set("computeCapability", std::to_string(d.compute_major) + "." + std::to_string(d.compute_minor));
    g.Set("totalMemory", static_cast<double>(d.total_memory));
    g.Set("freeMemory", static_cast<double>(d.free_memory));
    g.Set("multiprocessors", d.multiprocessors);
    gpus.Set(i, g);
  }
  cuda_js.Set("devices", gpus);
  out.Set("cuda", cuda_js);
  return out;
}

// Bytes the C heap holds for live allocations, after optionally handing free pages back to the
// kernel. Resident-memory readings of a leak check otherwise depend on how much freed memory
// glibc's per-thread arenas happen to cache at that moment, which varies with thread timing.
Napi::Value allocator_stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const bool trim = info.Length() > 0 && info[0].IsBoolean() && info[0].As<Napi::Boolean>().Value();
  Napi::Object out = Napi::Object::New(env);
#if defined(__GLIBC__)
  // mallinfo2 (glibc 2.33) is looked up at run time, so the addon still loads on older glibc.
  struct Mallinfo2 {
    size_t arena, ordblks, smblks, hblks, hblkhd, usmblks, fsmblks, uordblks, fordblks, keepcost;
  };
  using Mallinfo2Fn = Mallinfo2 (*)();
  static const auto mallinfo2_fn = reinterpret_cast<Mallinfo2Fn>(dlsym(RTLD_DEFAULT, "mallinfo2"));
  if (mallinfo2_fn != nullptr) {
    if (trim) malloc_trim(0);
    const Mallinfo2 mi = mallinfo2_fn();
    out.Set("available", true);
    out.Set("inUseBytes", static_cast<double>(mi.uordblks + mi.hblkhd));
    out.Set("trimmed", trim);
    return out;
  }
#endif
  (void)trim;
  out.Set("available", false);
  return out;
}
}  // namespace

void init_devices(Napi::Env env, Napi::Object exports) {
  exports.Set("devices", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
                return guarded(info.Env(), [&] { return devices(info); });
              }));
  exports.Set("allocatorStats", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
                return guarded(info.Env(), [&] { return allocator_stats(info); });
              }));
}

}  // namespace vargpt::binding
