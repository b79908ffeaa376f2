#include "mapped_file.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "error.h"

#if defined(_WIN32)
#error "memory mapping is implemented for POSIX systems (Linux, macOS)"
#else
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

namespace vargpt {

namespace {
struct FileDescriptor {
  int fd;
  ~FileDescriptor() {
    if (fd >= 0) ::close(fd);
  }
};
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

std::string read_text_file(const std::string& path, size_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
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
