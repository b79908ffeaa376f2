// The Linux prebuilds load on glibc 2.28 and later (RHEL 8, Debian 10, Ubuntu 20.04) although
// they are built on a newer glibc. Built with VARGPT_GLIBC_FLOOR=1 (scripts/prebuild.mjs,
// scripts/prebuild-cross.mjs), libstdc++ is linked statically and this file gives the addon its
// own, hidden, definitions of the few C library functions that a new glibc would otherwise bind
// to versions newer than 2.28:
//   - functions whose implementation moved or changed (dlopen & co. and pthread_* moved into libc
//     in 2.34, exp/log/pow got new entry points in 2.29) forward to their original versions,
//     which every glibc still exports;
//   - stat/fstat became real functions only in 2.33: they are made with the system calls;
//   - __libc_single_threaded (2.32, read by libstdc++'s reference counting) is always "no", so
//     atomics are always used; arc4random (2.36, std::random_device) reads getrandom(2).
// The references in the statically linked libstdc++ resolve to these definitions too. Nothing
// here is exported. scripts/check-glibc.mjs checks the result.
#if defined(__linux__)
#include <features.h>  // defines __GLIBC__ on glibc (not on musl)
#endif

#if defined(VARGPT_GLIBC_FLOOR) && defined(__linux__) && defined(__GLIBC__)

#include <cerrno>
#include <cstddef>
#include <cstdint>

#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__)
#define VARGPT_GLIBC_BASE "GLIBC_2.2.5"
#elif defined(__aarch64__)
#define VARGPT_GLIBC_BASE "GLIBC_2.17"
#else
#error "VARGPT_GLIBC_FLOOR: unknown glibc base version for this architecture"
#endif

#define VARGPT_HIDDEN __attribute__((visibility("hidden")))

// The original version of `name`, reached through a local alias, and a hidden definition of
// `name` that calls it (declared under another C++ name with `name` as its assembler name, so it
// does not clash with GCC's built-in declarations of exp, log and pow).
#define VARGPT_FORWARD(ret, name, params, args)                                            \
  extern "C" ret vargpt_glibc_##name params;                                              \
  __asm__(".symver vargpt_glibc_" #name ", " #name "@" VARGPT_GLIBC_BASE);               \
  extern "C" VARGPT_HIDDEN ret vargpt_local_##name params __asm__(#name);                 \
  extern "C" ret vargpt_local_##name params { return vargpt_glibc_##name args; }

typedef unsigned long vargpt_thread;  // pthread_t
typedef unsigned int vargpt_key;      // pthread_key_t

VARGPT_FORWARD(void*, dlopen, (const char* file, int mode), (file, mode))
VARGPT_FORWARD(void*, dlsym, (void* handle, const char* name), (handle, name))
VARGPT_FORWARD(int, dladdr, (const void* address, void* info), (address, info))
VARGPT_FORWARD(char*, dlerror, (void), ())
VARGPT_FORWARD(int, dlclose, (void* handle), (handle))

VARGPT_FORWARD(int, pthread_create, (vargpt_thread * thread, const void* attr, void* (*start)(void*), void* arg),
               (thread, attr, start, arg))
VARGPT_FORWARD(int, pthread_detach, (vargpt_thread thread), (thread))
VARGPT_FORWARD(int, pthread_join, (vargpt_thread thread, void** result), (thread, result))
VARGPT_FORWARD(int, pthread_once, (int* once, void (*init)(void)), (once, init))
VARGPT_FORWARD(int, pthread_key_create, (vargpt_key * key, void (*destroy)(void*)), (key, destroy))
VARGPT_FORWARD(int, __pthread_key_create, (vargpt_key * key, void (*destroy)(void*)), (key, destroy))
VARGPT_FORWARD(int, pthread_key_delete, (vargpt_key key), (key))
VARGPT_FORWARD(void*, pthread_getspecific, (vargpt_key key), (key))
VARGPT_FORWARD(int, pthread_setspecific, (vargpt_key key, const void* value), (key, value))

VARGPT_FORWARD(double, exp, (double x), (x))
VARGPT_FORWARD(double, log, (double x), (x))
VARGPT_FORWARD(double, pow, (double x, double y), (x, y))

// The kernel's struct stat is glibc's struct stat / stat64 on x86_64 and aarch64.
extern "C" VARGPT_HIDDEN int stat64(const char* path, void* buf) {
  return static_cast<int>(syscall(SYS_newfstatat, AT_FDCWD, path, buf, 0));
}
extern "C" VARGPT_HIDDEN int fstat64(int fd, void* buf) { return static_cast<int>(syscall(SYS_fstat, fd, buf)); }
extern "C" VARGPT_HIDDEN int lstat64(const char* path, void* buf) {
  return static_cast<int>(syscall(SYS_newfstatat, AT_FDCWD, path, buf, AT_SYMLINK_NOFOLLOW));
}
#if defined(__aarch64__)
// aarch64 has no separate 64-bit variants: the headers call stat/fstat/lstat.
extern "C" VARGPT_HIDDEN int stat(const char* path, void* buf) { return stat64(path, buf); }
extern "C" VARGPT_HIDDEN int fstat(int fd, void* buf) { return fstat64(fd, buf); }
extern "C" VARGPT_HIDDEN int lstat(const char* path, void* buf) { return lstat64(path, buf); }
#endif

extern "C" {
VARGPT_HIDDEN char __libc_single_threaded = 0;
}

extern "C" VARGPT_HIDDEN uint32_t arc4random(void) {
  uint32_t value = 0;
  size_t got = 0;
  while (got < sizeof value) {
    const long n = syscall(SYS_getrandom, reinterpret_cast<char*>(&value) + got, sizeof value - got, 0);
    if (n > 0) got += static_cast<size_t>(n);
    else if (n < 0 && errno != EINTR) break;
  }
  return value;
}

#endif
