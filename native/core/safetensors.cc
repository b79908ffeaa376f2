#include "safetensors.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "error.h"
#include "json.h"
#include "mapped_file.h"

namespace vargpt {

namespace {

uint64_t read_le64(const unsigned char* p) {
  uint64_t value = 0;
  for (int i = 7; i >= 0; --i) value = (value << 8) | p[i];
  return value;
}

// Shard names come from a downloaded index file: only plain relative paths inside the folder.
// The check is lexical on purpose: a Hugging Face cache snapshot holds symlinks into ../../blobs,
// which resolve outside the folder legitimately.
void check_shard_name(const std::string& index_path, const std::string& name) {
  VG_CHECK(!name.empty(), index_path, ": empty shard file name in weight_map");
  VG_CHECK(name.find('\0') == std::string::npos, index_path, ": shard name contains a NUL byte");
  VG_CHECK(name[0] != '/' && name[0] != '\\' && !(name.size() > 1 && name[1] == ':'), index_path,
           ": shard \"", name, "\" is an absolute path; shards must lie inside the checkpoint folder");
  size_t start = 0;
  while (start <= name.size()) {
    size_t end = name.find_first_of("/\\", start);
    if (end == std::string::npos) end = name.size();
    const std::string part = name.substr(start, end - start);
    VG_CHECK(part != "..", index_path, ": shard \"", name, "\" leaves the checkpoint folder (\"..\")");
    start = end + 1;
  }
}

}  // namespace

SafetensorsHeader parse_safetensors_header(const unsigned char* bytes, size_t file_size, const std::string& path) {
  SafetensorsHeader parsed;
  SafetensorsHeader* file = &parsed;
  VG_CHECK(file_size >= 8, path, ": not a safetensors file (", file_size, " bytes, shorter than the 8-byte header length)");
  const uint64_t header_len = read_le64(bytes);
  VG_CHECK(header_len <= SafetensorsFile::kMaxHeaderBytes, path, ": header length ", header_len, " exceeds the limit of ",
           SafetensorsFile::kMaxHeaderBytes, " bytes (corrupt or not a safetensors file)");
  VG_CHECK(header_len <= file_size - 8, path, ": header length ", header_len, " runs past the end of the file (",
           file_size, " bytes): truncated file?");
  const std::string what = path + ": header";
  const Json header = parse_json(std::string_view(reinterpret_cast<const char*>(bytes + 8), header_len), what);
  VG_CHECK(header.is_object(), what, " must be a JSON object");
  file->data_offset = 8 + header_len;
  const size_t data_size = file_size - file->data_offset;

  for (const auto& [name, entry] : header.as_object()) {
    if (name == "__metadata__") {
      VG_CHECK(entry.is_object(), what, ": __metadata__ must be an object of strings");
      for (const auto& [key, value] : entry.as_object()) {
        VG_CHECK(value.is_string(), what, ": __metadata__.", key, " must be a string");
        file->metadata[key] = value.as_string();
      }
      continue;
    }
    const std::string where = path + ": tensor \"" + name + "\"";
    VG_CHECK(entry.is_object(), where, ": entry must be an object");
    const Json* dtype = entry.find("dtype");
    const Json* shape = entry.find("shape");
    const Json* offsets = entry.find("data_offsets");
    VG_CHECK(dtype && dtype->is_string(), where, ": missing or non-string \"dtype\"");
    VG_CHECK(shape && shape->is_array(), where, ": missing or non-array \"shape\"");
    VG_CHECK(offsets && offsets->is_array() && offsets->as_array().size() == 2, where,
             ": \"data_offsets\" must be an array of two integers");
    TensorInfo info;
    info.name = name;
    const auto parsed = dtype_from_safetensors(dtype->as_string());
    VG_CHECK(parsed.has_value(), where, ": unsupported dtype \"", dtype->as_string(),
             "\" (supported: F32, BF16, F16, I32, I64, U8, I8)");
    info.dtype = *parsed;
    VG_CHECK(shape->as_array().size() <= 8, where, ": rank ", shape->as_array().size(), " is above the limit of 8");
    uint64_t count = 1;
    bool overflow = false;
    for (const Json& d : shape->as_array()) {
      VG_CHECK(d.is_integer() && d.as_int() >= 0, where, ": shape entries must be non-negative integers");
      const uint64_t dim = static_cast<uint64_t>(d.as_int());
      info.shape.push_back(d.as_int());
      if (dim != 0 && count > std::numeric_limits<uint64_t>::max() / dim) overflow = true;
      count *= dim;
    }
    VG_CHECK(!overflow && count <= std::numeric_limits<uint64_t>::max() / dtype_size(info.dtype) &&
                 count <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()),
             where, ": shape ", shape_string(info.shape), " overflows");
    const Json& begin = offsets->as_array()[0];
    const Json& end = offsets->as_array()[1];
    VG_CHECK(begin.is_integer() && end.is_integer() && begin.as_int() >= 0 && end.as_int() >= begin.as_int(), where,
             ": data_offsets must be two non-negative integers with begin <= end");
    info.begin = static_cast<size_t>(begin.as_int());
    info.end = static_cast<size_t>(end.as_int());
    const uint64_t expected = count * dtype_size(info.dtype);
    VG_CHECK(info.end - info.begin == expected, where, ": ", dtype->as_string(), shape_string(info.shape), " needs ",
             expected, " bytes but data_offsets span ", info.end - info.begin);
    VG_CHECK(info.end <= data_size, where, ": data_offsets [", info.begin, ", ", info.end,
             ") run past the end of the data (", data_size, " bytes): truncated file?");
    file->tensors.push_back(std::move(info));
  }

