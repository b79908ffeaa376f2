#include "trace.h"

#include <cstring>

#include "../../core/error.h"

namespace vargpt {

void TraceSink::stack(const std::string& name, const std::vector<Tensor>& parts) {
  if (!out_ || parts.empty()) return;
  Shape shape = parts[0].shape();
  shape.insert(shape.begin(), static_cast<int64_t>(parts.size()));
  Tensor stacked = Tensor::empty_host(parts[0].dtype(), shape);
  const size_t bytes = parts[0].nbytes();
  for (size_t i = 0; i < parts.size(); ++i) {
    VG_CHECK(parts[i].shape() == parts[0].shape(), "trace ", name, ": part ", i, " ", parts[i].describe(), " differs from ",
             parts[0].describe());
    const Tensor host = backend_.to_host(parts[i]);
    std::memcpy(static_cast<char*>(stacked.raw()) + i * bytes, host.raw(), bytes);
  }
  out_->emplace_back(name, stacked);
}

}  // namespace vargpt
