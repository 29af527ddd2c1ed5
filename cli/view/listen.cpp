#include "listen.hpp"

#include <fmt/core.h>

#include <charconv>

#include "iotbridge/error.hpp"

namespace iotbridge::view {

std::string ListenAddress::url(int bound_port) const {
  return host.find(':') != std::string::npos ? fmt::format("http://[{}]:{}/", host, bound_port)
                                             : fmt::format("http://{}:{}/", host, bound_port);
}

ListenAddress parse_listen(const std::string& text) {
  auto bad = [&](const char* why) {
    return Error(ErrorCategory::config,
                 fmt::format("--listen '{}': {}; write HOST:PORT, e.g. 127.0.0.1:8080, [::1]:8080, 127.0.0.1:0 (any "
                             "free port)",
                             text, why));
  };
  ListenAddress a;
  std::string port_text;
  if (!text.empty() && text[0] == '[') {
    auto close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':')
      throw bad("an IPv6 address needs ]:PORT after it");
    a.host = text.substr(1, close - 1);
    port_text = text.substr(close + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string::npos) throw bad("no port");
    a.host = text.substr(0, colon);
    if (a.host.find(':') != std::string::npos) throw bad("put an IPv6 address in brackets");
    port_text = text.substr(colon + 1);
  }
  if (a.host.empty()) throw bad("no host");
  auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), a.port);
  if (ec != std::errc() || end != port_text.data() + port_text.size() || a.port < 0 || a.port > 65535)
    throw bad("the port is not a number from 0 to 65535");
  a.loopback = a.host == "localhost" || a.host == "::1" || a.host.rfind("127.", 0) == 0;
  return a;
}

}  // namespace iotbridge::view
