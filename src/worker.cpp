#include "iotbridge/worker.hpp"

#include <condition_variable>

#include "iotbridge/error.hpp"

namespace iotbridge {

Worker::Worker(std::string name) : name_(std::move(name)) {}

Worker::Worker(Body body, std::string name) : name_(std::move(name)), body_(std::move(body)) {}

Worker::~Worker() { stop(); }

void Worker::start() {
  if (thread_.joinable()) throw Error(ErrorCategory::config, "worker '" + name_ + "' is already started");
  {
    std::lock_guard lock(error_mutex_);
    error_ = nullptr;
  }
  running_ = true;
  thread_ = std::jthread([this](std::stop_token stop) {
    try {
      run(stop);
    } catch (...) {
      std::lock_guard lock(error_mutex_);
      error_ = std::current_exception();
    }
    running_ = false;
  });
}

void Worker::request_stop() noexcept { thread_.request_stop(); }

void Worker::join() {
  if (thread_.joinable()) thread_.join();
  thread_ = std::jthread{};
}

void Worker::stop() {
  request_stop();
  join();
}

bool Worker::running() const noexcept { return running_; }

std::exception_ptr Worker::error() const {
  std::lock_guard lock(error_mutex_);
  return error_;
}

void Worker::rethrow_if_failed() const {
  if (auto e = error()) std::rethrow_exception(e);
}

void Worker::run(std::stop_token stop) {
  if (body_) body_(std::move(stop));
}

WorkerPool::WorkerPool(std::size_t count, Body body, std::string name) {
  if (count == 0) throw Error(ErrorCategory::config, "WorkerPool '" + name + "' needs at least one worker");
  workers_.reserve(count);
  for (std::size_t i = 0; i < count; ++i) {
    workers_.push_back(std::make_unique<Worker>([body, i](std::stop_token stop) { body(std::move(stop), i); },
                                                name + "-" + std::to_string(i)));
  }
}

WorkerPool::~WorkerPool() { stop(); }

void WorkerPool::start() {
  for (auto& w : workers_) w->start();
}

void WorkerPool::request_stop() noexcept {
  for (auto& w : workers_) w->request_stop();
}

void WorkerPool::join() {
  for (auto& w : workers_) w->join();
}

void WorkerPool::stop() {
  request_stop();
  join();
}

std::exception_ptr WorkerPool::error() const {
  for (const auto& w : workers_)
    if (auto e = w->error()) return e;
  return nullptr;
}

void WorkerPool::rethrow_if_failed() const {
  if (auto e = error()) std::rethrow_exception(e);
}

PeriodicTimer::PeriodicTimer(std::chrono::milliseconds interval, Tick tick)
    : interval_(interval),
      tick_(std::move(tick)),
      worker_(
          [this](std::stop_token stop) {
            // Sleep on a condition variable tied to the stop token so stop() wakes us at once.
            std::mutex mutex;
            std::condition_variable_any cv;
            auto next = std::chrono::steady_clock::now() + interval_;
            std::unique_lock lock(mutex);
            while (!cv.wait_until(lock, stop, next, [] { return false; })) {
              if (stop.stop_requested()) return;
              tick_();
              ++ticks_;
              next += interval_;
              // After a long tick, skip the missed slots rather than firing in a burst.
              auto now = std::chrono::steady_clock::now();
              if (next < now) next = now + interval_;
            }
          },
          "timer") {
  if (interval.count() <= 0) throw Error(ErrorCategory::config, "PeriodicTimer interval must be positive");
}

PeriodicTimer::~PeriodicTimer() { stop(); }

void PeriodicTimer::start() { worker_.start(); }

void PeriodicTimer::stop() { worker_.stop(); }

}  // namespace iotbridge
