// The family registry: which pipeline loads a checkpoint, chosen by config.json `model_type`
// (falling back to `architectures[0]`). Adding a family adds one entry in registry.cc.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "../common/model.h"

namespace vargpt {

struct ModelFamily {
  std::string name;                        // "vargpt-v1"
  std::vector<std::string> model_types;    // config.json model_type values it loads
  std::vector<std::string> architectures;  // config.json architectures[0] values it loads
  std::function<std::unique_ptr<Model>(const std::string& dir, std::shared_ptr<Backend> backend,
                                       const Model::LoadProgress& progress, const std::function<bool()>& cancelled,
                                       const LoadOptions& options)>
      load;
};

const std::vector<ModelFamily>& model_families();

// The family of the checkpoint in `dir`; throws, listing the supported model types, when none fits.
const ModelFamily& find_model_family(const std::string& dir);

// Opens `device`, then loads the checkpoint with its family's pipeline.
std::unique_ptr<Model> load_model(const std::string& dir, const std::string& device,
                                  const Model::LoadProgress& progress, const std::function<bool()>& cancelled,
                                  const LoadOptions& options = {});

}  // namespace vargpt
