// HandOff: the bounded hand-over between the intake (network thread) and the
// writer. Unlike a per-item queue it wakes the writer only when the writer
// waits and what it waits for is there (the first reading of a batch, or a
// full batch), and the writer takes its readings in one move: one wake-up
// and one lock per batch instead of a futex call per reading, which was where
// the recorder's time went (docs/recorder.md, "Performance").
// Thread-safe: one producer thread and one consumer thread at a time (more
// are safe, only slower). close() wakes everyone; take() drains what is left.
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <iterator>
#include <mutex>
#include <stop_token>
#include <vector>

#include "pipeline.hpp"

namespace iotbridge::record::detail {

class HandOff {
 public:
  explicit HandOff(std::size_t capacity) : capacity_(std::max<std::size_t>(capacity, 1)) {}

  // Adds a reading; waits while full. False (item not moved from) when closed,
  // or when `stop` is requested while full.
  bool push(Item&& item, std::stop_token stop) {
    std::unique_lock lock(mutex_);
    if (items_.size() >= capacity_) {
      ++producers_waiting_;
      not_full_.wait(lock, stop, [&] { return closed_ || items_.size() < capacity_; });
      --producers_waiting_;
    }
    if (closed_ || items_.size() >= capacity_) return false;
    items_.push_back(std::move(item));
    high_water_ = std::max(high_water_, items_.size());
    const bool wake = consumer_wants_ != 0 && items_.size() >= consumer_wants_;
    if (wake) consumer_wants_ = 0;  // woken once
    lock.unlock();
    if (wake) not_empty_.notify_one();
    return true;
  }

  // Takes up to `max` readings into `out`: waits up to `first_wait` for the
  // first, then until `max` are there or `fill_wait` has passed since the
  // first was taken in hand (a partial batch waits at most that), or closed.
  std::size_t take(Batch& out, std::size_t max, std::chrono::milliseconds first_wait,
                   std::chrono::milliseconds fill_wait) {
    std::unique_lock lock(mutex_);
    if (items_.empty() && !closed_) {
      consumer_wants_ = 1;
      not_empty_.wait_for(lock, first_wait, [&] { return !items_.empty() || closed_; });
      consumer_wants_ = 0;
    }
    if (items_.empty()) return 0;
    if (items_.size() < max && !closed_) {
      auto deadline = Clock::now() + fill_wait;
      consumer_wants_ = max;
      not_empty_.wait_until(lock, deadline, [&] { return items_.size() >= max || closed_; });
      consumer_wants_ = 0;
    }
    return move_out(lock, out, max);
  }

  // Takes up to `max` readings without waiting.
  std::size_t take_now(Batch& out, std::size_t max) {
    std::unique_lock lock(mutex_);
    return move_out(lock, out, max);
  }

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
  // Closed and empty: nothing more will come.
  bool drained() const {
    std::lock_guard lock(mutex_);
    return closed_ && items_.empty();
  }
  std::size_t size() const {
    std::lock_guard lock(mutex_);
    return items_.size();
  }
  std::size_t high_water_mark() const {
    std::lock_guard lock(mutex_);
    return high_water_;
  }

 private:
  std::size_t move_out(std::unique_lock<std::mutex>& lock, Batch& out, std::size_t max) {
    std::size_t n = std::min(max, items_.size());
    if (n == 0) return 0;
    auto end = items_.begin() + static_cast<std::ptrdiff_t>(n);
    out.insert(out.end(), std::make_move_iterator(items_.begin()), std::make_move_iterator(end));
    items_.erase(items_.begin(), end);
    const bool wake = producers_waiting_ > 0;
    lock.unlock();
    if (wake) not_full_.notify_all();
    return n;
  }

  const std::size_t capacity_;
  mutable std::mutex mutex_;
  std::condition_variable_any not_full_;
  std::condition_variable not_empty_;
  std::deque<Item> items_;
  std::size_t consumer_wants_ = 0;  // the writer waits for this many (0: not waiting)
  std::size_t producers_waiting_ = 0;
  std::size_t high_water_ = 0;
  bool closed_ = false;
};

}  // namespace iotbridge::record::detail
