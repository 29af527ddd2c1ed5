#include "iotbridge/shutdown.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <csignal>
#include <mutex>
#include <thread>

#include "iotbridge/error.hpp"

namespace iotbridge {
namespace {

// Written only by the constructor/destructor, read by the handler.
std::atomic<int> g_pipe_write{-1};
std::atomic<int> g_signals_seen{0};
std::atomic<bool> g_instance_alive{false};

extern "C" void on_shutdown_signal(int sig) {
  int saved_errno = errno;
  if (g_signals_seen.fetch_add(1) > 0) {
    // Second signal: the user insists; fall back to the default action.
    std::signal(sig, SIG_DFL);
    std::raise(sig);
  }
  unsigned char byte = static_cast<unsigned char>(sig);
  int fd = g_pipe_write.load();
  if (fd >= 0) [[maybe_unused]]
    auto n = ::write(fd, &byte, 1);
  errno = saved_errno;
}

}  // namespace

struct ShutdownSignal::State {
  int pipe_read = -1;
  int pipe_write = -1;
  struct sigaction old_int {};
  struct sigaction old_term {};
  std::stop_source source;
  std::atomic<int> signal_number{0};
  std::mutex mutex;
  std::condition_variable_any cv;
  std::jthread watcher;
};

ShutdownSignal::ShutdownSignal() : state_(std::make_unique<State>()) {
  if (g_instance_alive.exchange(true))
    throw Error(ErrorCategory::config, "only one ShutdownSignal may exist at a time in a process");
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    g_instance_alive = false;
    throw Error(ErrorCategory::io, "cannot create the shutdown pipe", errno);
  }
  state_->pipe_read = fds[0];
  state_->pipe_write = fds[1];
  g_signals_seen = 0;
  g_pipe_write = fds[1];

  State* s = state_.get();
  s->watcher = std::jthread([s] {
    unsigned char byte = 0;
    // Byte 0 is the destructor's "exit" request; anything else is a signal number.
    while (true) {
      ssize_t n = ::read(s->pipe_read, &byte, 1);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0 || byte == 0) return;
      s->signal_number = byte;
      s->source.request_stop();
      std::lock_guard lock(s->mutex);
      s->cv.notify_all();
    }
  });

  struct sigaction action {};
  action.sa_handler = on_shutdown_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  sigaction(SIGINT, &action, &state_->old_int);
  sigaction(SIGTERM, &action, &state_->old_term);
}

ShutdownSignal::~ShutdownSignal() {
  sigaction(SIGINT, &state_->old_int, nullptr);
  sigaction(SIGTERM, &state_->old_term, nullptr);
  g_pipe_write = -1;
  unsigned char zero = 0;
  [[maybe_unused]] auto n = ::write(state_->pipe_write, &zero, 1);
  if (state_->watcher.joinable()) state_->watcher.join();
  ::close(state_->pipe_read);
  ::close(state_->pipe_write);
  g_instance_alive = false;
}

std::stop_token ShutdownSignal::token() const noexcept { return state_->source.get_token(); }

std::stop_source ShutdownSignal::source() const noexcept { return state_->source; }

void ShutdownSignal::request_stop() noexcept {
  state_->source.request_stop();
  std::lock_guard lock(state_->mutex);
  state_->cv.notify_all();
}

bool ShutdownSignal::stop_requested() const noexcept { return state_->source.stop_requested(); }

int ShutdownSignal::signal_number() const noexcept { return state_->signal_number; }

void ShutdownSignal::wait() const {
  std::unique_lock lock(state_->mutex);
  state_->cv.wait(lock, [&] { return state_->source.stop_requested(); });
}

}  // namespace iotbridge
