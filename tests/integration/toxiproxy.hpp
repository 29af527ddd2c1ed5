// Toxiproxy for the network-fault tests: the server (built by
// scripts/build-toxiproxy) on a free loopback port, and its HTTP API: proxies
// from a free loopback port to a server, and "toxics" on them (latency,
// bandwidth, reset_peer, timeout). Stopped by PID with the fixture.
// Not thread-safe; one test thread drives it.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>

#include "servers.hpp"

namespace iotbridge::test {

class Toxiproxy {
 public:
  Toxiproxy() : api_port_(0) {
    std::string binary = find_binary();
    for (int attempt = 0; attempt < 3 && !process_; ++attempt) {
      api_port_ = free_port();
      auto process = std::make_unique<Process>(
          std::vector<std::string>{binary, "-host", "127.0.0.1", "-port", std::to_string(api_port_)},
          dir_ / "toxiproxy.log");
      if (wait_for_port(api_port_, std::chrono::seconds(10))) process_ = std::move(process);
    }
    if (!process_)
      throw std::runtime_error("toxiproxy (" + binary +
                               ") did not start; its log: " + (dir_ / "toxiproxy.log").string());
  }

  /// A proxy named `name` from a free loopback port (returned) to 127.0.0.1:upstream_port.
  int add_proxy(const std::string& name, int upstream_port) {
    std::string last_error;
    for (int attempt = 0; attempt < 3; ++attempt) {
      int port = free_port();
      auto r = request("POST", "/proxies",
                       "{\"name\":\"" + name + "\",\"listen\":\"127.0.0.1:" + std::to_string(port) +
                           "\",\"upstream\":\"127.0.0.1:" + std::to_string(upstream_port) + "\",\"enabled\":true}");
      if (r.status / 100 == 2) return port;
      last_error = r.text;
    }
    throw std::runtime_error("toxiproxy refused the proxy '" + name + "': " + last_error);
  }

  /// A toxic on `stream` ("upstream": client to server, "downstream": back);
  /// `attributes` is a JSON object, e.g. {"latency":100}.
  void add_toxic(const std::string& proxy, const std::string& name, const std::string& type, const std::string& stream,
                 const std::string& attributes) {
    check(request("POST", "/proxies/" + proxy + "/toxics",
                  "{\"name\":\"" + name + "\",\"type\":\"" + type + "\",\"stream\":\"" + stream +
                      "\",\"toxicity\":1.0,\"attributes\":" + attributes + "}"),
          "add the toxic " + name);
  }

  void remove_toxic(const std::string& proxy, const std::string& name) {
    check(request("DELETE", "/proxies/" + proxy + "/toxics/" + name, ""), "remove the toxic " + name);
  }

  /// Disabled, a proxy closes every connection through it and accepts none.
  void set_enabled(const std::string& proxy, bool enabled) {
    check(request("POST", "/proxies/" + proxy, std::string("{\"enabled\":") + (enabled ? "true" : "false") + "}"),
          enabled ? "enable the proxy" : "disable the proxy");
  }

  /// $IOTBRIDGE_TOXIPROXY, else where scripts/build-toxiproxy caches it.
  static std::string find_binary() {
    if (const char* env = std::getenv("IOTBRIDGE_TOXIPROXY"); env && *env) return env;
    std::string cache;
    if (const char* dir = std::getenv("IOTBRIDGE_CACHE_DIR"); dir && *dir) {
      cache = dir;
    } else if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg) {
      cache = std::string(xdg) + "/iotbridge";
    } else if (const char* home = std::getenv("HOME"); home && *home) {
      cache = std::string(home) + "/.cache/iotbridge";
    }
    std::string path = cache + "/toxiproxy-v2.5.0/toxiproxy-server";
    if (fs::exists(path)) return path;
    throw std::runtime_error("toxiproxy not found at " + path +
                             ": run scripts/build-toxiproxy, or set IOTBRIDGE_TOXIPROXY to the binary");
  }

 private:
  struct Response {
    int status = 0;  // 0: no answer
    std::string text;
  };

  // One HTTP/1.0 request on its own connection (the API is tiny; no client library needed).
  Response request(const std::string& method, const std::string& path, const std::string& body) const {
    Response r;
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return r;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(api_port_));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    timeval timeout{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      ::close(fd);
      r.text = "cannot connect to the API";
      return r;
    }
    std::string out = method + " " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" +
                      "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    for (std::size_t sent = 0; sent < out.size();) {
      ssize_t n = ::send(fd, out.data() + sent, out.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) break;
      sent += static_cast<std::size_t>(n);
    }
    char buf[4096];
    ssize_t n;
    while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) r.text.append(buf, static_cast<std::size_t>(n));
    ::close(fd);
    // "HTTP/1.1 201 Created\r\n..."
    if (auto space = r.text.find(' '); r.text.rfind("HTTP/", 0) == 0 && space != std::string::npos)
      r.status = std::atoi(r.text.c_str() + space + 1);
    if (auto end = r.text.find("\r\n\r\n"); end != std::string::npos) r.text.erase(0, end + 4);
    return r;
  }

  static void check(const Response& r, const std::string& what) {
    if (r.status / 100 != 2)
      throw std::runtime_error("toxiproxy: cannot " + what + ": HTTP " + std::to_string(r.status) + " " + r.text);
  }

  TempDir dir_{"iotbridge-toxiproxy"};
  int api_port_;
  std::unique_ptr<Process> process_;
};

}  // namespace iotbridge::test
