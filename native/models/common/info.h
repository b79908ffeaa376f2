// A small tree of named values describing a loaded model (sizes, token ids), built by each family
// and turned into a plain JS object by the binding, so family-specific fields need no binding code.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace vargpt {

class Info {
 public:
  enum class Kind { Null, Number, Bool, Text, Numbers, Object };

  static Info null() { return Info(Kind::Null); }
  static Info number(double v) {
    Info i(Kind::Number);
    i.number_ = v;
    return i;
  }
  static Info boolean(bool v) {
    Info i(Kind::Bool);
    i.bool_ = v;
    return i;
  }
  static Info text(std::string v) {
    Info i(Kind::Text);
    i.text_ = std::move(v);
    return i;
  }
  template <typename T>
  static Info numbers(const std::vector<T>& v) {
    Info i(Kind::Numbers);
    i.numbers_.assign(v.begin(), v.end());
    return i;
  }
  static Info object() { return Info(Kind::Object); }

  // Object fields, in insertion order; returns *this for chaining.
  Info& set(const std::string& key, Info value) {
    fields_.emplace_back(key, std::move(value));
    return *this;
  }
  Info& set(const std::string& key, double v) { return set(key, number(v)); }
  Info& set(const std::string& key, int v) { return set(key, number(v)); }
  Info& set(const std::string& key, bool v) { return set(key, boolean(v)); }
  Info& set(const std::string& key, const char* v) { return set(key, text(v)); }
  Info& set(const std::string& key, const std::string& v) { return set(key, text(v)); }

  Kind kind() const { return kind_; }
  double as_number() const { return number_; }
  bool as_bool() const { return bool_; }
  const std::string& as_text() const { return text_; }
  const std::vector<double>& as_numbers() const { return numbers_; }
  const std::vector<std::pair<std::string, Info>>& fields() const { return fields_; }

 private:
  explicit Info(Kind kind) : kind_(kind) {}
  Kind kind_;
  double number_ = 0;
  bool bool_ = false;
  std::string text_;
  std::vector<double> numbers_;
  std::vector<std::pair<std::string, Info>> fields_;
};

}  // namespace vargpt
