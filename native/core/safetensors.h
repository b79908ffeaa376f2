// Safetensors checkpoints: single files and sharded folders (model.safetensors.index.json),
// memory-mapped, with tensors viewed in place. Every header is validated before any tensor is
// handed out: header length bound, JSON syntax, known dtypes, shape x item size == byte span,
// spans inside the file and not overlapping, shard names confined to the checkpoint folder.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "mapped_file.h"
#include "tensor.h"

namespace vargpt {

struct TensorInfo {
  std::string name;
  DType dtype;
  Shape shape;
  size_t begin = 0, end = 0;  // byte span, relative to the start of the file's data section
};

// The validated content of a safetensors header.
struct SafetensorsHeader {
  size_t data_offset = 0;  // where the data section starts in the file
  std::vector<TensorInfo> tensors;
  std::map<std::string, std::string> metadata;
};

// Validates the first `size` bytes of a safetensors file (length prefix, header, and every span
// against the file size). `path` names the file in errors. Pure: no I/O, so it can be fuzzed.
SafetensorsHeader parse_safetensors_header(const unsigned char* bytes, size_t size, const std::string& path);

// Validates model.safetensors.index.json text: tensor name -> shard file name (lexically
// confined to the folder). Pure, like parse_safetensors_header.
std::map<std::string, std::string> parse_safetensors_index(const std::string& text, const std::string& index_path);

class SafetensorsFile {
 public:
  // Largest header accepted; real headers are a few hundred KB even for 7B models.
  static constexpr size_t kMaxHeaderBytes = 100u << 20;

  static std::shared_ptr<SafetensorsFile> open(const std::string& path);

  const std::string& path() const { return mapping_->path(); }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const TensorInfo* find(const std::string& name) const;
  // A host tensor viewing the mapped bytes (copied only when misaligned for its dtype).
  Tensor tensor(const TensorInfo& info) const;
  // MappedFile::release_pages over the tensor's bytes: call only once no view of it is in use
  // (a view would still read right, from the file again, only slower).
  void release_pages(const TensorInfo& info) const noexcept;

 private:
  std::shared_ptr<MappedFile> mapping_;
  size_t data_offset_ = 0;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> by_name_;
  std::map<std::string, std::string> metadata_;
};

// A checkpoint: a folder with model.safetensors or model.safetensors.index.json, or one file.
class SafetensorsCheckpoint {
 public:
  static std::shared_ptr<SafetensorsCheckpoint> open(const std::string& path);

  const std::string& path() const { return path_; }
  const std::vector<std::shared_ptr<SafetensorsFile>>& files() const { return files_; }
  std::vector<std::string> names() const;
  bool has(const std::string& name) const { return index_.count(name) != 0; }
  const TensorInfo& info(const std::string& name) const;  // throws "no tensor named ..."
  Tensor get(const std::string& name) const;
  // SafetensorsFile::release_pages for the named tensor (nothing when there is none).
  void release_pages(const std::string& name) const noexcept;
  // Tensor names that start with `prefix`, sorted.
  std::vector<std::string> names_with_prefix(const std::string& prefix) const;

 private:
  std::string path_;
  std::vector<std::shared_ptr<SafetensorsFile>> files_;
  struct Entry {
    int file;  // index into files_
    const TensorInfo* info;
  };
  std::map<std::string, Entry> index_;
};

}  // namespace vargpt
