/// @file
/// Service: iotbridge-recorder's main loop around a Recorder. It binds the
/// HTTP endpoint (when the configuration has [metrics] listen), starts the
/// recorder, says what it does (a start line, a status line while the numbers
/// change, a summary at the stop), re-reads the configuration file on SIGHUP
/// (reload()) and stops, storing what it received, when asked.
///
/// Thread-safety: run() on one thread; reload() and stats() from any thread
/// (the SIGHUP handling calls reload() from run()'s thread). Throws: see each.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <stop_token>
#include <string>
#include <string_view>

#include "iotbridge/record/recorder.hpp"
#include "iotbridge/service/config.hpp"

namespace iotbridge::service {

struct ServiceOptions {
  /// Where the start, status and summary lines go (stderr in the tool).
  std::function<void(std::string_view)> print;
  /// A status line this often while the numbers change; 0: none (--quiet).
  std::chrono::milliseconds status_interval{10000};  ///< default 10 s
  /// Re-read the configuration file on SIGHUP (one Service per process).
  bool reload_on_sighup = true;  ///< default true
};

/// What a reload did.
struct ReloadResult {
  bool applied = false;  ///< false: the file was refused, the running configuration stays
  std::string message;   ///< one line: what changed, or the error with the file position
};

class Service {
 public:
  /// Checks nothing beyond what load_config() checked; starts nothing.
  Service(ServiceConfig config, ServiceOptions options);
  ~Service();
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  /// Binds the HTTP endpoint, starts the recorder, runs until `stop` is
  /// requested, then stops the recorder (storing what it holds) and the
  /// endpoint. Returns the final counters (`pending == 0`: all stored).
  /// @throws ConfigError when the metrics address cannot be bound (at the
  ///         position of [metrics] listen; nothing was started), Error as
  ///         Recorder::start() throws (broker or store unreachable, ...)
  record::RecorderStats run(std::stop_token stop);

  /// Re-reads the configuration file and applies it to the running recorder:
  /// routes added, removed or changed take effect without a restart. An
  /// invalid file changes nothing (the message says why). Never throws but
  /// std::bad_alloc.
  ReloadResult reload();

  /// The counters now (zeros before run()).
  record::RecorderStats stats() const;
  /// The port of the HTTP endpoint once run() bound it (0: none), for tests
  /// that configure port 0.
  int metrics_port() const noexcept;
  /// How many reloads were applied / refused so far.
  int reloads_applied() const noexcept;
  int reloads_refused() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace iotbridge::service
