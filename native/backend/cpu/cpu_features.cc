#include "cpu_features.h"

#include <cstring>

#if defined(__x86_64__) || defined(_M_X64)
#define VARGPT_X86 1
#if defined(_MSC_VER) && !defined(__clang__)
#include <intrin.h>
#include <immintrin.h>
#else
#include <cpuid.h>
#endif
#endif

namespace vargpt::cpu {

#if defined(VARGPT_X86)

namespace {

void raw_cpuid(unsigned leaf, unsigned subleaf, unsigned regs[4]) {
#if defined(_MSC_VER) && !defined(__clang__)
  int out[4];
  __cpuidex(out, static_cast<int>(leaf), static_cast<int>(subleaf));
  for (int i = 0; i < 4; ++i) regs[i] = static_cast<unsigned>(out[i]);
#else
  __cpuid_count(leaf, subleaf, regs[0], regs[1], regs[2], regs[3]);
#endif
}

// XCR0: which register states the OS saves on a context switch (only valid with OSXSAVE).
unsigned long long xcr0() {
#if defined(_MSC_VER) && !defined(__clang__)
  return _xgetbv(0);
#else
  unsigned lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<unsigned long long>(hi) << 32) | lo;
#endif
}

struct Features {
  bool avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false, avx512bf16 = false;
  bool avx512vnni = false;
};

Features detect() {
  Features f;
  unsigned r[4];
  if (!x86_cpuid(1, 0, r)) return f;
  const unsigned ecx1 = r[2];
  const bool osxsave = (ecx1 & (1u << 27)) != 0;
  const unsigned long long xcr = osxsave ? xcr0() : 0;
  const bool avx_state = (xcr & 0x6) == 0x6;            // XMM, YMM
  const bool avx512_state = (xcr & 0xe6) == 0xe6;       // + opmask, ZMM_Hi256, Hi16_ZMM
  const bool avx = avx_state && (ecx1 & (1u << 28)) != 0;
  f.fma = avx && (ecx1 & (1u << 12)) != 0;
  f.f16c = avx && (ecx1 & (1u << 29)) != 0;
  if (!x86_cpuid(7, 0, r)) return f;
  const unsigned ebx7 = r[1];
  f.avx2 = avx && (ebx7 & (1u << 5)) != 0;
  f.avx512f = avx512_state && (ebx7 & (1u << 16)) != 0;
  f.avx512dq = f.avx512f && (ebx7 & (1u << 17)) != 0;
  f.avx512bw = f.avx512f && (ebx7 & (1u << 30)) != 0;
  f.avx512vl = f.avx512f && (ebx7 & (1u << 31)) != 0;
  f.avx512vnni = f.avx512f && (r[2] & (1u << 11)) != 0;
  if (x86_cpuid(7, 1, r)) f.avx512bf16 = f.avx512f && (r[0] & (1u << 5)) != 0;
  return f;
}

}  // namespace

bool x86_cpuid(unsigned leaf, unsigned subleaf, unsigned regs[4]) {
  unsigned max[4];
  raw_cpuid(leaf & 0x80000000u, 0, max);
  if (max[0] < leaf) return false;
  raw_cpuid(leaf, subleaf, regs);
  return true;
}

bool x86_supports(const char* feature) {
  static const Features f = detect();
  const struct {
    const char* name;
    bool has;
  } table[] = {{"avx2", f.avx2},         {"fma", f.fma},           {"f16c", f.f16c},
               {"avx512f", f.avx512f},   {"avx512bw", f.avx512bw}, {"avx512vl", f.avx512vl},
               {"avx512dq", f.avx512dq}, {"avx512bf16", f.avx512bf16}, {"avx512vnni", f.avx512vnni}};
  for (const auto& entry : table)
    if (std::strcmp(entry.name, feature) == 0) return entry.has;
  return false;
}

bool x86_xcr0_has(unsigned long long mask) {
  unsigned r[4];
  if (!x86_cpuid(1, 0, r) || (r[2] & (1u << 27)) == 0) return false;
  return (xcr0() & mask) == mask;
}

std::string x86_processor_name() {
  unsigned regs[12] = {};
  for (unsigned i = 0; i < 3; ++i)
    if (!x86_cpuid(0x80000002u + i, 0, &regs[4 * i])) return "";
  std::string name(reinterpret_cast<const char*>(regs), sizeof regs);
  name = name.substr(0, name.find('\0'));
  const size_t first = name.find_first_not_of(' ');
  return first == std::string::npos ? "" : name.substr(first);
}

#else

bool x86_cpuid(unsigned, unsigned, unsigned*) { return false; }
bool x86_supports(const char*) { return false; }
bool x86_xcr0_has(unsigned long long) { return false; }
std::string x86_processor_name() { return ""; }

#endif

}  // namespace vargpt::cpu
