// Options: the checks every client applies to them (checked_options), and
// options_from_url ("mqtt://user:pass@host:port" and friends).
#include <charconv>
#include <string>
#include <vector>

#include "iotbridge/error.hpp"
#include "iotbridge/mqtt/client.hpp"
#include "iotbridge/topic.hpp"
#include "mqtt/options_check.hpp"
#include "mqtt/text.hpp"

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

Options options_from_urls(const std::vector<std::string>& urls, Options base) {
  auto bad = [](const std::string& why) { throw Error(ErrorCategory::config, "invalid MQTT failover list: " + why); };
  if (urls.empty()) bad("no URL; give at least one, as mqtt://host[:port]");
  Options first;
  std::vector<BrokerAddress> failover;
  for (std::size_t i = 0; i < urls.size(); ++i) {
    // Named by place, not by text: a URL may hold a password.
    std::string place = "URL " + std::to_string(i + 1) + " of " + std::to_string(urls.size());
    if (urls[i].empty()) bad(place + " is empty; write mqtt://host[:port]");
    Options one;
    try {
      one = options_from_url(urls[i]);
    } catch (const Error& e) {
      bad(place + ": " + e.what());
    }
    if (i == 0) {
      first = std::move(one);
      continue;
    }
    if (one.tls.enabled != first.tls.enabled)
      bad(place + " and URL 1 differ in TLS (mqtts:// against mqtt://); TLS is on or off for every address");
    if (!one.username.empty() && (one.username != first.username || one.password != first.password))
      bad(place + " names other credentials than URL 1; they are the same for every address: give them in URL 1 only");
    failover.push_back(BrokerAddress{one.host, one.port});
  }
  Options o = options_from_url(urls.front(), std::move(base));
  o.failover = std::move(failover);
  return o;
}

namespace detail {

void check_flow_control(const Options& o) {
  auto bad = [](const std::string& why) { throw Error(ErrorCategory::config, "invalid MQTT options: " + why); };
  const std::string limit = std::to_string(kMaxUnacknowledged);
  if (o.max_inflight < 1 || o.max_inflight > kMaxUnacknowledged)
    bad("max_inflight is " + std::to_string(o.max_inflight) + "; it must be between 1 and " + limit);
  if (o.max_queued < o.max_inflight)
    bad("max_queued (" + std::to_string(o.max_queued) + ") must be at least max_inflight (" +
        std::to_string(o.max_inflight) + ")");
  // Refused rather than clamped: a caller who asked for more would otherwise
  // block (or fail) at a bound it never set.
  if (o.max_queued > kMaxUnacknowledged)
    bad("max_queued is " + std::to_string(o.max_queued) + "; at most " + limit +
        " QoS 1/2 messages can await acknowledgement at once (16-bit packet ids would repeat), so set it to " + limit +
        " or less");
  if (o.max_offline_queue < 1) bad("max_offline_queue must be at least 1");
}

Options checked_options(Options o) {
  using std::chrono::milliseconds;
  auto bad = [](const std::string& why) { throw Error(ErrorCategory::config, "invalid MQTT options: " + why); };
  if (o.host.empty()) bad("host is empty");
  if (o.port == 0) o.port = o.tls.enabled ? 8883 : 1883;
  if (o.port < 1 || o.port > 65535) bad("port " + std::to_string(o.port) + " is outside 1..65535");
  for (std::size_t i = 0; i < o.failover.size(); ++i) {
    BrokerAddress& a = o.failover[i];
    std::string which = "failover address " + std::to_string(i + 1);
    if (a.host.empty()) bad(which + " has an empty host");
    if (a.host.find_first_of("/[] \t") != std::string::npos)
      bad(which + " '" + printable(a.host) + "' is not a host name or address (a URL? use options_from_urls)");
    if (a.port == 0) a.port = o.tls.enabled ? 8883 : 1883;
    if (a.port < 1 || a.port > 65535) bad(which + " port " + std::to_string(a.port) + " is outside 1..65535");
  }
  if (o.client_id.empty() && !o.clean_session)
    bad("a persistent session (clean_session = false) needs a fixed client_id");
  if (o.client_id.size() > 65535) bad("client_id is longer than 65535 bytes");
  if (o.keepalive < std::chrono::seconds(5) || o.keepalive > std::chrono::seconds(65535))
    bad("keepalive must be between 5 and 65535 seconds");
  if (o.password && o.username.empty()) bad("a password needs a user name");
  if (o.will) {
    if (auto problem = topic_problem(o.will->topic)) bad("will topic '" + printable(o.will->topic) + "': " + *problem);
    if (o.will->qos < 0 || o.will->qos > 2) bad("will QoS must be 0, 1 or 2");
  }
  check_flow_control(o);
  if (o.reconnect_delay_min < milliseconds(1) || o.reconnect_delay_max < o.reconnect_delay_min)
    bad("reconnect delays must be positive and min <= max");
  if (o.connect_timeout < milliseconds(1)) bad("connect_timeout must be positive");
  if (o.max_payload_size > 268435455) bad("max_payload_size exceeds the MQTT limit of 268435455 bytes");
  if (!o.tls.version.empty() && o.tls.version != "tlsv1.3" && o.tls.version != "tlsv1.2" && o.tls.version != "tlsv1.1")
    bad("TLS version must be tlsv1.3, tlsv1.2 or tlsv1.1");
  return o;
}

}  // namespace detail
}  // namespace iotbridge::mqtt
