/// @file
/// Threads done the way the tutorials teach them, without their traps:
///  - Worker: one std::jthread. Subclass and override run(stop), or pass a
///    callable. An exception escaping run is captured (error(), rethrow()),
///    never lost and never std::terminate.
///  - WorkerPool: N workers running one callable, e.g. consumers of one queue.
///  - PeriodicTimer: calls a function every interval (flush ticks) on its own
///    thread, without drift, until stopped.
/// Each object is driven by one owning thread (start/stop/join); the work runs
/// on the threads they create. A subclass of Worker must call stop() in its own
/// destructor, before its members are destroyed.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

namespace iotbridge {

class Worker {
 public:
  using Body = std::function<void(std::stop_token)>;

  /// For subclasses that override run().
  explicit Worker(std::string name = "worker");
  /// Runs `body` instead of run().
  explicit Worker(Body body, std::string name = "worker");
  virtual ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  /// Starts the thread. Throws Error (config) if it is already running.
  void start();
  /// Asks run() to return (its stop_token fires); does not wait.
  void request_stop() noexcept;
  /// Waits for the thread to finish. Safe to call when not started.
  void join();
  /// request_stop() then join().
  void stop();

  bool running() const noexcept;
  const std::string& name() const noexcept { return name_; }
  /// The exception that escaped run(), or null.
  std::exception_ptr error() const;
  /// Rethrows error() if there was one.
  void rethrow_if_failed() const;

 protected:
  /// The thread's body. The default calls the callable given to the constructor.
  virtual void run(std::stop_token stop);

 private:
  std::string name_;
  Body body_;
  std::jthread thread_;
  std::atomic<bool> running_{false};
  mutable std::mutex error_mutex_;
  std::exception_ptr error_;
};

class WorkerPool {
 public:
  /// body(stop, index) runs on each of `count` threads (index 0..count-1).
  using Body = std::function<void(std::stop_token, std::size_t)>;

  WorkerPool(std::size_t count, Body body, std::string name = "pool");
  ~WorkerPool();  ///< stops and joins
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  void start();
  void request_stop() noexcept;
  void join();
  void stop();
  std::size_t size() const noexcept { return workers_.size(); }
  /// The first exception that escaped any worker, or null.
  std::exception_ptr error() const;
  void rethrow_if_failed() const;

 private:
  std::vector<std::unique_ptr<Worker>> workers_;
};

class PeriodicTimer {
 public:
  using Tick = std::function<void()>;

  /// Calls `tick` every `interval` once started. An exception from tick is
  /// captured (error()) and stops the timer.
  PeriodicTimer(std::chrono::milliseconds interval, Tick tick);
  ~PeriodicTimer();
  PeriodicTimer(const PeriodicTimer&) = delete;
  PeriodicTimer& operator=(const PeriodicTimer&) = delete;

  void start();
  void stop();
  std::exception_ptr error() const { return worker_.error(); }
  std::size_t ticks() const noexcept { return ticks_.load(); }

 private:
  std::chrono::milliseconds interval_;
  Tick tick_;
  std::atomic<std::size_t> ticks_{0};
  Worker worker_;
};

}  // namespace iotbridge
