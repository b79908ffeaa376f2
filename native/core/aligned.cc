#include "aligned.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>

#if defined(_WIN32)
#include <malloc.h>
#endif
#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace vargpt {

void* aligned_malloc(size_t alignment, size_t bytes) {
  if (bytes == 0 || bytes > SIZE_MAX - alignment) return nullptr;
  const size_t rounded = (bytes + alignment - 1) / alignment * alignment;
#if defined(_WIN32)
  return _aligned_malloc(rounded, alignment);
#else
  return std::aligned_alloc(alignment, rounded);
#endif
}

void aligned_free(void* data) {
#if defined(_WIN32)
  _aligned_free(data);
#else
  std::free(data);
#endif
}

namespace {

constexpr size_t kHugePage = size_t{2} << 20;

// Whether `bytes` goes to its own huge-page mapping: decided by the size and the environment
// alone, so free_large takes the same path as allocate_large did.
bool mapped_on_huge_pages(size_t bytes) {
#if defined(__linux__)
  static const bool wanted = [] {
    const char* env = std::getenv("VARGPT_HUGEPAGES");
    return env == nullptr || std::strcmp(env, "0") != 0;
  }();
  return wanted && bytes >= kLargeAllocation;
#else
  (void)bytes;
  return false;
#endif
}

size_t page_rounded(size_t bytes) { return (bytes + 4095) / 4096 * 4096; }

}  // namespace

void* allocate_large(size_t bytes) {
  if (!mapped_on_huge_pages(bytes)) return aligned_malloc(64, bytes);
#if defined(__linux__)
  if (bytes > SIZE_MAX - 2 * kHugePage) return nullptr;
  const size_t length = page_rounded(bytes), reserve = length + kHugePage;
  void* base = ::mmap(nullptr, reserve, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED) return nullptr;
  // Keep the 2 MiB-aligned part of the reservation and give back both ends.
  const uintptr_t start = reinterpret_cast<uintptr_t>(base);
  const uintptr_t aligned = (start + kHugePage - 1) / kHugePage * kHugePage;
  if (aligned > start) ::munmap(base, aligned - start);
  const uintptr_t end = start + reserve, used_end = aligned + length;
  if (end > used_end) ::munmap(reinterpret_cast<void*>(used_end), end - used_end);
  void* data = reinterpret_cast<void*>(aligned);
  // Advice only: where the kernel has no transparent huge pages the range stays on small pages.
  ::madvise(data, length, MADV_HUGEPAGE);
  return data;
#else
  return nullptr;
#endif
}

void free_large(void* data, size_t bytes) {
  if (data == nullptr) return;
  if (!mapped_on_huge_pages(bytes)) return aligned_free(data);
#if defined(__linux__)
  ::munmap(data, page_rounded(bytes));
#endif
}

}  // namespace vargpt
