/// @file
/// BoundedQueue<T>: a blocking, closable, bounded FIFO between threads, for
/// move-only items too. When full it blocks, fails, or drops the oldest item
/// (counted), as chosen at construction. close() wakes every waiter; pops then
/// drain what is left before they report closed, so nothing accepted is lost.
/// Thread-safe: any number of producers and consumers.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <optional>
#include <stop_token>
#include <vector>

#include "iotbridge/error.hpp"

namespace iotbridge {

enum class OverflowPolicy {
  block,        ///< push waits for room (back-pressure)
  fail,         ///< push returns false at once
  drop_oldest,  ///< push evicts the oldest item and counts it in dropped()
};

template <typename T>
class BoundedQueue {
 public:
  /// capacity must be at least 1.
  explicit BoundedQueue(std::size_t capacity, OverflowPolicy policy = OverflowPolicy::block)
      : capacity_(capacity), policy_(policy) {
    if (capacity == 0) throw Error(ErrorCategory::config, "BoundedQueue capacity must be at least 1");
  }
  BoundedQueue(const BoundedQueue&) = delete;
  BoundedQueue& operator=(const BoundedQueue&) = delete;

  /// Adds an item, applying the overflow policy when full. Returns false when
  /// the item was not accepted: the queue is closed, it is full under `fail`,
  /// or `stop` was requested while blocked. A rejected item is not moved from,
  /// so the caller still holds it.
  template <typename U = T>
  bool push(U&& item, std::stop_token stop = {}) {
    std::unique_lock lock(mutex_);
    if (policy_ == OverflowPolicy::block) {
      not_full_.wait(lock, stop, [&] { return closed_ || items_.size() < capacity_; });
    }
    if (closed_ || (stop.stop_requested() && items_.size() >= capacity_)) return false;
    if (items_.size() >= capacity_) {
      if (policy_ == OverflowPolicy::fail) return false;
      items_.pop_front();
      ++dropped_;
    }
    emplace_locked(std::forward<U>(item));
    lock.unlock();
    not_empty_.notify_one();
    return true;
  }

  /// Adds an item only if there is room now (never blocks, never drops).
  template <typename U = T>
  bool try_push(U&& item) {
    std::unique_lock lock(mutex_);
    if (closed_ || items_.size() >= capacity_) return false;
    emplace_locked(std::forward<U>(item));
    lock.unlock();
    not_empty_.notify_one();
    return true;
  }

  /// Waits for an item. nullopt once the queue is closed and drained, or when
  /// `stop` is requested.
  std::optional<T> pop(std::stop_token stop = {}) {
    std::unique_lock lock(mutex_);
    not_empty_.wait(lock, stop, [&] { return closed_ || !items_.empty(); });
    return take_locked(lock);
  }

  std::optional<T> try_pop() {
    std::unique_lock lock(mutex_);
    return take_locked(lock);
  }

  template <typename Rep, typename Period>
  std::optional<T> try_pop_for(std::chrono::duration<Rep, Period> timeout, std::stop_token stop = {}) {
    std::unique_lock lock(mutex_);
    not_empty_.wait_for(lock, stop, timeout, [&] { return closed_ || !items_.empty(); });
    return take_locked(lock);
  }

  /// Moves up to `max` items into `out` (appending), waiting up to `timeout`
  /// for the first one; returns how many were moved. This is how a batching
  /// consumer takes "N items or T ms, whichever first".
  template <typename Rep, typename Period>
  std::size_t pop_many(std::vector<T>& out, std::size_t max, std::chrono::duration<Rep, Period> timeout,
                       std::stop_token stop = {}) {
    std::unique_lock lock(mutex_);
    not_empty_.wait_for(lock, stop, timeout, [&] { return closed_ || !items_.empty(); });
    std::size_t n = 0;
    while (n < max && !items_.empty()) {
      out.push_back(std::move(items_.front()));
      items_.pop_front();
      ++n;
    }
    lock.unlock();
    if (n > 0) not_full_.notify_all();
    return n;
  }

  /// No more pushes are accepted; waiters wake; remaining items can still be popped.
  void close() {
    {
      std::lock_guard lock(mutex_);
      closed_ = true;
    }
    not_empty_.notify_all();
    not_full_.notify_all();
  }

  bool closed() const {
    std::lock_guard lock(mutex_);
    return closed_;
  }
  /// True once closed and every item has been popped.
  bool drained() const {
    std::lock_guard lock(mutex_);
    return closed_ && items_.empty();
  }
  std::size_t size() const {
    std::lock_guard lock(mutex_);
    return items_.size();
  }
  std::size_t capacity() const noexcept { return capacity_; }
  OverflowPolicy policy() const noexcept { return policy_; }
  /// The largest size() ever reached.
  std::size_t high_water_mark() const {
    std::lock_guard lock(mutex_);
    return high_water_;
  }
  /// Items evicted by drop_oldest.
  std::size_t dropped() const {
    std::lock_guard lock(mutex_);
    return dropped_;
  }

 private:
  template <typename U>
  void emplace_locked(U&& item) {
    items_.push_back(std::forward<U>(item));
    if (items_.size() > high_water_) high_water_ = items_.size();
  }

  std::optional<T> take_locked(std::unique_lock<std::mutex>& lock) {
    if (items_.empty()) return std::nullopt;
    std::optional<T> item(std::move(items_.front()));
    items_.pop_front();
    lock.unlock();
    not_full_.notify_one();
    return item;
  }

  const std::size_t capacity_;
  const OverflowPolicy policy_;
  mutable std::mutex mutex_;
  std::condition_variable_any not_empty_;
  std::condition_variable_any not_full_;
  std::deque<T> items_;
  bool closed_ = false;
  std::size_t high_water_ = 0;
  std::size_t dropped_ = 0;
};

}  // namespace iotbridge
