// Error type of the native runtime. Every failure inside native code becomes a vargpt::Error
// whose message names the file, tensor, shape or argument at fault; the binding turns it into a
// JS Error. Nothing in native code aborts or exits.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace vargpt {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Thrown when a caller asked a long-running call to stop (AbortSignal on the JS side).
class Cancelled : public Error {
 public:
  Cancelled() : Error("the operation was aborted") {}
};

namespace detail {
template <typename... Parts>
std::string concat(Parts&&... parts) {
  std::ostringstream out;
  (out << ... << std::forward<Parts>(parts));
  return out.str();
}
}  // namespace detail

template <typename... Parts>
[[noreturn]] void fail(Parts&&... parts) {
  throw Error(detail::concat(std::forward<Parts>(parts)...));
}

}  // namespace vargpt

// Checks a condition that depends on input data or arguments and throws a descriptive Error.
#define VG_CHECK(cond, ...)                 \
  do {                                      \
    if (!(cond)) ::vargpt::fail(__VA_ARGS__); \
  } while (0)
