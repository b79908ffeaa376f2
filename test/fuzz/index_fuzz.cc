// libFuzzer harness: model.safetensors.index.json parsing and shard-name confinement.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/error.h"
#include "core/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto map = vargpt::parse_safetensors_index(std::string(reinterpret_cast<const char*>(data), size), "index.json");
    for (const auto& [name, shard] : map) {
      // Accepted shard names never escape the folder: not absolute, no ".." path component.
      if (shard.empty() || shard[0] == '/' || shard[0] == '\\') __builtin_trap();
      size_t start = 0;
      for (;;) {
        const size_t end = shard.find_first_of("/\\", start);
        const std::string part = shard.substr(start, end == std::string::npos ? std::string::npos : end - start);
        if (part == "..") __builtin_trap();
        if (end == std::string::npos) break;
        start = end + 1;
      }
    }
  } catch (const vargpt::Error&) {
  }
  return 0;
}
