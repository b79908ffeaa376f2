#include "mapped_file.h"

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <sstream>

#include "error.h"

#if defined(_WIN32)
#include <filesystem>

#include "win32.h"
#else
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

namespace vargpt {

#if defined(_WIN32)

namespace {

struct OwnedHandle {
  HANDLE handle;
  ~OwnedHandle() {
    if (handle != nullptr && handle != INVALID_HANDLE_VALUE) ::CloseHandle(handle);
  }
};

// INVALID_FILE_ATTRIBUTES when nothing is there.
DWORD attributes(const std::string& path) {
  try {
    return ::GetFileAttributesW(utf8_to_wide(path).c_str());
  } catch (const Error&) {
    return INVALID_FILE_ATTRIBUTES;
  }
}

}  // namespace

std::shared_ptr<MappedFile> MappedFile::open(const std::string& path) {
  const std::wstring wide = utf8_to_wide(path);
  OwnedHandle file{::CreateFileW(wide.c_str(), GENERIC_READ, FILE_SHARE_READ, nullptr, OPEN_EXISTING,
                                 FILE_ATTRIBUTE_NORMAL | FILE_FLAG_RANDOM_ACCESS, nullptr)};
  if (file.handle == INVALID_HANDLE_VALUE) fail(path, ": cannot open: ", system_message(::GetLastError()));
  if (::GetFileType(file.handle) != FILE_TYPE_DISK) fail(path, ": not a regular file");
  LARGE_INTEGER length;
  if (!::GetFileSizeEx(file.handle, &length)) fail(path, ": cannot stat: ", system_message(::GetLastError()));
  if (static_cast<unsigned long long>(length.QuadPart) > SIZE_MAX) fail(path, ": too large to map in this process");
  const size_t size = static_cast<size_t>(length.QuadPart);
  const unsigned char* data = nullptr;
  if (size > 0) {
    // The view keeps the mapping object alive; both handles can be closed once it exists.
    OwnedHandle mapping{::CreateFileMappingW(file.handle, nullptr, PAGE_READONLY, 0, 0, nullptr)};
    if (mapping.handle == nullptr) fail(path, ": cannot map ", size, " bytes: ", system_message(::GetLastError()));
    void* view = ::MapViewOfFile(mapping.handle, FILE_MAP_READ, 0, 0, 0);
    if (view == nullptr) fail(path, ": cannot map ", size, " bytes: ", system_message(::GetLastError()));
    data = static_cast<const unsigned char*>(view);
  }
  return std::shared_ptr<MappedFile>(new MappedFile(path, data, size));
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::UnmapViewOfFile(data_);
}

void MappedFile::release_pages(size_t offset, size_t length) const noexcept {
  if (data_ == nullptr || offset >= size_ || length == 0) return;
  SYSTEM_INFO system;
  ::GetSystemInfo(&system);
  const size_t page = system.dwPageSize, end = std::min(size_, offset + length);
  const size_t first = (offset + page - 1) / page * page, last = end / page * page;
  // VirtualUnlock on pages that are not locked removes them from the working set.
  if (last > first) ::VirtualUnlock(const_cast<unsigned char*>(data_) + first, last - first);
}

bool path_exists(const std::string& path) { return attributes(path) != INVALID_FILE_ATTRIBUTES; }

bool is_directory(const std::string& path) {
  const DWORD attrs = attributes(path);
  return attrs != INVALID_FILE_ATTRIBUTES && (attrs & FILE_ATTRIBUTE_DIRECTORY) != 0;
}

bool is_regular_file(const std::string& path) {
  const DWORD attrs = attributes(path);
  return attrs != INVALID_FILE_ATTRIBUTES && (attrs & (FILE_ATTRIBUTE_DIRECTORY | FILE_ATTRIBUTE_DEVICE)) == 0;
}

#else  // POSIX: Linux, macOS

namespace {
struct FileDescriptor {
  int fd;
  ~FileDescriptor() {
    if (fd >= 0) ::close(fd);
  }
};

bool stat_path(const std::string& path, struct stat* info) { return ::stat(path.c_str(), info) == 0; }
}  // namespace

std::shared_ptr<MappedFile> MappedFile::open(const std::string& path) {
  FileDescriptor file{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (file.fd < 0) fail(path, ": cannot open: ", std::strerror(errno));
  struct stat info;
  if (::fstat(file.fd, &info) != 0) fail(path, ": cannot stat: ", std::strerror(errno));
  if (!S_ISREG(info.st_mode)) fail(path, ": not a regular file");
  const size_t size = static_cast<size_t>(info.st_size);
  const unsigned char* data = nullptr;
  if (size > 0) {
    void* mapped = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, file.fd, 0);
    if (mapped == MAP_FAILED) fail(path, ": cannot map ", size, " bytes: ", std::strerror(errno));
    data = static_cast<const unsigned char*>(mapped);
  }
  return std::shared_ptr<MappedFile>(new MappedFile(path, data, size));
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(const_cast<unsigned char*>(data_), size_);
}

void MappedFile::release_pages(size_t offset, size_t length) const noexcept {
  if (data_ == nullptr || offset >= size_ || length == 0) return;
  const long page_size = ::sysconf(_SC_PAGESIZE);
  if (page_size <= 0) return;
  // The mapping starts on a page boundary, so offsets within it align as addresses do.
  const size_t page = static_cast<size_t>(page_size), end = std::min(size_, offset + length);
  const size_t first = (offset + page - 1) / page * page, last = end / page * page;
  // A read-only private file mapping never holds modified pages: dropping them loses nothing.
  if (last > first) ::madvise(const_cast<unsigned char*>(data_) + first, last - first, MADV_DONTNEED);
}

bool path_exists(const std::string& path) {
  struct stat info;
  return stat_path(path, &info);
}

bool is_directory(const std::string& path) {
  struct stat info;
  return stat_path(path, &info) && S_ISDIR(info.st_mode);
}

bool is_regular_file(const std::string& path) {
  struct stat info;
  return stat_path(path, &info) && S_ISREG(info.st_mode);
}

#endif

std::string read_text_file(const std::string& path, size_t max_bytes) {
#if defined(_WIN32)
  std::ifstream in(std::filesystem::u8path(path), std::ios::binary);
#else
  std::ifstream in(path, std::ios::binary);
#endif
  if (!in) fail(path, ": cannot open: ", std::strerror(errno));
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  if (size < 0) fail(path, ": cannot read");
  if (static_cast<uint64_t>(size) > max_bytes) fail(path, ": ", size, " bytes is larger than the limit of ", max_bytes);
  in.seekg(0, std::ios::beg);
  std::string text(static_cast<size_t>(size), '\0');
  if (size > 0 && !in.read(text.data(), size)) fail(path, ": read failed");
  return text;
}

}  // namespace vargpt
