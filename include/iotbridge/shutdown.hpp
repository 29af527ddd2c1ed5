/// @file
/// ShutdownSignal turns SIGINT and SIGTERM into a std::stop_source request that
/// every component can watch (pass token() to workers, queues, loops). A second
/// signal while shutting down restores the default action, so a second Ctrl-C
/// ends a stuck process. One instance at a time per process; its methods are
/// thread-safe. The signal handler itself only writes one byte to a pipe; a
/// watcher thread does the rest, so nothing unsafe runs in signal context.
#pragma once

#include <memory>
#include <stop_token>

namespace iotbridge {

class ShutdownSignal {
 public:
  /// Installs the handlers. Throws Error (config) if another instance is alive.
  ShutdownSignal();
  /// Restores the previous handlers.
  ~ShutdownSignal();
  ShutdownSignal(const ShutdownSignal&) = delete;
  ShutdownSignal& operator=(const ShutdownSignal&) = delete;

  std::stop_token token() const noexcept;
  std::stop_source source() const noexcept;
  /// Requests the stop as a signal would (for tests, or a "quit" command).
  void request_stop() noexcept;
  bool stop_requested() const noexcept;
  /// The signal that requested the stop (SIGINT, SIGTERM), or 0.
  int signal_number() const noexcept;
  /// Blocks until a stop is requested.
  void wait() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace iotbridge
