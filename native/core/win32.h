// Windows only: <windows.h> without its min/max macros, and the UTF-8 <-> UTF-16 conversions
// every file and library call needs (paths are UTF-8 throughout the runtime; Windows' own
// encoding is UTF-16, so those calls go through the wide-character API).
#pragma once

#if defined(_WIN32)
#ifndef NOMINMAX
#define NOMINMAX
#endif
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>

#include <string>

namespace vargpt {

// Throws vargpt::Error naming the text when it is not valid UTF-8.
std::wstring utf8_to_wide(const std::string& text);
std::string wide_to_utf8(const std::wstring& text);
// FormatMessage's text for a GetLastError() code, without the trailing period and newline.
std::string system_message(unsigned long code);

}  // namespace vargpt
#endif
