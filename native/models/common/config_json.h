// config.json helpers shared by the family loaders: checked integers, activation names, token-id
// lists. Each throws vargpt::Error naming the file and key.
#pragma once

#include <string>
#include <vector>

#include "../../backend/backend.h"
#include "../../core/json.h"

namespace vargpt {

// config.json of a checkpoint folder, parsed; must be a JSON object.
Json read_config_json(const std::string& dir);

// A positive integer (below 2^30); `fallback` < 0 makes the key required.
int config_positive(const Json& object, const char* key, int64_t fallback, const std::string& what);

// Hugging Face hidden_act names: gelu, gelu_pytorch_tanh / gelu_new, quick_gelu, silu / swish.
Activation parse_activation(const std::string& name, const std::string& what);

// An integer or a list of integers (eos_token_id may be either); empty when the key is absent.
std::vector<int> config_ids(const Json& object, const char* key, const std::string& what);

}  // namespace vargpt
