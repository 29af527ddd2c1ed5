/// @file
/// HttpEndpoint: the recorder's HTTP side, for Prometheus and for orchestrators.
///   GET /metrics  the counters in the Prometheus text format 0.0.4
///   GET /healthz  200 "ok" while the service's loop runs, else 503
///   GET /readyz   200 "ready" when connected to the broker and the last store
///                 write succeeded, else 503 with the reason in the body
/// Anything else is 404. It binds to the one configured address only.
///
/// Thread-safety: construct, start() and stop() from one thread; the
/// callbacks run on the endpoint's own threads, concurrently, and must be
/// thread-safe (Recorder::stats() is). Throws only where documented.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "iotbridge/service/config.hpp"

namespace iotbridge::service {

struct HttpHandlers {
  std::function<std::string()> metrics;  ///< the /metrics body
  std::function<bool()> alive;           ///< /healthz: the loop runs
  /// /readyz: nullopt when ready, else why not ("broker not connected", ...).
  std::function<std::optional<std::string>()> not_ready;
};

class HttpEndpoint {
 public:
  /// Binds the socket now (so that an address in use is reported before
  /// anything else starts), serves nothing until start().
  /// @param address  where to listen; port 0 takes a free port (see port())
  /// @throws Error (io) when the address cannot be bound: in use by another
  ///         program, or not an address of this machine
  HttpEndpoint(const ListenAddress& address, HttpHandlers handlers);
  /// stop().
  ~HttpEndpoint();
  HttpEndpoint(const HttpEndpoint&) = delete;
  HttpEndpoint& operator=(const HttpEndpoint&) = delete;

  /// Starts answering requests (on a thread of its own).
  void start();
  /// Stops answering and closes the socket. Idempotent.
  void stop();
  /// The port bound (the one chosen when the address gave port 0).
  int port() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace iotbridge::service
