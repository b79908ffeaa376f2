// 64-byte aligned host allocations that work on every platform: std::aligned_alloc is C11/C++17
// but the Microsoft C runtime (MSVC and MinGW) has none, and macOS refuses sizes that are not a
// multiple of the alignment. Defined out of line (aligned.cc) so the ISA-specific translation
// units (built with -mavx512f...) never provide the copy the linker keeps.
#pragma once

#include <cstddef>

namespace vargpt {

// `alignment` is a power of two; `bytes` is rounded up to a multiple of it. Null on failure or
// for 0 bytes. Free with aligned_free only.
void* aligned_malloc(size_t alignment, size_t bytes);
void aligned_free(void* data);

}  // namespace vargpt
