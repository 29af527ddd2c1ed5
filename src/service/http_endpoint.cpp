// HttpEndpoint over cpp-httplib (see http_endpoint.hpp).
#include "iotbridge/service/http_endpoint.hpp"

#include <httplib.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "iotbridge/error.hpp"

namespace iotbridge::service {

struct HttpEndpoint::Impl {
  HttpHandlers handlers;
  httplib::Server server;
  std::thread thread;
  int port = 0;
  bool stopped = false;
};

namespace {
constexpr const char* kPrometheusType = "text/plain; version=0.0.4; charset=utf-8";
constexpr const char* kText = "text/plain; charset=utf-8";
}  // namespace

HttpEndpoint::HttpEndpoint(const ListenAddress& address, HttpHandlers handlers) : impl_(std::make_unique<Impl>()) {
  impl_->handlers = std::move(handlers);
  auto& h = impl_->handlers;
  auto& server = impl_->server;
  // A scrape is small: short timeouts keep a stuck client from holding a thread.
  server.set_keep_alive_timeout(2);
  server.set_read_timeout(5);
  server.set_write_timeout(5);
  server.Get("/metrics", [&h](const httplib::Request&, httplib::Response& res) {
    res.set_content(h.metrics ? h.metrics() : std::string(), kPrometheusType);
  });
  server.Get("/healthz", [&h](const httplib::Request&, httplib::Response& res) {
    bool alive = !h.alive || h.alive();
    res.status = alive ? 200 : 503;
    res.set_content(alive ? "ok\n" : "the recorder's loop is not running\n", kText);
  });
  server.Get("/readyz", [&h](const httplib::Request&, httplib::Response& res) {
    auto reason = h.not_ready ? h.not_ready() : std::nullopt;
    res.status = reason ? 503 : 200;
    res.set_content(reason ? "not ready: " + *reason + "\n" : std::string("ready\n"), kText);
  });
  errno = 0;
  if (address.port == 0) {
    impl_->port = server.bind_to_any_port(address.host);
    if (impl_->port < 0) impl_->port = 0;
  } else if (server.bind_to_port(address.host, address.port)) {
    impl_->port = address.port;
  }
  if (impl_->port == 0) {
    int err = errno;
    throw Error(ErrorCategory::io,
                "cannot listen on " + address.to_string() + (err ? std::string(": ") + std::strerror(err) : "") +
                    "; the port is in use by another program or the host is not an address of this machine: choose "
                    "a free port or a local address",
                err);
  }
}

HttpEndpoint::~HttpEndpoint() { stop(); }

void HttpEndpoint::start() {
  if (impl_->thread.joinable() || impl_->stopped) return;
  impl_->thread = std::thread([this] { impl_->server.listen_after_bind(); });
  // httplib's stop() does nothing until the loop runs: wait for it, so that a
  // stop() right after start() cannot leave the loop running for ever.
  while (!impl_->server.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

void HttpEndpoint::stop() {
  if (impl_->stopped) return;
  start();  // never started: run the loop so that stop() closes the bound socket
  impl_->stopped = true;
  impl_->server.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

int HttpEndpoint::port() const noexcept { return impl_->port; }

}  // namespace iotbridge::service
