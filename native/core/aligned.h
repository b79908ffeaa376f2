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

// Large buffers (weights, KV caches, big activations). On Linux, requests of at least
// kLargeAllocation bytes are mapped on their own at a 2 MiB boundary and offered to transparent
// huge pages, which the kernel's default setting ("madvise") grants only to ranges that ask: a
// decode step streams every weight byte once per token, and on 4 KiB pages that is a TLB walk
// every 64 cache lines, and a fresh buffer takes a page fault (expensive under virtualisation)
// every 4 KiB where a huge page takes one per 2 MiB. VARGPT_HUGEPAGES=0 keeps small pages.
// Smaller requests, and other systems, get aligned_malloc. Page aligned there, 64-byte aligned
// otherwise; null on failure or for 0 bytes. Free with free_large and the same byte count.
constexpr size_t kLargeAllocation = size_t{2} << 20;
void* allocate_large(size_t bytes);
void free_large(void* data, size_t bytes);

}  // namespace vargpt
