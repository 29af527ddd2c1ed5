// Service: iotbridge-recorder's loop (see service.hpp).
#include "iotbridge/service/service.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <mutex>

#include "iotbridge/record/metrics.hpp"
#include "iotbridge/record/report.hpp"
#include "iotbridge/service/http_endpoint.hpp"

namespace iotbridge::service {

namespace {

using Clock = std::chrono::steady_clock;

// The write end of the running Service's wake-up pipe, for the SIGHUP handler
// (which may only write(2)); -1 when no Service listens for SIGHUP.
std::atomic<int> g_hup_fd{-1};

constexpr char kWakeHup = 'H';
constexpr char kWakeStop = 'S';

void on_sighup(int) {
  int saved = errno;
  int fd = g_hup_fd.load();
  if (fd >= 0) [[maybe_unused]]
    auto n = ::write(fd, &kWakeHup, 1);
  errno = saved;
}

// A pipe the loop sleeps on: SIGHUP and the stop request write into it.
class WakePipe {
 public:
  WakePipe() {
    if (::pipe2(fds_, O_CLOEXEC | O_NONBLOCK) != 0)
      throw Error(ErrorCategory::io, std::string("cannot create a pipe: ") + std::strerror(errno), errno);
  }
  ~WakePipe() {
    ::close(fds_[0]);
    ::close(fds_[1]);
  }
  WakePipe(const WakePipe&) = delete;
  WakePipe& operator=(const WakePipe&) = delete;
  int write_fd() const { return fds_[1]; }
  void wake(char what) const { [[maybe_unused]] auto n = ::write(fds_[1], &what, 1); }
  // Waits up to `timeout` for wake-ups; returns what arrived ("" on timeout).
  std::string wait(std::chrono::milliseconds timeout) const {
    pollfd p{fds_[0], POLLIN, 0};
    int ms = static_cast<int>(std::max<std::chrono::milliseconds::rep>(0, timeout.count()));
    std::string got;
    if (::poll(&p, 1, ms) > 0) {
      char buffer[64];
      ssize_t n;
      while ((n = ::read(fds_[0], buffer, sizeof buffer)) > 0) got.append(buffer, static_cast<std::size_t>(n));
    }
    return got;
  }

 private:
  int fds_[2] = {-1, -1};
};

// SIGHUP -> the pipe, for the lifetime of one run().
class SighupHandler {
 public:
  explicit SighupHandler(const WakePipe& pipe) {
    int expected = -1;
    if (!g_hup_fd.compare_exchange_strong(expected, pipe.write_fd()))
      throw Error(ErrorCategory::config, "another Service already handles SIGHUP in this process");
    struct sigaction sa {};
    sa.sa_handler = on_sighup;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    ::sigaction(SIGHUP, &sa, &previous_);
  }
  ~SighupHandler() {
    ::sigaction(SIGHUP, &previous_, nullptr);
    g_hup_fd.store(-1);
  }
  SighupHandler(const SighupHandler&) = delete;
  SighupHandler& operator=(const SighupHandler&) = delete;

 private:
  struct sigaction previous_ {};
};

// The numbers a person watches; a status line is printed when one changed.
std::string watched(const record::RecorderStats& s) {
  return fmt::format("{} {} {} {} {} {} {} {}", s.received, s.stored, s.pending, s.rejected, s.spooled, s.connected,
                     s.store_ok, s.intake_paused);
}

}  // namespace

struct Service::Impl {
  ServiceConfig config;
  ServiceOptions options;
  mutable std::mutex mutex;  // guards recorder (replaced by a reload) and config
  std::shared_ptr<record::Recorder> recorder;
  std::atomic<bool> looping{false};
  std::atomic<int> port{0};
  std::atomic<int> applied{0}, refused{0};

  void print(std::string_view line) const {
    if (options.print) options.print(line);
  }
  std::shared_ptr<record::Recorder> current() const {
    std::lock_guard lock(mutex);
    return recorder;
  }
};

Service::Service(ServiceConfig config, ServiceOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->config = std::move(config);
  impl_->options = std::move(options);
}

Service::~Service() = default;

record::RecorderStats Service::stats() const {
  auto r = impl_->current();
  return r ? r->stats() : record::RecorderStats{};
}

int Service::metrics_port() const noexcept { return impl_->port.load(); }
int Service::reloads_applied() const noexcept { return impl_->applied.load(); }
int Service::reloads_refused() const noexcept { return impl_->refused.load(); }

record::RecorderStats Service::run(std::stop_token stop) {
  auto& im = *impl_;
  // The endpoint first: an address in use is a configuration error, reported
  // before the recorder locks its folder or connects anywhere.
  std::unique_ptr<HttpEndpoint> http;
  if (im.config.metrics_enabled) {
    HttpHandlers h;
    h.metrics = [this] { return record::to_prometheus(stats()); };
    h.alive = [&im] { return im.looping.load(); };
    h.not_ready = [this]() -> std::optional<std::string> {
      auto s = stats();
      if (!impl_->current()) return "starting";
      if (!s.connected) return "not connected to the broker";
      if (!s.store_ok) return "the last store write failed: " + s.last_error;
      return std::nullopt;
    };
    try {
      http = std::make_unique<HttpEndpoint>(im.config.metrics, std::move(h));
    } catch (const Error& e) {
      throw ConfigError(im.config.file.string(), im.config.metrics_line, im.config.metrics_column,
                        std::string("[metrics] listen: ") + e.what());
    }
    im.port = http->port();
  }

