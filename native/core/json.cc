#include "json.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <limits>

#include "error.h"

namespace vargpt {

const Json* Json::find(std::string_view key) const {
  if (type_ != Type::Object) return nullptr;
  auto it = object_->find(key);
  return it == object_->end() ? nullptr : &it->second;
}

const char* Json::type_name(Type type) {
  switch (type) {
    case Type::Null: return "null";
    case Type::Bool: return "a boolean";
    case Type::Number: return "a number";
    case Type::String: return "a string";
    case Type::Array: return "an array";
    case Type::Object: return "an object";
  }
  return "?";
}

class JsonParser {
 public:
  JsonParser(std::string_view text, const std::string& what, int max_depth)
      : text_(text), what_(what), max_depth_(max_depth) {}

  Json parse_document() {
    skip_space();
    Json value = parse_value(0);
    skip_space();
    if (pos_ != text_.size()) error("unexpected data after the JSON value");
    return value;
  }

 private:
  [[noreturn]] void error(const char* reason) const { fail(what_, ": invalid JSON: ", reason, " at byte ", pos_); }

  void skip_space() {
    while (pos_ < text_.size()) {
      const char c = text_[pos_];
      if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
      ++pos_;
    }
  }

  bool consume_literal(std::string_view literal) {
    if (text_.substr(pos_, literal.size()) != literal) return false;
    pos_ += literal.size();
    return true;
  }

  Json parse_value(int depth) {
    if (depth > max_depth_) error("nesting too deep");
    if (pos_ >= text_.size()) error("unexpected end of input");
    Json value;
    const char c = text_[pos_];
    if (c == '{') return parse_object(depth);
    if (c == '[') return parse_array(depth);
    if (c == '"') {
      value.type_ = Json::Type::String;
      value.string_ = parse_string();
      return value;
    }
    if (consume_literal("true")) {
      value.type_ = Json::Type::Bool;
      value.bool_ = true;
      return value;
    }
    if (consume_literal("false")) {
      value.type_ = Json::Type::Bool;
      return value;
    }
    if (consume_literal("null")) return value;
    if (c == '-' || (c >= '0' && c <= '9')) return parse_number();
    error("unexpected character");
  }

  Json parse_object(int depth) {
    Json value;
    value.type_ = Json::Type::Object;
    value.object_ = std::make_shared<Json::Object>();
    ++pos_;
    skip_space();
    if (pos_ < text_.size() && text_[pos_] == '}') {
      ++pos_;
      return value;
    }
    for (;;) {
      skip_space();
      if (pos_ >= text_.size() || text_[pos_] != '"') error("expected a string key");
      std::string key = parse_string();
      skip_space();
      if (pos_ >= text_.size() || text_[pos_] != ':') error("expected ':'");
      ++pos_;
      skip_space();
      Json member = parse_value(depth + 1);
      if (!value.object_->emplace(std::move(key), std::move(member)).second) error("duplicate object key");
      skip_space();
      if (pos_ >= text_.size()) error("unterminated object");
      if (text_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (text_[pos_] == '}') {
        ++pos_;
        return value;
      }
      error("expected ',' or '}'");
    }
  }

  Json parse_array(int depth) {
    Json value;
    value.type_ = Json::Type::Array;
    value.array_ = std::make_shared<Json::Array>();
    ++pos_;
    skip_space();
    if (pos_ < text_.size() && text_[pos_] == ']') {
      ++pos_;
      return value;
    }
    for (;;) {
      skip_space();
      value.array_->push_back(parse_value(depth + 1));
      skip_space();
      if (pos_ >= text_.size()) error("unterminated array");
      if (text_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (text_[pos_] == ']') {
        ++pos_;
        return value;
      }
      error("expected ',' or ']'");
    }
  }

  static void append_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  uint32_t parse_hex4() {
    if (pos_ + 4 > text_.size()) error("truncated \\u escape");
    uint32_t value = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = text_[pos_++];
      value <<= 4;
      if (c >= '0' && c <= '9') value |= static_cast<uint32_t>(c - '0');
      else if (c >= 'a' && c <= 'f') value |= static_cast<uint32_t>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') value |= static_cast<uint32_t>(c - 'A' + 10);
      else error("bad hex digit in \\u escape");
    }
    return value;
  }

  std::string parse_string() {
    ++pos_;  // opening quote
    std::string out;
    for (;;) {
      if (pos_ >= text_.size()) error("unterminated string");
      const unsigned char c = static_cast<unsigned char>(text_[pos_++]);
      if (c == '"') return out;
      if (c < 0x20) error("control character in string");
      if (c != '\\') {
        out += static_cast<char>(c);
        continue;
      }
      if (pos_ >= text_.size()) error("unterminated escape");
      const char e = text_[pos_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          uint32_t cp = parse_hex4();
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (pos_ + 2 > text_.size() || text_[pos_] != '\\' || text_[pos_ + 1] != 'u') error("unpaired surrogate");
            pos_ += 2;
            const uint32_t low = parse_hex4();
            if (low < 0xDC00 || low > 0xDFFF) error("unpaired surrogate");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            error("unpaired surrogate");
          }
          append_utf8(out, cp);
          break;
        }
        default: error("unknown escape");
      }
    }
  }

