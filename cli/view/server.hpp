// The HTTP server of `iotbridge-db serve` (cpp-httplib): the embedded page and
// the read-only JSON API of api.hpp. Only GET (and HEAD) are answered; any
// other method gets 405. httplib stays inside server.cpp.
// Thread-safety: bind() and run() from one thread; stop() from any thread
// (a signal watcher). Requests are answered on httplib's worker threads; the
// store is thread-safe. Throws: bind() throws Error (io) when the address is
// in use or cannot be bound, naming it and what to do.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "api.hpp"
#include "listen.hpp"

namespace iotbridge::view {

class ViewServer {
 public:
  explicit ViewServer(ApiSource source);
  ~ViewServer();
  ViewServer(const ViewServer&) = delete;
  ViewServer& operator=(const ViewServer&) = delete;

  /// Binds the address; returns the port (the free one chosen for port 0).
  int bind(const ListenAddress& address);
  /// Answers requests on a thread of its own until stop(). Call after bind().
  void start();
  /// Closes the socket, lets requests in progress finish, joins the thread.
  void stop();
  std::uint64_t requests() const noexcept { return requests_.load(); }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::atomic<std::uint64_t> requests_{0};
};

}  // namespace iotbridge::view
