// Forced into every translation unit by binding.gyp when the compiler is MSVC (cl.exe): the few
// GNU builtins and POSIX macros the sources use that MSVC lacks. Empty for every other compiler.
#pragma once

#if defined(_MSC_VER) && !defined(__clang__)
#include <sys/stat.h>
#if defined(_M_X64)
#include <immintrin.h>
#define __builtin_prefetch(address, ...) _mm_prefetch(reinterpret_cast<const char*>(address), _MM_HINT_T0)
#else
#define __builtin_prefetch(address, ...) ((void)(address))
#endif
#ifndef S_ISREG
#define S_ISREG(mode) (((mode) & _S_IFMT) == _S_IFREG)
#endif
#ifndef S_ISDIR
#define S_ISDIR(mode) (((mode) & _S_IFMT) == _S_IFDIR)
#endif
#endif