  Json parse_number() {
    const size_t start = pos_;
    bool integer = true;
    if (text_[pos_] == '-') ++pos_;
    if (pos_ >= text_.size()) error("truncated number");
    if (text_[pos_] == '0') {
      ++pos_;
    } else if (text_[pos_] >= '1' && text_[pos_] <= '9') {
      while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') ++pos_;
    } else {
      error("bad number");
    }
    if (pos_ < text_.size() && text_[pos_] == '.') {
      integer = false;
      ++pos_;
      if (pos_ >= text_.size() || text_[pos_] < '0' || text_[pos_] > '9') error("bad fraction");
      while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') ++pos_;
    }
    if (pos_ < text_.size() && (text_[pos_] == 'e' || text_[pos_] == 'E')) {
      integer = false;
      ++pos_;
      if (pos_ < text_.size() && (text_[pos_] == '+' || text_[pos_] == '-')) ++pos_;
      if (pos_ >= text_.size() || text_[pos_] < '0' || text_[pos_] > '9') error("bad exponent");
      while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') ++pos_;
    }
    const std::string token(text_.substr(start, pos_ - start));
    Json value;
    value.type_ = Json::Type::Number;
    value.number_ = std::strtod(token.c_str(), nullptr);
    if (integer) {
      errno = 0;
      char* end = nullptr;
      const long long parsed = std::strtoll(token.c_str(), &end, 10);
      if (errno == 0 && end == token.c_str() + token.size()) {
        value.is_integer_ = true;
        value.integer_ = parsed;
      }
    }
    return value;
  }

  std::string_view text_;
  const std::string& what_;
  int max_depth_;
  size_t pos_ = 0;
};

Json parse_json(std::string_view text, const std::string& what, int max_depth) {
  return JsonParser(text, what, max_depth).parse_document();
}

int64_t json_int(const Json& object, std::string_view key, int64_t fallback, const std::string& what) {
  const Json* value = object.find(key);
  if (!value || value->is_null()) return fallback;
  VG_CHECK(value->is_integer(), what, ": \"", key, "\" must be an integer, got ", Json::type_name(value->type()));
  return value->as_int();
}

double json_number(const Json& object, std::string_view key, double fallback, const std::string& what) {
  const Json* value = object.find(key);
  if (!value || value->is_null()) return fallback;
  VG_CHECK(value->is_number(), what, ": \"", key, "\" must be a number, got ", Json::type_name(value->type()));
  return value->as_double();
}

std::string json_string(const Json& object, std::string_view key, const std::string& fallback, const std::string& what) {
  const Json* value = object.find(key);
  if (!value || value->is_null()) return fallback;
  VG_CHECK(value->is_string(), what, ": \"", key, "\" must be a string, got ", Json::type_name(value->type()));
  return value->as_string();
}

bool json_bool(const Json& object, std::string_view key, bool fallback, const std::string& what) {
  const Json* value = object.find(key);
  if (!value || value->is_null()) return fallback;
  VG_CHECK(value->is_bool(), what, ": \"", key, "\" must be a boolean, got ", Json::type_name(value->type()));
  return value->as_bool();
}

}  // namespace vargpt