  // Spans must not overlap (sorted by begin, each starts at or after the previous end).
  std::vector<const TensorInfo*> order;
  for (const auto& t : file->tensors) order.push_back(&t);
  std::sort(order.begin(), order.end(), [](const TensorInfo* a, const TensorInfo* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  for (size_t i = 1; i < order.size(); ++i) {
    const TensorInfo* prev = order[i - 1];
    const TensorInfo* cur = order[i];
    const bool empty = cur->begin == cur->end || prev->begin == prev->end;
    VG_CHECK(empty || cur->begin >= prev->end, path, ": tensors \"", prev->name, "\" [", prev->begin, ", ", prev->end,
             ") and \"", cur->name, "\" [", cur->begin, ", ", cur->end, ") overlap");
  }
  return parsed;
}

std::shared_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  auto file = std::make_shared<SafetensorsFile>();
  file->mapping_ = MappedFile::open(path);
  SafetensorsHeader header = parse_safetensors_header(file->mapping_->data(), file->mapping_->size(), path);
  file->data_offset_ = header.data_offset;
  file->tensors_ = std::move(header.tensors);
  file->metadata_ = std::move(header.metadata);
  for (size_t i = 0; i < file->tensors_.size(); ++i) file->by_name_[file->tensors_[i].name] = i;
  return file;
}

const TensorInfo* SafetensorsFile::find(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &tensors_[it->second];
}

void SafetensorsFile::release_pages(const TensorInfo& info) const noexcept {
  mapping_->release_pages(data_offset_ + info.begin, info.end - info.begin);
}

Tensor SafetensorsFile::tensor(const TensorInfo& info) const {
  const unsigned char* base = mapping_->data() + data_offset_ + info.begin;
  const size_t bytes = info.end - info.begin;
  const size_t item = dtype_size(info.dtype);
  if (reinterpret_cast<uintptr_t>(base) % item != 0) {
    // safetensors does not promise alignment; typed access needs it.
    return Tensor::from_host(info.dtype, info.shape, base);
  }
  auto storage = wrap_host(const_cast<unsigned char*>(base), bytes, mapping_);
  return Tensor(std::move(storage), 0, info.dtype, info.shape);
}

std::map<std::string, std::string> parse_safetensors_index(const std::string& text, const std::string& index_path) {
  const Json index = parse_json(text, index_path);
  VG_CHECK(index.is_object(), index_path, ": must be a JSON object");
  const Json* weight_map = index.find("weight_map");
  VG_CHECK(weight_map && weight_map->is_object(), index_path, ": missing \"weight_map\" object");
  std::map<std::string, std::string> out;
  for (const auto& [name, shard] : weight_map->as_object()) {
    VG_CHECK(shard.is_string(), index_path, ": weight_map[\"", name, "\"] must be a file name string");
    check_shard_name(index_path, shard.as_string());
    out.emplace(name, shard.as_string());
  }
  VG_CHECK(!out.empty(), index_path, ": weight_map is empty");
  return out;
}

std::shared_ptr<SafetensorsCheckpoint> SafetensorsCheckpoint::open(const std::string& path) {
  auto ckpt = std::make_shared<SafetensorsCheckpoint>();
  ckpt->path_ = path;
  if (!is_directory(path)) {
    ckpt->files_.push_back(SafetensorsFile::open(path));
    for (const auto& t : ckpt->files_[0]->tensors()) ckpt->index_[t.name] = Entry{0, &t};
    return ckpt;
  }
  const std::string single = path + "/model.safetensors";
  const std::string index_path = path + "/model.safetensors.index.json";
  if (path_exists(index_path)) {
    const auto weight_map = parse_safetensors_index(read_text_file(index_path), index_path);
    std::map<std::string, int> shard_ids;
    for (const auto& [name, shard_name] : weight_map) {
      auto it = shard_ids.find(shard_name);
      if (it == shard_ids.end()) {
        const std::string shard_path = path + "/" + shard_name;
        VG_CHECK(path_exists(shard_path), index_path, ": shard \"", shard_name, "\" (holding \"", name,
                 "\") is missing");
        ckpt->files_.push_back(SafetensorsFile::open(shard_path));
        it = shard_ids.emplace(shard_name, static_cast<int>(ckpt->files_.size() - 1)).first;
      }
      const TensorInfo* info = ckpt->files_[it->second]->find(name);
      VG_CHECK(info != nullptr, index_path, ": weight_map puts \"", name, "\" in ", shard_name,
               ", which has no such tensor");
      ckpt->index_[name] = Entry{it->second, info};
    }
    return ckpt;
  }
  VG_CHECK(path_exists(single), path, ": no model.safetensors or model.safetensors.index.json in this folder");
  ckpt->files_.push_back(SafetensorsFile::open(single));
  for (const auto& t : ckpt->files_[0]->tensors()) ckpt->index_[t.name] = Entry{0, &t};
  return ckpt;
}

std::vector<std::string> SafetensorsCheckpoint::names() const {
  std::vector<std::string> out;
  out.reserve(index_.size());
  for (const auto& entry : index_) out.push_back(entry.first);
  return out;
}

std::vector<std::string> SafetensorsCheckpoint::names_with_prefix(const std::string& prefix) const {
  std::vector<std::string> out;
  for (auto it = index_.lower_bound(prefix); it != index_.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it)
    out.push_back(it->first);
  return out;
}

const TensorInfo& SafetensorsCheckpoint::info(const std::string& name) const {
  auto it = index_.find(name);
  VG_CHECK(it != index_.end(), path_, ": no tensor named \"", name, "\"");
  return *it->second.info;
}

Tensor SafetensorsCheckpoint::get(const std::string& name) const {
  auto it = index_.find(name);
  VG_CHECK(it != index_.end(), path_, ": no tensor named \"", name, "\"");
  return files_[it->second.file]->tensor(*it->second.info);
}

void SafetensorsCheckpoint::release_pages(const std::string& name) const noexcept {
  auto it = index_.find(name);
  if (it != index_.end()) files_[it->second.file]->release_pages(*it->second.info);
}

}  // namespace vargpt
