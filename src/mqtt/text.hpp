// Small text helpers for the MQTT client's messages.
#pragma once

#include <cstdio>
#include <string>
#include <string_view>

namespace iotbridge::mqtt::detail {

// Text safe to show in an error message (topics may hold invalid UTF-8).
inline std::string printable(std::string_view text) {
  std::string out;
  for (unsigned char c : text.substr(0, 200)) {
    if (c < 0x20 || c == 0x7f) {
      static const char* hex = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (text.size() > 200) out += "...";
  return out;
}

inline std::string hex_code(int code) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%02X", code);
  return buf;
}

}  // namespace iotbridge::mqtt::detail
