// A read-only memory mapping of a whole file. Pages are read on first touch, so a multi-GB
// checkpoint costs address space, not resident memory, until its tensors are used.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

namespace vargpt {

class MappedFile {
 public:
  // Throws vargpt::Error naming the path when the file cannot be opened or mapped.
  static std::shared_ptr<MappedFile> open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const unsigned char* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

  // Gives the pages wholly inside [offset, offset + length) back to the system (a hint; they are
  // read from the file again if touched). Used once a tensor has been converted into memory of its
  // own, so that quantizing a float checkpoint on load does not keep the float copy resident.
  // Pages shared with the bytes around the range are kept. Never throws.
  void release_pages(size_t offset, size_t length) const noexcept;

 private:
  MappedFile(std::string path, const unsigned char* data, size_t size) : path_(std::move(path)), data_(data), size_(size) {}
  std::string path_;
  const unsigned char* data_;
  size_t size_;
};

// Reads a small text file (config.json and the like) whole; throws naming the path.
std::string read_text_file(const std::string& path, size_t max_bytes = 64u << 20);

// What is at `path` (UTF-8 on every platform; wide-character calls on Windows), following links.
// False when nothing is there or it cannot be examined.
bool path_exists(const std::string& path);
bool is_directory(const std::string& path);
bool is_regular_file(const std::string& path);

}  // namespace vargpt