  WakePipe pipe;
  std::optional<SighupHandler> sighup;
  if (im.options.reload_on_sighup) sighup.emplace(pipe);
  std::stop_callback wake_on_stop(stop, [&pipe] { pipe.wake(kWakeStop); });

  auto recorder = std::make_shared<record::Recorder>(im.config.recorder);
  recorder->start();
  {
    std::lock_guard lock(im.mutex);
    im.recorder = recorder;
  }
  im.looping = true;
  if (http) http->start();
  im.print(describe_start(im.config));
  for (const auto& w : im.config.warnings) im.print("Warning: " + w);

  const auto interval = im.options.status_interval;
  auto next_status = Clock::now() + interval;
  std::string last_watched = watched(stats());
  while (!stop.stop_requested()) {
    auto wait = interval.count() > 0 ? std::chrono::duration_cast<std::chrono::milliseconds>(next_status - Clock::now())
                                     : std::chrono::milliseconds(60000);
    std::string woke = pipe.wait(wait);
    if (woke.find(kWakeHup) != std::string::npos) im.print(reload().message);
    if (interval.count() > 0 && Clock::now() >= next_status) {
      auto s = stats();
      auto now_watched = watched(s);
      if (now_watched != last_watched) im.print(s.status_line());
      last_watched = now_watched;
      next_status = Clock::now() + interval;
    }
  }

  im.looping = false;
  auto final_recorder = im.current();
  final_recorder->stop();
  auto final_stats = final_recorder->stats();
  if (http) http->stop();
  im.print(record::summary_line(final_stats));
  return final_stats;
}

ReloadResult Service::reload() {
  auto& im = *impl_;
  ReloadResult result;
  ServiceConfig next;
  try {
    next = load_config(im.config.file);
  } catch (const Error& e) {
    ++im.refused;
    result.message = std::string("reload refused, the running configuration stays: ") + e.what();
    return result;
  }
  auto recorder = im.current();
  if (!recorder) {
    result.message = "reload: not running";
    return result;
  }
  const auto& now = im.config.recorder;
  const auto& want = next.recorder;
  // Only the routes changed: the running recorder takes them in place (no
  // reconnect, nothing in flight is lost or stored twice).
  bool same_connection = now.mqtt.host == want.mqtt.host && now.mqtt.port == want.mqtt.port &&
                         now.mqtt.failover == want.mqtt.failover && now.mqtt.client_id == want.mqtt.client_id &&
                         now.mqtt.username == want.mqtt.username && now.mqtt.password == want.mqtt.password &&
                         now.mqtt.protocol == want.mqtt.protocol && now.mqtt.clean_session == want.mqtt.clean_session &&
                         now.qos == want.qos && now.mqtt.tls.enabled == want.mqtt.tls.enabled &&
                         now.store_uri == want.store_uri && now.spool_dir == want.spool_dir &&
                         now.batch_size == want.batch_size && now.flush_interval == want.flush_interval &&
                         now.queue_capacity == want.queue_capacity && now.sync_write_ahead == want.sync_write_ahead &&
                         now.spool_max_bytes == want.spool_max_bytes;
  try {
    if (same_connection) {
      recorder->update_routes(next.routes);
      std::lock_guard lock(im.mutex);
      im.config.recorder.routes = want.routes;
      im.config.routes = next.routes;
      im.config.warnings = next.warnings;
    } else {
      // A new connection or store: stop() stores what the recorder holds, the
      // persistent session keeps what the broker receives meanwhile.
      recorder->stop();
      auto fresh = std::make_shared<record::Recorder>(want);
      try {
        fresh->start();
      } catch (const Error&) {
        auto back = std::make_shared<record::Recorder>(now);  // the running configuration, again
        back->start();
        std::lock_guard lock(im.mutex);
        im.recorder = back;
        throw;
      }
      std::lock_guard lock(im.mutex);
      im.recorder = fresh;
      im.config.recorder = want;
      im.config.routes = next.routes;
    }
  } catch (const Error& e) {
    ++im.refused;
    result.message = std::string("reload refused, the running configuration stays: ") + e.what();
    return result;
  }
  ++im.applied;
  result.applied = true;
  result.message = "reloaded " + im.config.file.string() + ": " + describe_start(im.config);
  for (const auto& line : describe_routes(im.config)) result.message += "\n  " + line;
  return result;
}

}  // namespace iotbridge::service
