// Run-time x86 CPU feature probes that compile with GCC, Clang and MSVC alike (GCC's
// __builtin_cpu_supports and <cpuid.h> do not exist under MSVC). On other architectures every
// probe answers false / "".
#pragma once

#include <string>

namespace vargpt::cpu {

// CPUID leaf/subleaf into regs (eax, ebx, ecx, edx); false when the CPU does not have the leaf.
bool x86_cpuid(unsigned leaf, unsigned subleaf, unsigned regs[4]);
// A feature as GCC's __builtin_cpu_supports names it ("avx2", "fma", "f16c", "avx512f", "avx512bw",
// "avx512vl", "avx512dq", "avx512bf16"), true only when the CPU has it and the OS saves the
// registers it uses (XCR0). Unknown names are false.
bool x86_supports(const char* feature);
// Whether the OS saves every register state in `mask` (XCR0 bits; false without OSXSAVE), e.g.
// 3 << 17 for the AMX tile configuration and data.
bool x86_xcr0_has(unsigned long long mask);
// The CPU's brand string ("" when not reported).
std::string x86_processor_name();

}  // namespace vargpt::cpu
