// options_from_url: "mqtt://user:pass@host:port" and friends into Options.
#include <charconv>
#include <string>

#include "iotbridge/error.hpp"
#include "iotbridge/mqtt/client.hpp"

namespace iotbridge::mqtt {
namespace {

[[noreturn]] void bad_url(std::string_view url, const std::string& why) {
  throw Error(ErrorCategory::config, "invalid MQTT URL '" + std::string(url) + "': " + why);
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string percent_decode(std::string_view url, std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out += text[i];
      continue;
    }
    if (i + 2 >= text.size()) bad_url(url, "truncated percent-escape");
    int hi = hex_digit(text[i + 1]), lo = hex_digit(text[i + 2]);
    if (hi < 0 || lo < 0) bad_url(url, "bad percent-escape '" + std::string(text.substr(i, 3)) + "'");
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return out;
}

}  // namespace

Options options_from_url(std::string_view url, Options base) {
  Options o = std::move(base);
  auto scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) bad_url(url, "expected mqtt://host[:port] or mqtts://host[:port]");
  std::string_view scheme = url.substr(0, scheme_end);
  bool tls;
  if (scheme == "mqtt" || scheme == "tcp") {
    tls = false;
  } else if (scheme == "mqtts" || scheme == "ssl" || scheme == "tls") {
    tls = true;
  } else {
    bad_url(url, "unknown scheme '" + std::string(scheme) + "' (use mqtt:// or mqtts://)");
  }
  std::string_view rest = url.substr(scheme_end + 3);
  // A trailing "/" (or path) carries nothing for MQTT; refuse anything else after it.
  if (auto slash = rest.find('/'); slash != std::string_view::npos) {
    if (slash + 1 != rest.size()) bad_url(url, "a path is not part of an MQTT URL");
    rest = rest.substr(0, slash);
  }
  if (auto at = rest.rfind('@'); at != std::string_view::npos) {
    std::string_view userinfo = rest.substr(0, at);
    rest = rest.substr(at + 1);
    auto colon = userinfo.find(':');
    o.username = percent_decode(url, userinfo.substr(0, colon));
    if (o.username.empty()) bad_url(url, "empty user name before '@'");
    if (colon != std::string_view::npos) o.password = percent_decode(url, userinfo.substr(colon + 1));
  }
  std::string_view host = rest;
  std::string_view port_text;
  if (!rest.empty() && rest.front() == '[') {
    auto close = rest.find(']');
    if (close == std::string_view::npos) bad_url(url, "unclosed '[' around an IPv6 address");
    host = rest.substr(1, close - 1);
    std::string_view after = rest.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') bad_url(url, "expected ':port' after ']'");
      port_text = after.substr(1);
      if (port_text.empty()) bad_url(url, "empty port");
    }
  } else if (auto colon = rest.rfind(':'); colon != std::string_view::npos) {
    host = rest.substr(0, colon);
    port_text = rest.substr(colon + 1);
    if (port_text.empty()) bad_url(url, "empty port");
  }
  if (host.empty()) bad_url(url, "no host");
  o.host = std::string(host);
  if (!port_text.empty()) {
    int port = 0;
    auto [ptr, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (ec != std::errc{} || ptr != port_text.data() + port_text.size() || port < 1 || port > 65535)
      bad_url(url, "port must be a number from 1 to 65535, not '" + std::string(port_text) + "'");
    o.port = port;
  } else {
    o.port = tls ? 8883 : 1883;
  }
  o.tls.enabled = tls;
  return o;
}

}  // namespace iotbridge::mqtt
