// A strict JSON reader (RFC 8259) for the files a checkpoint carries: safetensors headers,
// model.safetensors.index.json and config.json. Bounded nesting, duplicate object keys rejected,
// integers kept exactly (int64) beside their double value.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace vargpt {

class Json {
 public:
  enum class Type : uint8_t { Null, Bool, Number, String, Array, Object };
  using Array = std::vector<Json>;
  using Object = std::map<std::string, Json, std::less<>>;

  Json() = default;
  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::Null; }
  bool is_bool() const { return type_ == Type::Bool; }
  bool is_number() const { return type_ == Type::Number; }
  bool is_integer() const { return type_ == Type::Number && is_integer_; }
  bool is_string() const { return type_ == Type::String; }
  bool is_array() const { return type_ == Type::Array; }
  bool is_object() const { return type_ == Type::Object; }

  bool as_bool() const { return bool_; }
  double as_double() const { return number_; }
  int64_t as_int() const { return integer_; }  // valid when is_integer()
  const std::string& as_string() const { return string_; }
  const Array& as_array() const { return *array_; }
  const Object& as_object() const { return *object_; }

  // Object member or nullptr (also nullptr when this is not an object).
  const Json* find(std::string_view key) const;

  static const char* type_name(Type type);

 private:
  friend class JsonParser;
  Type type_ = Type::Null;
  bool bool_ = false;
  bool is_integer_ = false;
  double number_ = 0;
  int64_t integer_ = 0;
  std::string string_;
  std::shared_ptr<Array> array_;
  std::shared_ptr<Object> object_;
};

// Parses `text`; throws vargpt::Error "<what>: <reason> at byte N" on any syntax error.
Json parse_json(std::string_view text, const std::string& what, int max_depth = 64);

// Typed config accessors: an absent key gives the fallback, a present key of the wrong type throws
// "<what>: <key> must be ...".
int64_t json_int(const Json& object, std::string_view key, int64_t fallback, const std::string& what);
double json_number(const Json& object, std::string_view key, double fallback, const std::string& what);
std::string json_string(const Json& object, std::string_view key, const std::string& fallback, const std::string& what);
bool json_bool(const Json& object, std::string_view key, bool fallback, const std::string& what);

}  // namespace vargpt
