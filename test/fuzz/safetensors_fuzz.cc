// libFuzzer harness: the safetensors header parser on arbitrary file contents. A vargpt::Error is
// the expected outcome for bad input; any crash, sanitizer report or other exception is a bug.
#include <cstddef>
#include <cstdint>

#include "core/error.h"
#include "core/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const vargpt::SafetensorsHeader header = vargpt::parse_safetensors_header(data, size, "fuzz.safetensors");
    // Everything validated must be usable: spans inside the data, sizes consistent.
    for (const auto& t : header.tensors) {
      if (t.end < t.begin || header.data_offset + t.end > size) __builtin_trap();
      if (static_cast<uint64_t>(vargpt::shape_numel(t.shape)) * vargpt::dtype_size(t.dtype) != t.end - t.begin)
        __builtin_trap();
    }
  } catch (const vargpt::Error&) {
  }
  return 0;
}
