// Shared by ops.cc (JS argument parsing, promises) and ops_bind.cc (the op table): a parsed
// runOp call and the op bound to its arguments. See ops.cc for the list of ops.
#pragma once

#include <cmath>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "../backend/backend.h"
#include "../core/error.h"

namespace vargpt::binding {

struct AttrValue {
  enum class Kind { Number, Bool, String, Numbers, BigInt } kind = Kind::Number;
  double number = 0;
  bool boolean = false;
  std::string string;
  std::vector<double> numbers;
  uint64_t big = 0;
};

// Attributes parsed on the JS thread; read on the worker, which records each name it reads so
// that a misspelt attribute is reported instead of silently ignored.
class Attrs {
 public:
  Attrs(std::string op, std::map<std::string, AttrValue> values) : op_(std::move(op)), values_(std::move(values)) {}

  bool has(const std::string& name) const { return values_.count(name) != 0; }

  double number(const std::string& name, std::optional<double> fallback = std::nullopt) const {
    const AttrValue* v = find(name);
    if (v == nullptr) {
      VG_CHECK(fallback.has_value(), op_, ": attribute ", name, " is required");
      return *fallback;
    }
    VG_CHECK(v->kind == AttrValue::Kind::Number, op_, ": attribute ", name, " must be a number");
    return v->number;
  }
  int64_t integer(const std::string& name, std::optional<int64_t> fallback = std::nullopt) const {
    const double d = number(name, fallback ? std::optional<double>(static_cast<double>(*fallback)) : std::nullopt);
    VG_CHECK(d == static_cast<double>(static_cast<int64_t>(d)) && std::abs(d) < 9007199254740992.0, op_,
             ": attribute ", name, " = ", d, " must be an integer");
    return static_cast<int64_t>(d);
  }
  int int32(const std::string& name, std::optional<int64_t> fallback = std::nullopt) const {
    const int64_t v = integer(name, fallback);
    VG_CHECK(v >= -2147483647 && v <= 2147483647, op_, ": attribute ", name, " = ", v, " is out of range");
    return static_cast<int>(v);
  }
  uint64_t u64(const std::string& name, uint64_t fallback) const {
    const AttrValue* v = find(name);
    if (v == nullptr) return fallback;
    if (v->kind == AttrValue::Kind::BigInt) return v->big;
    const int64_t i = integer(name);
    VG_CHECK(i >= 0, op_, ": attribute ", name, " = ", i, " must be non-negative");
    return static_cast<uint64_t>(i);
  }
  bool boolean(const std::string& name, bool fallback) const {
    const AttrValue* v = find(name);
    if (v == nullptr) return fallback;
    VG_CHECK(v->kind == AttrValue::Kind::Bool, op_, ": attribute ", name, " must be a boolean");
    return v->boolean;
  }
  std::string string(const std::string& name, std::optional<std::string> fallback = std::nullopt) const {
    const AttrValue* v = find(name);
    if (v == nullptr) {
      VG_CHECK(fallback.has_value(), op_, ": attribute ", name, " is required");
      return *fallback;
    }
    VG_CHECK(v->kind == AttrValue::Kind::String, op_, ": attribute ", name, " must be a string");
    return v->string;
  }
  std::vector<int64_t> integers(const std::string& name) const {
    const AttrValue* v = find(name);
    VG_CHECK(v != nullptr, op_, ": attribute ", name, " is required");
    VG_CHECK(v->kind == AttrValue::Kind::Numbers, op_, ": attribute ", name, " must be an array of integers");
    std::vector<int64_t> out;
    for (double d : v->numbers) {
      VG_CHECK(d == static_cast<double>(static_cast<int64_t>(d)) && std::abs(d) < 9007199254740992.0, op_,
               ": attribute ", name, " holds ", d, ", not an integer");
      out.push_back(static_cast<int64_t>(d));
    }
    return out;
  }
  // A single integer or an array of integers (e.g. padding: n or [top, bottom, left, right]).
  std::vector<int64_t> integer_or_list(const std::string& name) const {
    const AttrValue* v = find(name);
    VG_CHECK(v != nullptr, op_, ": attribute ", name, " is required");
    if (v->kind == AttrValue::Kind::Number) return {integer(name)};
    return integers(name);
  }
  void check_all_used() const {
    for (const auto& [name, value] : values_)
      VG_CHECK(used_.count(name) != 0, op_, ": unknown attribute \"", name, "\"");
  }

 private:
  const AttrValue* find(const std::string& name) const {
    used_.insert(name);
    auto it = values_.find(name);
    return it == values_.end() ? nullptr : &it->second;
  }
  std::string op_;
  std::map<std::string, AttrValue> values_;
  mutable std::set<std::string> used_;
};

struct OpCall {
  std::string device, op;
  std::vector<Tensor> inputs;  // undefined where JS passed null
  Attrs attrs;
};

// An op bound to its arguments: `run` may be called repeatedly (timeOp); outputs live in `outputs`.
struct BoundOp {
  std::function<void()> run;
  std::vector<Tensor> outputs;
};

// Validates the call, allocates its outputs on `be` and returns the op ready to run (ops_bind.cc).
BoundOp bind_op(Backend& be, const OpCall& call);

}  // namespace vargpt::binding
